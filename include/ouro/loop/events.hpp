// What the self-consuming loop reports: the on_generation event its callbacks see after each
// finished (method, generation), and the run_summary that run() returns.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ouro/core/progress.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/loop/report.hpp"

namespace ouro::loop {

// What on_generation(const generation_event&) sees after each finished (method, generation),
// generation 0 (G0, method "G0") included: the evaluation samples and their labels.
struct generation_event {
    std::string method;
    std::int64_t generation = 0;
    tensor_view<const float> samples;        // (eval_samples, C, H, W)
    tensor_view<const std::int64_t> labels;  // (eval_samples), (0) for an unconditional model
    const metric_row* metrics = nullptr;
    const diagnostic_row* diagnostics = nullptr;
    const std::filesystem::path* run_dir = nullptr;
};

OURO_CALLBACK_HOOK(on_generation);

// Wall time of one call of run(), by phase (what this call ran; a resumed run counts only its own
// part). "other" is the rest: loading data and models, the probe, clustering, OLE, writing files.
struct phase_seconds {
    double g0_training = 0;  // G0's trainer
    double finetuning = 0;   // every G_k's trainer
    double sampling = 0;     // pools and evaluation sets, every method and generation
    double latents = 0;      // G0's encoder on D_r and on every pool
    double metrics = 0;      // features, FID, precision / recall / density / coverage, KID
    double other = 0;
};

// What a run leaves for its caller (the rows are also in the run directory).
struct run_summary {
    std::vector<metric_row> metrics;
    std::vector<diagnostic_row> diagnostics;
    double clustering_accuracy = NAN;  // unconditional models: the cluster labels of D_r against the truth
    double probe_holdout_accuracy = NAN;
    std::int64_t steps_run = 0;  // steps finished by this call (0: everything was already done)
    double seconds = 0;
    phase_seconds phases;  // where those seconds went
};

}  // namespace ouro::loop
