// Fuzz target loop_config: the bytes as a run directory's config.json, compared with the settings
// of the command that resumes the run as self_consuming::write_or_check_config_ does
// (include/ouro/loop/self_consuming.hpp): parse, compare, and list the differences.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz/common.hpp"
#include "ouro/loop/self_consuming.hpp"

namespace ouro::fuzzing {

// The settings of a smoke run, in the shape self_consuming::config_ gives them.
inline const nlohmann::json& resuming_config() {
    static const nlohmann::json c = nlohmann::json::parse(R"json({
      "library": {"name": "ouro", "version": "0.1.0"},
      "model": {"spec": "unet(c=1,s=28,b=16,m=1-2,r=1,a=-,k=10)", "conditional": true},
      "sampler": {"name": "ddim", "steps": 20}, "schedule": {"timesteps": 1000}, "pooling": "spatial_mean",
      "methods": ["ACU", "ACU-LSF", "LSF"], "seed": 1, "generations": 3, "budget": 100,
      "samples_per_generation": 100, "finetune_epochs": 1, "retrain_from_scratch": false, "eval_samples": 100,
      "samples_as_images": true,
      "g0": {"steps": 0, "epochs": 1, "batch_size": 64, "lr": 0.0002, "warmup_steps": 0, "ema": true, "label_drop": 0.1},
      "finetune": {"batch_size": 64, "lr": 0.0001, "label_drop": 0.1},
      "latents": {"timestep": 100, "draws": 1, "seed": 2, "label": "own"},
      "probe": {"l2": 0.001, "standardize": true, "holdout_fraction": 0.1},
      "metrics": {"prdc_k": 5, "density_k": 5, "kid_subsets": 10, "kid_subset_size": 50},
      "data": {"real": "mnist-train", "real_size": 1000, "reference": "mnist-test", "reference_size": 1000, "classes": 10},
      "extra": {}})json");
    return c;
}

inline void fuzz_loop_config(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path file = scratch() / "config.json";
    write_bytes(file, data, size);
    nlohmann::json old;
    try {
        old = nlohmann::json::parse(loop::detail::read_run_json(file));
    } catch (const nlohmann::json::exception& e) {
        fail("config.json: not valid JSON (", e.what(), ")");
    }
    if (old != resuming_config()) (void)loop::detail::config_differences(old, resuming_config());
}

}  // namespace ouro::fuzzing
