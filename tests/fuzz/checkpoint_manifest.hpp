// Fuzz target checkpoint_manifest: the bytes as a checkpoint directory's checkpoint.json, read by
// read_checkpoint_manifest and then, for a manifest that parses, by inspect_checkpoint with the
// manifest's own spec (so that it goes on to the files the manifest names).
#pragma once

#include <cstdint>
#include <filesystem>

#include "fuzz/common.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/diffusion/checkpoint.hpp"

namespace ouro::fuzzing {

inline void fuzz_checkpoint_manifest(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path dir = scratch() / "checkpoints";
    std::filesystem::create_directories(dir);
    write_bytes(dir / diffusion::manifest_file_name, data, size);
    const diffusion::checkpoint_manifest m = diffusion::read_checkpoint_manifest(dir);
    (void)diffusion::inspect_checkpoint(dir, {m.spec, m.spec_hash});
}

}  // namespace ouro::fuzzing
