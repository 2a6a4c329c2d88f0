// The self-consuming loop's files in its run directory, read and written: the run's JSON files
// (config.json, state.json) and their comparison, and the run's model files, which must carry the checksum of their
// weights, and the part of config.json that loop_options decide. Everything here is independent of the loop's template
// arguments; loop/self_consuming.hpp decides when each file is written. The pool's files: loop/pool_files.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>
#include <nlohmann/json.hpp>

#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"  // data::image_dataset
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/loop/options.hpp"
#include "ouro/loop/pool.hpp"
#include "ouro/loop/pool_files.hpp"
#include "ouro/loop/report.hpp"
#include "ouro/optim/adamw.hpp"

namespace ouro::loop {

namespace detail {

// The settings in which two config.json objects differ, one "\n  key: A in the file, B now" line each
// (nested keys as JSON pointers, e.g. /latents/timestep).
inline std::string config_differences(const nlohmann::json& file, const nlohmann::json& now) {
    const nlohmann::json a = file.flatten(), b = now.flatten();
    std::string out;
    for (auto it = a.begin(); it != a.end(); ++it) {
        const auto other = b.find(it.key());
        if (other == b.end()) out += "\n  " + it.key() + ": " + it.value().dump() + " in the file, not set now";
        else if (*other != it.value())
            out += "\n  " + it.key() + ": " + it.value().dump() + " in the file, " + other->dump() + " now";
    }
    for (auto it = b.begin(); it != b.end(); ++it)
        if (!a.contains(it.key())) out += "\n  " + it.key() + ": not in the file, " + it.value().dump() + " now";
    return out;
}

// The text of the run's JSON file `file` (config.json, state.json). Refused when it nests deeper
// than io::json_max_depth: the run's files nest 3 levels, and copying, comparing, flattening and
// dumping a parsed value recurse, so 10^5 nested brackets would overflow the stack.
inline std::string read_run_json(const std::filesystem::path& file) {
    std::string text = io::read_text_file(file);
    if (const std::size_t depth = io::detail::json_nesting_depth(text); depth > io::json_max_depth)
        fail(file.string(), ": not a file of this loop: it nests arrays and objects ", depth,
             " levels deep, more than ", io::json_max_depth);
    return text;
}

// CRC-32 of a text, as 8 hex digits (state.json's own checksum).
inline std::string text_crc32(const std::string& text) {
    return io::detail::crc_hex(static_cast<std::uint32_t>(
        crc32_z(0, reinterpret_cast<const Bytef*>(text.data()), static_cast<z_size_t>(text.size()))));
}

// Writes config.json (`settings`, the command's experiment) into a new run directory, or checks that
// the directory's file holds the same settings: a resume with other settings would mix two
// experiments' rows, so it is refused, naming each setting that differs.
inline void write_or_check_config(const std::filesystem::path& file, const nlohmann::json& settings) {
    if (std::filesystem::exists(file)) {
        nlohmann::json old;
        try {
            old = nlohmann::json::parse(read_run_json(file));
        } catch (const nlohmann::json::exception& e) {
            fail(file.string(), ": not valid JSON (", e.what(), ")");
        }
        if (old != settings)
            fail(file.string(),
                 ": this run directory holds another experiment; its config.json differs from this "
                 "command's settings in:",
                 config_differences(old, settings),
                 "\nuse the same settings to resume, another --out, or delete the directory to start over");
        return;
    }
    io::write_file_atomically(file, settings.dump(2) + "\n");
}

// The part of config.json that the loop's runtime settings and its data decide (the model, sampler,
// pooling, optimiser and methods are added by self_consuming, which knows them). A run directory
// whose config.json differs from a new run's in any of these is refused, naming the difference.
inline nlohmann::json options_config(const loop_options& o, bool conditional, const data::image_dataset& real,
                                     const data::image_dataset& reference) {
    nlohmann::json c;
    c["seed"] = o.seed;
    c["generations"] = o.generations;
    c["budget"] = o.budget;
    c["samples_per_generation"] = o.samples_per_generation;
    c["finetune_epochs"] = o.finetune_epochs;
    c["retrain_from_scratch"] = o.retrain_from_scratch;
    c["eval_samples"] = o.eval_samples;
    c["samples_as_images"] = o.samples_as_images;
    c["g0"] = {{"steps", o.g0.steps},
               {"epochs", o.g0.epochs},
               {"batch_size", o.g0.batch_size},
               {"lr", o.g0.lr},
               {"warmup_steps", o.g0.warmup_steps},
               {"ema", o.g0.use_ema},
               {"label_drop", o.g0.label_drop}};
    c["finetune"] = {{"batch_size", o.finetune.batch_size},
                     {"lr", o.finetune.lr},
                     {"label_drop", o.finetune.label_drop},
                     {"warmup_steps", o.finetune.warmup_steps},
                     {"ema", o.finetune_ema},
                     {"ema_recipe_warmup_steps", o.ema_recipe_warmup_steps},
                     {"ema_max_decay", o.finetune.ema.max_decay}};
    c["latents"] = {{"timestep", o.latents.timestep}, {"draws", o.latents.draws}, {"seed", o.latents.seed}};
    if (conditional) c["latents"]["label"] = to_string(o.latent_label);
    else {
        // Written only for unconditional runs, so that labelled runs' config.json stays as it was.
        const clustering_options& k = o.clustering;
        c["clustering"] = {{"method", to_string(k.method)}};
        if (k.method == label_clustering::knn_spectral)
            c["clustering"].update({{"pca_dims", k.pca_dims},
                                    {"whiten", k.whiten},
                                    {"neighbours", k.knn.graph.neighbours},
                                    {"symmetry", cluster::to_string(k.knn.graph.symmetry)},
                                    {"weight", cluster::to_string(k.knn.graph.weight)}});
    }
    c["probe"] = {
        {"l2", o.probe.l2}, {"standardize", o.probe.standardize}, {"holdout_fraction", o.probe.holdout_fraction}};
    c["metrics"] = {{"prdc_k", o.prdc.k},
                    {"prdc_second_k", 5},
                    {"density_k", o.prdc.density_k},
                    {"kid_subsets", o.kid_subsets},
                    {"kid_subset_size", o.kid_subset_size},
                    {"fid_bootstrap_replicates", o.fid_bootstrap_replicates}};
    c["data"] = {{"real", real.name},
                 {"real_size", real.size()},
                 {"reference", reference.name},
                 {"reference_size", reference.size()},
                 {"classes", real.num_classes}};
    c["extra"] = o.extra_config;
    return c;
}

}  // namespace detail

// A run's finished steps, as state.json keeps them: a step is done when its metrics row is here.
struct run_state {
    bool g0_evaluated = false;
    std::string g0_crc32;  // the CRC-32 of G0's weights the rows were computed with
    std::vector<metric_row> metrics;
    std::vector<diagnostic_row> diagnostics;
    // Of this call only (recomputed on every start, not kept in state.json).
    double clustering_accuracy = NAN, probe_holdout_accuracy = NAN;
    bool done(std::string_view method, std::int64_t generation) const {
        for (const auto& r : metrics)
            if (r.method == method && r.generation == generation) return true;
        return false;
    }
};

// state.json: the rows and G0's checksum, with the CRC-32 of the rest of the file as its last key,
// so that an edited or damaged file is refused instead of resuming from wrong rows.
inline void write_run_state(const std::filesystem::path& file, const run_state& state) {
    nlohmann::json j;
    j["g0_evaluated"] = state.g0_evaluated;
    j["g0_crc32"] = state.g0_crc32;
    j["metrics"] = nlohmann::json::array();
    for (const auto& r : state.metrics) j["metrics"].push_back(to_json(r));
    j["diagnostics"] = nlohmann::json::array();
    for (const auto& r : state.diagnostics) j["diagnostics"].push_back(to_json(r));
    j["checksum"] = detail::text_crc32(j.dump());  // of the content without this key, compactly dumped
    io::write_file_atomically(file, j.dump(1) + "\n");
}

// Reads what write_run_state wrote; an ouro::error naming the file when it is not such a file or its
// checksum does not match.
inline run_state read_run_state(const std::filesystem::path& file) {
    run_state state;
    try {
        const nlohmann::json j = nlohmann::json::parse(detail::read_run_json(file));
        const std::string recorded = j.at("checksum").get<std::string>();
        nlohmann::json body = j;
        body.erase("checksum");
        const std::string found = detail::text_crc32(body.dump());
        if (found != recorded)
            fail(file.string(), ": corrupt state file: the CRC-32 of its content is ", found, ", the file records ",
                 recorded, " (edited or damaged after it was written)");
        state.g0_evaluated = j.at("g0_evaluated").get<bool>();
        state.g0_crc32 = j.at("g0_crc32").get<std::string>();
        for (const auto& r : j.at("metrics")) state.metrics.push_back(metric_row_from_json(r));
        for (const auto& r : j.at("diagnostics")) state.diagnostics.push_back(diagnostic_row_from_json(r));
    } catch (const nlohmann::json::exception& e) {
        fail(file.string(), ": not a state file of this loop (", e.what(), ")");
    }
    return state;
}

namespace detail {

// Loads a model file of the run directory: it must carry the CRC-32 of its weights, which the load
// verifies, so a corrupted or replaced G0 or G_k stops the run instead of changing later rows.
template <class Model>
void load_run_model(const std::filesystem::path& file, Model& model) {
    io::safetensors_reader(file, io::verify_checksum::no).require_data_checksum();
    diffusion::load_model(file, model);
}

}  // namespace detail

}  // namespace ouro::loop
