// Fuzz target loop_state: the bytes as a self-consuming run's state.json, read the way
// self_consuming::load_state_ reads it (include/ouro/loop/self_consuming.hpp; private, hence
// mirrored here), then written down as a resumed run does: metrics.csv, diagnostics.csv, the plots
// and report.md (write_run_outputs), and the terminal table. The file's CRC-32 is computed but not
// required to match, so that mutated rows get past it to the row parsers and the report.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/common.hpp"
#include "ouro/loop/report.hpp"
#include "ouro/loop/self_consuming.hpp"

namespace ouro::fuzzing {

inline void fuzz_loop_state(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path file = scratch() / "state.json";
    write_bytes(file, data, size);
    std::vector<loop::metric_row> metrics;
    std::vector<loop::diagnostic_row> diagnostics;
    try {
        const nlohmann::json j = nlohmann::json::parse(loop::detail::read_run_json(file));
        const std::string recorded = j.at("checksum").get<std::string>();
        nlohmann::json body = j;
        body.erase("checksum");
        (void)(loop::detail::text_crc32(body.dump()) == recorded);
        (void)j.at("g0_evaluated").get<bool>();
        (void)j.at("g0_crc32").get<std::string>();
        for (const auto& r : j.at("metrics")) metrics.push_back(loop::metric_row_from_json(r));
        for (const auto& r : j.at("diagnostics")) diagnostics.push_back(loop::diagnostic_row_from_json(r));
    } catch (const nlohmann::json::exception& e) {
        fail("state.json: not a state file of this loop (", e.what(), ")");
    }

    loop::report_info info;
    for (const auto& r : metrics)
        if (std::find(info.methods.begin(), info.methods.end(), r.method) == info.methods.end())
            info.methods.push_back(r.method);
    info.generations = 3;
    info.grids = false;
    loop::write_run_outputs(scratch() / "run", metrics, diagnostics, info);
    for (const auto& r : metrics) (void)loop::metrics_table(metrics, info.methods, r.generation);
}

}  // namespace ouro::fuzzing
