// Checkpoints of a diffusion model and its trainer: the weights as a safetensors file anyone can
// read (tensor names = parameter names; metadata: the model's spec string and hash, the library
// version, the step), and beside it the trainer's state (its optimiser's step count and state
// buffers, e.g. AdamW's two moments; the EMA weights and update count, the step, the trainer's own
// metadata) as a second safetensors file.
//
// Why a manifest: the two files are written one after the other, and a crash between them must
// never leave a new state beside old weights (or the reverse) that a resumed run would take for a
// pair. "State first, weights last" alone does not do it: the crash window then holds the new state
// beside the old weights. So each pair gets file names of its own, content-addressed
//   model-<step>-<crc32 of the file>.safetensors,   trainer-<step>-<crc32>.safetensors
// (a new pair never overwrites the current one, not even at the same step), and a small manifest,
// checkpoint.json, names the current pair with each file's size and CRC-32. The manifest is written
// last, atomically (temporary file + rename), so it names either the old complete pair or the new
// complete pair; files of a save that crashed are orphans, removed by the next save. The trainer
// file also records the CRC-32 of its model file, so a pair is checked even when the manifest is
// edited by hand. Loading verifies sizes and CRCs (truncation, corruption), the binding of the two
// files, the format, and the model spec, before it changes anything.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/core/version.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/ema.hpp"
#include "ouro/optim/optimizer.hpp"

namespace ouro::diffusion {

// The library version stored with every checkpoint.
inline constexpr const char* library_version = ouro::version;

// Format tags of the two files and of the manifest; a file without its tag is not ours.
inline constexpr const char* model_file_format = "ouro-model/1";
inline constexpr const char* trainer_file_format = "ouro-trainer-state/1";
inline constexpr const char* manifest_format = "ouro-checkpoint/1";
inline constexpr const char* manifest_file_name = "checkpoint.json";

// ---- The model's identity ---------------------------------------------------------------------

// What a checkpoint records about the architecture: the spec string (e.g. unet_spec::str()) and its
// hash. Weights load only into a model of the same spec.
struct model_identity {
    std::string spec;
    std::uint64_t hash = 0;
};

// A model type that names its architecture: a static `spec` with str() and hash() (nn::unet's).
template <class M>
concept specified_model = requires {
    { M::spec.str() } -> std::convertible_to<std::string>;
    { M::spec.hash() } -> std::convertible_to<std::uint64_t>;
};

template <class M>
model_identity identity_of() {
    static_assert(
        specified_model<M>,
        "a checkpointed model needs a static `spec` with `std::string str() const` and "
        "`std::uint64_t hash() const` (as nn::unet's unet_spec), so that a checkpoint can name its architecture");
    if constexpr (specified_model<M>) return {std::string(M::spec.str()), static_cast<std::uint64_t>(M::spec.hash())};
    else
        return {};
}

// ---- Small helpers ----------------------------------------------------------------------------

namespace checkpoint_detail {

inline std::string hex(std::uint64_t v, int digits) {
    std::string s(static_cast<std::size_t>(digits), '0');
    for (int i = digits - 1; i >= 0 && v; --i, v >>= 4) s[static_cast<std::size_t>(i)] = "0123456789abcdef"[v & 15];
    return s;
}

// CRC-32 (zlib's, the checksum of zip and PNG) of `n` bytes, continuing `crc`.
inline std::uint32_t crc32_bytes(const void* data, std::size_t n, std::uint32_t crc = 0) {
    return static_cast<std::uint32_t>(crc32_z(crc, static_cast<const Bytef*>(data), n));
}

// The CRC-32 and size of a file, read in blocks.
inline std::pair<std::uint32_t, std::uint64_t> file_crc32(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file.string(), ": cannot open the checkpoint file for reading");
    std::vector<char> block(1 << 20);
    std::uint32_t crc = 0;
    std::uint64_t size = 0;
    while (in) {
        in.read(block.data(), static_cast<std::streamsize>(block.size()));
        const auto got = static_cast<std::size_t>(in.gcount());
        crc = crc32_bytes(block.data(), got, crc);
        size += got;
    }
    return {crc, size};
}

// A decimal std::int64_t from metadata; `what` names the source in the message.
inline std::int64_t parse_int(const io::safetensors_metadata& m, const std::string& key, const std::string& what) {
    const auto it = m.find(key);
    if (it == m.end()) fail(what, ": metadata has no '", key, "'");
    std::int64_t v = 0;
    const char* b = it->second.data();
    const char* e = b + it->second.size();
    const auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p != e) fail(what, ": metadata '", key, "' is not an integer: '", it->second, "'");
    return v;
}

inline const std::string& get(const io::safetensors_metadata& m, const std::string& key, const std::string& what) {
    const auto it = m.find(key);
    if (it == m.end()) fail(what, ": metadata has no '", key, "'");
    return it->second;
}

// "model-00000100-1a2b3c4d.safetensors": the step, zero-padded so names sort by step, and the
// file's CRC-32, so a new file never replaces the one the manifest names.
inline std::string pair_file_name(const char* kind, std::int64_t step, std::uint32_t crc) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s-%08lld-%s.safetensors", kind, static_cast<long long>(step), hex(crc, 8).c_str());
    return buf;
}

// Requires every element of the buffer (host memory, laid out like store.values()) finite; `what` names it. A
// checkpoint is never written from a poisoned state: it would replace the last good one.
template <real_scalar T, backend B>
void require_finite_buffer(const parameter_store<T, B>& store, const T* buffer, const char* what) {
    const std::int64_t bad = optim::first_non_finite(buffer, store.size());
    if (bad < 0) return;
    for (const auto& e : store.entries())
        if (bad >= e.offset && bad < e.offset + e.dims.numel())
            fail("checkpoint: refusing to write a checkpoint whose ", what, " of '", e.name, "' is not finite (",
                 buffer[bad], " at element ", bad - e.offset, "); the last good checkpoint is kept");
    fail("checkpoint: refusing to write a checkpoint whose ", what, " buffer is not finite (", buffer[bad],
         " at element ", bad, "); the last good checkpoint is kept");
}

// Requires every element of `buffer` (laid out like store.values()) finite after reading it from
// `file`; `what` names the buffer. ouro never writes NaN or Inf weights (above), so a file that
// holds them was damaged with a valid checksum or written by someone else; loading it would only
// move the failure to the first training step or sample, far from the file's name.
template <real_scalar T, backend B>
void require_finite_loaded(const parameter_store<T, B>& store, const T* buffer, const std::string& file,
                           const char* what) {
    const std::int64_t bad = optim::first_non_finite(buffer, store.size());
    if (bad < 0) return;
    for (const auto& e : store.entries())
        if (bad >= e.offset && bad < e.offset + e.dims.numel())
            fail(file, ": refusing to load non-finite ", what, ": '", e.name, "' holds ", buffer[bad], " at element ",
                 bad - e.offset, "; nothing was changed");
    fail(file, ": refusing to load non-finite ", what, " (", buffer[bad], " at element ", bad,
         "); nothing was changed");
}

// A host buffer into B's memory at `dst` (the same number of elements): a copy on any backend.
template <class B, class T>
void put(const aligned_vector<T>& host, T* dst) {
    const shape flat{static_cast<std::int64_t>(host.size())};
    copy_from_host(tensor_view<const T>(host.data(), flat), tensor_view<T, B>(dst, flat));
}

// "'spec' (hash h)", for messages.
inline std::string describe(const model_identity& id) {
    return ouro::detail::concat("'", id.spec, "' (hash ", hex(id.hash, 16), ")");
}

// Requires the file's metadata to name the model of `id`; the message shows both spec strings.
inline void require_identity(const io::safetensors_metadata& m, const model_identity& id, const std::string& what) {
    const auto spec = m.find("spec");
    const auto hash = m.find("spec_hash");
    if (spec == m.end() || hash == m.end())
        fail(what, ": not an ouro model checkpoint: its metadata has no 'spec' and 'spec_hash' (this model's spec is ",
             describe(id), ")");
    if (spec->second != id.spec || hash->second != hex(id.hash, 16))
        fail(what, ": the checkpoint holds a model of another spec: the file's spec is '", spec->second, "' (hash ",
             hash->second, "), this model's spec is ", describe(id));
}

}  // namespace checkpoint_detail

// ---- The model file -----------------------------------------------------------------------------

// The bytes of a model file: one tensor per parameter of `store` (from `buffer`, in host memory,
// laid out like store.values(), so the EMA weights can be written the same way), metadata format, spec,
// spec_hash, ouro_version, step, and `extra`.
template <real_scalar T, backend B>
std::string serialize_model_file(const parameter_store<T, B>& store, const T* buffer, const model_identity& id,
                                 std::int64_t step, const io::safetensors_metadata& extra = {}) {
    io::safetensors_writer writer;
    io::add_parameter_buffer(writer, store, buffer);
    writer.set_data_checksum();  // every later load verifies the weights (io/safetensors.hpp)
    writer.set_metadata(extra);
    writer.set_metadata("format", model_file_format);
    writer.set_metadata("spec", id.spec);
    writer.set_metadata("spec_hash", checkpoint_detail::hex(id.hash, 16));
    writer.set_metadata("ouro_version", library_version);
    writer.set_metadata("step", std::to_string(step));
    return writer.serialize();
}

// Writes the weights of `model` to `file` (atomically) as a model file (see serialize_model_file).
// Requires finite weights.
template <class Model>
void save_model(const std::filesystem::path& file, const Model& model, std::int64_t step = 0,
                const io::safetensors_metadata& extra = {}) {
    const auto& store = model.store();
    const host_readable<float, backend_of_t<Model>> weights(store.values(), store.size());
    checkpoint_detail::require_finite_buffer(store, weights.data(), "weights");
    io::write_file_atomically(file, serialize_model_file(store, weights.data(), identity_of<Model>(), step, extra));
}

// Loads a model file into `store` after checking that it was saved from the model `id` names (the
// message shows both spec strings), holds exactly the store's parameters, and that every weight is
// finite; nothing changes unless everything fits. Returns the file's metadata.
template <real_scalar T, backend B>
io::safetensors_metadata load_model_file(const std::filesystem::path& file, parameter_store<T, B>& store,
                                         const model_identity& id) {
    io::safetensors_reader reader(file);
    checkpoint_detail::require_identity(reader.metadata(), id, file.string());
    // Read into scratch first: the finiteness check comes after the read, and a refused file must
    // leave the model as it was.
    aligned_vector<T> weights(static_cast<std::size_t>(store.size()), T{});
    io::read_parameter_buffer(reader, store, weights.data());
    checkpoint_detail::require_finite_loaded(store, weights.data(), file.string(), "weights");
    checkpoint_detail::put<B>(weights, store.values());
    return reader.metadata();
}

// load_model_file into model.store(), with the model's own spec.
template <class Model>
io::safetensors_metadata load_model(const std::filesystem::path& file, Model& model) {
    return load_model_file(file, model.store(), identity_of<Model>());
}

// ---- Checkpoints: a pair of files and the manifest ----------------------------------------------

// One checkpoint as the manifest lists it.
struct checkpoint_entry {
    std::int64_t step = 0;
    std::string model_file, trainer_file;  // names inside the checkpoint directory
    std::uint64_t model_size = 0, trainer_size = 0;
    std::uint32_t model_crc32 = 0, trainer_crc32 = 0;
};

// What the manifest says: the current checkpoint first, then older ones still kept, newest first.
struct checkpoint_manifest {
    std::filesystem::path dir;
    std::string spec;
    std::uint64_t spec_hash = 0;
    std::string ouro_version;
    std::vector<checkpoint_entry> checkpoints;

    const checkpoint_entry& current() const { return checkpoints.front(); }
};

// A checkpoint directory has a manifest.
inline bool has_checkpoint(const std::filesystem::path& dir) {
    std::error_code ec;
    return std::filesystem::is_regular_file(dir / manifest_file_name, ec);
}

namespace checkpoint_detail {

inline nlohmann::json to_json(const checkpoint_entry& e) {
    return {{"step", e.step},
            {"model", e.model_file},
            {"model_bytes", e.model_size},
            {"model_crc32", hex(e.model_crc32, 8)},
            {"trainer", e.trainer_file},
            {"trainer_bytes", e.trainer_size},
            {"trainer_crc32", hex(e.trainer_crc32, 8)}};
}

inline std::uint32_t parse_crc(const nlohmann::json& j, const char* key, const std::string& what) {
    if (!j.contains(key) || !j[key].is_string()) fail(what, ": the manifest entry has no '", key, "' string");
    const std::string s = j[key].get<std::string>();
    std::uint32_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
    if (ec != std::errc() || p != s.data() + s.size() || s.size() != 8)
        fail(what, ": the manifest's '", key, "' is not 8 hex digits: '", s, "'");
    return v;
}

// A file name of the manifest must stay inside the checkpoint directory.
inline std::string plain_file_name(const nlohmann::json& j, const char* key, const std::string& what) {
    if (!j.contains(key) || !j[key].is_string()) fail(what, ": the manifest entry has no '", key, "' file name");
    const std::string name = j[key].get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name.find('\\') != std::string::npos || name == "." ||
        name == "..")
        fail(what, ": the manifest's '", key, "' is not a plain file name: '", name, "'");
    return name;
}

inline checkpoint_entry entry_from_json(const nlohmann::json& j, const std::string& what) {
    if (!j.is_object()) fail(what, ": a manifest entry is not a JSON object");
    checkpoint_entry e;
    if (!j.contains("step") || !j["step"].is_number_integer()) fail(what, ": a manifest entry has no integer 'step'");
    e.step = j["step"].get<std::int64_t>();
    e.model_file = plain_file_name(j, "model", what);
    e.trainer_file = plain_file_name(j, "trainer", what);
    for (const char* key : {"model_bytes", "trainer_bytes"})
        if (!j.contains(key) || !j[key].is_number_unsigned()) fail(what, ": a manifest entry has no '", key, "' count");
    e.model_size = j["model_bytes"].get<std::uint64_t>();
    e.trainer_size = j["trainer_bytes"].get<std::uint64_t>();
    e.model_crc32 = parse_crc(j, "model_crc32", what);
    e.trainer_crc32 = parse_crc(j, "trainer_crc32", what);
    return e;
}

// Requires `file` to have the size and CRC-32 the manifest gives it.
inline void verify_file(const std::filesystem::path& file, std::uint64_t size, std::uint32_t crc) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        fail(file.string(), ": missing checkpoint file (named by ", (file.parent_path() / manifest_file_name).string(),
             ")");
    const auto [found_crc, found_size] = file_crc32(file);
    if (found_size != size)
        fail(file.string(), ": truncated or altered checkpoint file: it has ", found_size, " bytes, the manifest says ",
             size);
    if (found_crc != crc)
        fail(file.string(), ": corrupt checkpoint file: its CRC-32 is ", hex(found_crc, 8), ", the manifest says ",
             hex(crc, 8));
}

}  // namespace checkpoint_detail

// Reads and checks the manifest of `dir` (not the files it names).
inline checkpoint_manifest read_checkpoint_manifest(const std::filesystem::path& dir) {
    using json = nlohmann::json;
    const std::filesystem::path file = dir / manifest_file_name;
    const std::string what = file.string();
    if (!has_checkpoint(dir)) fail(what, ": no checkpoint: the manifest does not exist");
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(what, ": cannot open the checkpoint manifest");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail(what, ": not a checkpoint manifest: not valid JSON (", e.what(), ")");
    }
    if (!j.is_object() || !j.contains("format") || !j["format"].is_string())
        fail(what, ": not a checkpoint manifest: no \"format\"");
    if (j["format"].get<std::string>() != manifest_format)
        fail(what, ": expected a manifest of format '", manifest_format, "', found '", j["format"].get<std::string>(),
             "'");
    checkpoint_manifest m;
    m.dir = dir;
    for (const char* key : {"spec", "spec_hash", "ouro_version"})
        if (!j.contains(key) || !j[key].is_string()) fail(what, ": the manifest has no '", key, "' string");
    m.spec = j["spec"].get<std::string>();
    m.ouro_version = j["ouro_version"].get<std::string>();
    const std::string h = j["spec_hash"].get<std::string>();
    const auto [p, ec] = std::from_chars(h.data(), h.data() + h.size(), m.spec_hash, 16);
    if (ec != std::errc() || p != h.data() + h.size()) fail(what, ": the manifest's 'spec_hash' is not hex: '", h, "'");
    if (!j.contains("checkpoints") || !j["checkpoints"].is_array() || j["checkpoints"].empty())
        fail(what, ": the manifest lists no checkpoint");
    for (const auto& e : j["checkpoints"]) m.checkpoints.push_back(checkpoint_detail::entry_from_json(e, what));
    return m;
}

// A checkpoint whose two files have been verified (size, CRC-32, format, binding, spec) and whose
// metadata has been read; restore_checkpoint then loads its tensors.
struct checkpoint_contents {
    checkpoint_entry entry;
    std::filesystem::path model_path, trainer_path;
    io::safetensors_metadata model_metadata, trainer_metadata;
};

// Verifies the checkpoint of `dir` at `step` (-1: the current one) against `id` and returns its
// metadata; changes nothing. Throws ouro::error for a missing, truncated, corrupt, foreign or
// mismatched file, or a model of another spec (showing both spec strings).
inline checkpoint_contents inspect_checkpoint(const std::filesystem::path& dir, const model_identity& id,
                                              std::int64_t step = -1) {
    using checkpoint_detail::hex;
    const checkpoint_manifest m = read_checkpoint_manifest(dir);
    const std::string what = (dir / manifest_file_name).string();
    if (m.spec != id.spec || m.spec_hash != id.hash)
        fail(what, ": the checkpoint holds a model of another spec: the checkpoint's spec is '", m.spec, "' (hash ",
             hex(m.spec_hash, 16), "), this model's spec is ", checkpoint_detail::describe(id));
    const checkpoint_entry* chosen = nullptr;
    for (const auto& e : m.checkpoints)
        if (step < 0 || e.step == step) {
            chosen = &e;
            break;
        }
    if (!chosen) {
        std::string steps;
        for (const auto& e : m.checkpoints) steps += (steps.empty() ? "" : ", ") + std::to_string(e.step);
        fail(what, ": no checkpoint of step ", step, "; the manifest lists steps ", steps);
    }
    checkpoint_contents c;
    c.entry = *chosen;
    c.model_path = dir / chosen->model_file;
    c.trainer_path = dir / chosen->trainer_file;
    checkpoint_detail::verify_file(c.model_path, chosen->model_size, chosen->model_crc32);
    checkpoint_detail::verify_file(c.trainer_path, chosen->trainer_size, chosen->trainer_crc32);

    c.model_metadata = io::read_safetensors_metadata(c.model_path);
    c.trainer_metadata = io::read_safetensors_metadata(c.trainer_path);
    const std::string mp = c.model_path.string(), tp = c.trainer_path.string();
    if (checkpoint_detail::get(c.model_metadata, "format", mp) != model_file_format)
        fail(mp, ": expected a model file of format '", model_file_format, "', found '", c.model_metadata["format"],
             "'");
    if (checkpoint_detail::get(c.trainer_metadata, "format", tp) != trainer_file_format)
        fail(tp, ": expected a trainer state file of format '", trainer_file_format, "', found '",
             c.trainer_metadata["format"], "'");
    checkpoint_detail::require_identity(c.model_metadata, id, mp);
    checkpoint_detail::require_identity(c.trainer_metadata, id, tp);
    const std::int64_t model_step = checkpoint_detail::parse_int(c.model_metadata, "step", mp);
    const std::int64_t trainer_step = checkpoint_detail::parse_int(c.trainer_metadata, "step", tp);
    const std::string& bound = checkpoint_detail::get(c.trainer_metadata, "model_crc32", tp);
    if (bound != hex(chosen->model_crc32, 8) || model_step != trainer_step || model_step != chosen->step)
        fail(what, ": mismatched checkpoint pair: the trainer state ", chosen->trainer_file, " (step ", trainer_step,
             ") was saved with the model file of CRC-32 ", bound, ", but the manifest pairs it with ",
             chosen->model_file, " (step ", model_step, ", CRC-32 ", hex(chosen->model_crc32, 8), ")");
    return c;
}

// What a trainer saves beside the weights: its optimiser's state (any optim::optimizer: its
// buffers as "<name>.<buffer>.<parameter>" tensors and "<name>_step"; AdamW's are torch's names)
// and the EMA, which may be null (no average kept).
template <real_scalar T, class Opt, backend B = cpu>
requires optim::optimizer<Opt, T, B>
struct trainer_state_ref {
    std::int64_t step = 0;
    const Opt* optimizer = nullptr;
    const optim::ema<T, B>* ema = nullptr;
    io::safetensors_metadata metadata;  // the trainer's own: seed, options, data fingerprint, ...
};

namespace checkpoint_detail {
// "adamw.exp_avg.": the prefix of state buffer i's tensors in a trainer file.
template <class Opt>
std::string state_prefix(std::size_t i) {
    return std::string(Opt::name) + "." + std::string(Opt::state_names[i]) + ".";
}
}  // namespace checkpoint_detail

// Writes a checkpoint of `store` and `state` into `dir` and makes it the current one (see the top
// of this file), then removes files the manifest no longer lists, keeping the `keep` newest
// checkpoints. Requires finite weights, moments and EMA: a poisoned state is refused, and the last
// good checkpoint stays current. Returns the new manifest entry.
template <real_scalar T, class Opt, backend B>
checkpoint_entry write_checkpoint(const std::filesystem::path& dir, const parameter_store<T, B>& store,
                                  const model_identity& id, const trainer_state_ref<T, Opt, B>& state, int keep = 2) {
    namespace fs = std::filesystem;
    using checkpoint_detail::hex;
    require(keep >= 1, "write_checkpoint: expected keep >= 1, found ", keep);
    require(state.optimizer != nullptr, "write_checkpoint: the trainer state has no optimizer");
    require(state.optimizer->size() == store.size(), "write_checkpoint: the optimizer has ", state.optimizer->size(),
            " elements, the store ", store.size());
    require(!state.ema || state.ema->size() == store.size(), "write_checkpoint: the EMA has ",
            state.ema ? state.ema->size() : 0, " elements, the store ", store.size());
    // Every buffer as the host sees it (copies when B's memory is not the host's).
    const host_readable<T, B> weights(store.values(), store.size());
    std::vector<host_readable<T, B>> states;
    for (std::size_t i = 0; i < Opt::state_names.size(); ++i)
        states.emplace_back(state.optimizer->state(i), store.size());
    const std::optional<host_readable<T, B>> ema =
        state.ema ? std::optional<host_readable<T, B>>(std::in_place, state.ema->values(), store.size()) : std::nullopt;
    checkpoint_detail::require_finite_buffer(store, weights.data(), "weights");
    for (std::size_t i = 0; i < Opt::state_names.size(); ++i)
        checkpoint_detail::require_finite_buffer(
            store, states[i].data(), (std::string(Opt::name) + " " + std::string(Opt::state_names[i])).c_str());
    if (ema) checkpoint_detail::require_finite_buffer(store, ema->data(), "EMA weights");

    // The model file.
    const std::string model_bytes = serialize_model_file(store, weights.data(), id, state.step);
    checkpoint_entry e;
    e.step = state.step;
    e.model_size = model_bytes.size();
    e.model_crc32 = checkpoint_detail::crc32_bytes(model_bytes.data(), model_bytes.size());
    e.model_file = checkpoint_detail::pair_file_name("model", state.step, e.model_crc32);

    // The trainer file, bound to the model file by its CRC.
    io::safetensors_writer writer;
    for (std::size_t i = 0; i < Opt::state_names.size(); ++i)
        io::add_parameter_buffer(writer, store, states[i].data(), checkpoint_detail::state_prefix<Opt>(i));
    if (ema) io::add_parameter_buffer(writer, store, ema->data(), "ema.");
    writer.set_metadata(state.metadata);
    writer.set_metadata("format", trainer_file_format);
    writer.set_metadata("spec", id.spec);
    writer.set_metadata("spec_hash", hex(id.hash, 16));
    writer.set_metadata("ouro_version", library_version);
    writer.set_metadata("step", std::to_string(state.step));
    writer.set_metadata("optimizer", std::string(Opt::name));
    writer.set_metadata(std::string(Opt::name) + "_step", std::to_string(state.optimizer->step_count()));
    writer.set_metadata("ema", state.ema ? "on" : "off");
    writer.set_metadata("ema_updates", std::to_string(state.ema ? state.ema->update_count() : 0));
    writer.set_metadata("model_file", e.model_file);
    writer.set_metadata("model_crc32", hex(e.model_crc32, 8));
    const std::string trainer_bytes = writer.serialize();
    e.trainer_size = trainer_bytes.size();
    e.trainer_crc32 = checkpoint_detail::crc32_bytes(trainer_bytes.data(), trainer_bytes.size());
    e.trainer_file = checkpoint_detail::pair_file_name("trainer", state.step, e.trainer_crc32);

    fs::create_directories(dir);
    io::write_file_atomically(dir / e.model_file, model_bytes);
    io::write_file_atomically(dir / e.trainer_file, trainer_bytes);

    // The new manifest: this checkpoint, then the kept older ones of a readable old manifest
    // (steps below this one: a resumed run that saves again at an earlier step drops the later ones).
    std::vector<checkpoint_entry> list{e};
    if (has_checkpoint(dir)) {
        try {
            const checkpoint_manifest old = read_checkpoint_manifest(dir);
            if (old.spec == id.spec)
                for (const auto& o : old.checkpoints)
                    if (o.step < e.step && static_cast<int>(list.size()) < keep) list.push_back(o);
        } catch (const error&) {
            // An unreadable old manifest is replaced; its files are removed below.
        }
    }
    nlohmann::json j = {{"format", manifest_format},
                        {"spec", id.spec},
                        {"spec_hash", hex(id.hash, 16)},
                        {"ouro_version", library_version},
                        {"checkpoints", nlohmann::json::array()}};
    for (const auto& c : list) j["checkpoints"].push_back(checkpoint_detail::to_json(c));
    io::write_file_atomically(dir / manifest_file_name, j.dump(2) + "\n");

    // Remove checkpoint files the manifest does not list (older ones, orphans of a crashed save,
    // temporary files). Only names of our own pattern are touched.
    static const std::regex ours(R"((model|trainer)-\d{8,}-[0-9a-f]{8}\.safetensors(\.tmp)?)");
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir, ec)) {
        const std::string name = f.path().filename().string();
        if (!std::regex_match(name, ours)) continue;
        const bool listed = std::any_of(list.begin(), list.end(), [&](const checkpoint_entry& c) {
            return c.model_file == name || c.trainer_file == name;
        });
        if (!listed) fs::remove(f.path(), ec);
    }
    return e;
}

// Where restore_checkpoint puts the trainer state; `ema` null when the trainer keeps none.
template <real_scalar T, class Opt, backend B = cpu>
requires optim::optimizer<Opt, T, B>
struct trainer_state_target {
    Opt* optimizer = nullptr;
    optim::ema<T, B>* ema = nullptr;
};

// Refuses a checkpoint whose trainer file was saved by another optimiser than Opt, naming both.
template <class Opt>
void require_optimizer(const checkpoint_contents& c) {
    // Files written before the optimiser was a policy name none: AdamW was the only one then.
    const auto saved_by = c.trainer_metadata.find("optimizer");
    const std::string file_optimizer = saved_by == c.trainer_metadata.end() ? "adamw" : saved_by->second;
    if (file_optimizer != Opt::name)
        fail(c.trainer_path.string(), ": the checkpoint was saved by the optimizer '", file_optimizer,
             "', this trainer uses '", Opt::name, "'");
}

// Loads the weights of a verified checkpoint into `store` and its trainer state into `target`.
// Everything is read into scratch buffers and checked first; the store, optimizer and EMA change
// only when all of it fits. Returns the checkpoint's step.
template <real_scalar T, class Opt, backend B>
std::int64_t restore_checkpoint(const checkpoint_contents& c, parameter_store<T, B>& store, const model_identity& id,
                                const trainer_state_target<T, Opt, B>& target) {
    require(target.optimizer != nullptr, "restore_checkpoint: no optimizer to restore into");
    require_optimizer<Opt>(c);
    const std::string tp = c.trainer_path.string();
    const bool file_has_ema = checkpoint_detail::get(c.trainer_metadata, "ema", tp) == "on";
    if (file_has_ema != (target.ema != nullptr))
        fail(tp, ": the checkpoint was saved ", file_has_ema ? "with" : "without",
             " an EMA of the weights, this trainer keeps ", target.ema ? "one" : "none");
    const std::int64_t optimizer_steps =
        checkpoint_detail::parse_int(c.trainer_metadata, std::string(Opt::name) + "_step", tp);
    const std::int64_t ema_updates = checkpoint_detail::parse_int(c.trainer_metadata, "ema_updates", tp);
    require(optimizer_steps >= 0 && ema_updates >= 0, tp, ": negative step counts in the metadata");

    const auto n = static_cast<std::size_t>(store.size());
    aligned_vector<T> weights(n, T{}), e(file_has_ema ? n : 0, T{});
    std::array<aligned_vector<T>, Opt::state_names.size()> states;
    for (auto& b : states) b.assign(n, T{});
    {
        io::safetensors_reader reader(c.model_path);
        checkpoint_detail::require_identity(reader.metadata(), id, c.model_path.string());
        io::read_parameter_buffer(reader, store, weights.data());
    }
    {
        io::safetensors_reader reader(c.trainer_path);
        for (std::size_t i = 0; i < states.size(); ++i)
            io::read_parameter_buffer(reader, store, states[i].data(), checkpoint_detail::state_prefix<Opt>(i));
        if (file_has_ema) io::read_parameter_buffer(reader, store, e.data(), "ema.");
        for (const auto& entry : reader.entries()) {
            const std::string_view name = entry.name;
            bool known = name.starts_with("ema.");
            for (std::size_t i = 0; i < states.size(); ++i)
                known = known || name.starts_with(checkpoint_detail::state_prefix<Opt>(i));
            if (!known) fail(tp, ": unexpected tensor '", entry.name, "' in a trainer state file");
        }
    }
    // Sizes and CRCs were verified, but a pair written by other code (or damaged and re-checksummed)
    // may hold NaN or Inf; a resume from it would fail at its first step, far from the file's name.
    checkpoint_detail::require_finite_loaded(store, weights.data(), c.model_path.string(), "weights");
    for (std::size_t i = 0; i < states.size(); ++i)
        checkpoint_detail::require_finite_loaded(
            store, states[i].data(), tp, (std::string(Opt::name) + " " + std::string(Opt::state_names[i])).c_str());
    if (file_has_ema) checkpoint_detail::require_finite_loaded(store, e.data(), tp, "EMA weights");
    require(target.optimizer->size() == store.size(), "restore_checkpoint: the optimizer has ",
            target.optimizer->size(), " elements, the store ", store.size());
    checkpoint_detail::put<B>(weights, store.values());
    for (std::size_t i = 0; i < states.size(); ++i) checkpoint_detail::put<B>(states[i], target.optimizer->state(i));
    target.optimizer->set_step_count(optimizer_steps);
    if (target.ema) {
        checkpoint_detail::put<B>(e, target.ema->values());
        target.ema->set_update_count(ema_updates);
    }
    return c.entry.step;
}

// Which weights of a checkpoint a model for sampling gets.
enum class checkpoint_weights {
    trained,  // the optimizer's weights (the model file)
    ema,      // the exponential moving average (what diffusion models sample with)
};

// Loads the weights of the checkpoint in `dir` (the current one, or that of `step`) into `model`,
// for sampling or evaluation. Returns the checkpoint's step.
template <class Model>
std::int64_t load_checkpoint_weights(const std::filesystem::path& dir, Model& model,
                                     checkpoint_weights which = checkpoint_weights::ema, std::int64_t step = -1) {
    const model_identity id = identity_of<Model>();
    const checkpoint_contents c = inspect_checkpoint(dir, id, step);
    auto& store = model.store();
    if (which == checkpoint_weights::trained) {
        load_model_file(c.model_path, store, id);
    } else {
        const std::string tp = c.trainer_path.string();
        if (checkpoint_detail::get(c.trainer_metadata, "ema", tp) != "on")
            fail(tp, ": the checkpoint keeps no EMA of the weights; load checkpoint_weights::trained instead");
        io::safetensors_reader reader(c.trainer_path);
        aligned_vector<std::remove_pointer_t<decltype(store.values())>> weights(static_cast<std::size_t>(store.size()));
        io::read_parameter_buffer(reader, store, weights.data(), "ema.");
        checkpoint_detail::require_finite_loaded(store, weights.data(), tp, "EMA weights");
        checkpoint_detail::put<backend_of_t<Model>>(weights, store.values());
    }
    return c.entry.step;
}

}  // namespace ouro::diffusion
