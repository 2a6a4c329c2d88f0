// The self-consuming loop's pool on disk (#13: a step's memory must not grow with the pool).
//
// A chain's pool after generation k is D_r plus S_1 … S_k (every mode appends its S_k; none removes
// an item). Its floats are written once, where they are made:
//
//   chains/<method>/samples/gen<g>.safetensors   S_g as it entered the pool: data (n_g, item_size),
//                                                labels, ids (n_g) and G0 latents (n_g, D)
//   chains/<method>/gen<k>/pool.safetensors      the pool's index: labels, generations, ids (size)
//                                                and the CRC-32 of the real set and of every sample
//                                                file it draws on; no floats
//   real.safetensors                             D_r's floats (N, item_size), once per run, for tools
//                                                that read a pool whole (read_whole_pool)
//
// and generation 0's floats and latents are the real set's, which the loop holds anyway. A step
// restores only the index, adds S_k, scores the pool a chunk at a time (pool_reader::latents) and
// reads back the floats of the items it chooses (pool_reader::gather). So it holds 24 bytes of
// provenance and 8 of score per item, not item_size + D floats, and the disk holds each item once
// (the pool was rewritten whole every generation before).
//
// Pools written before this layout (save_pool: the floats and, optionally, latents inside the pool
// file) are still read: their items come back resident, and the step after them writes the new
// layout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <zlib.h>

#include "ouro/core/error.hpp"
#include "ouro/core/finite.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/loop/pool.hpp"

namespace ouro::loop::detail {

// CRC-32 of floats, as 8 hex digits: the real set's fingerprint in a pool index.
inline std::string floats_crc32(std::span<const float> v) {
    return io::detail::crc_hex(static_cast<std::uint32_t>(
        crc32_z(0, reinterpret_cast<const Bytef*>(v.data()), static_cast<z_size_t>(v.size() * sizeof(float)))));
}

// Where a restored pool's floats are: generation 0 is the real set (its CRC-32 recorded here);
// generation g >= 1 is the chain's sample file gen<g>, whose data CRC-32 is recorded here, so that
// a sample file replaced by another (itself intact) is refused rather than read.
struct pool_sources {
    std::string real_crc32;
    std::map<std::int64_t, std::string> sample_crc32;  // generation -> the sample file's data CRC-32
};

inline std::filesystem::path sample_file(const std::filesystem::path& samples_dir, std::int64_t generation) {
    return samples_dir / ("gen" + std::to_string(generation) + ".safetensors");
}

// The first item and the count of each generation in items first … size − 1 of `p`, which must
// hold each generation's items together (as the loop's pools do: each S_g is appended whole).
inline std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> generation_runs(const pool& p, std::int64_t first,
                                                                                     std::int64_t end) {
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> runs;
    for (std::int64_t i = first; i < end; ++i) {
        const std::int64_t g = p.generation(i);
        auto [it, fresh] = runs.try_emplace(g, i, 0);
        require(fresh || it->second.first + it->second.second == i, "pool: the items of generation ", g,
                " are not together (item ", i, " follows item ", it->second.first + it->second.second - 1,
                "); the loop's pools append each generation whole");
        ++it->second.second;
    }
    return runs;
}

// Writes S_g: the resident items first … first + count − 1 of `p` (all of generation g) with their
// latents (count, D). Returns the file's data CRC-32, for the pool index.
inline std::string save_sample_file(const std::filesystem::path& file, const pool& p, std::int64_t first,
                                    std::int64_t count, tensor_view<const float> latents, std::int64_t generation) {
    require(count > 0 && p.holds(first) && p.holds(first + count - 1) && latents.rank() == 2 && latents.dim(0) == count,
            file.string(), ": internal: cannot save items ", first, " … ", first + count - 1, " of a pool of ",
            p.size(), " (resident from ", p.resident_begin(), ") with latents ", latents.dims());
    for (std::int64_t i = first; i < first + count; ++i)
        require(p.generation(i) == generation, file.string(), ": internal: item ", i, " is of generation ",
                p.generation(i), ", not ", generation);
    const auto at = [&](std::span<const std::int64_t> v) { return v.data() + first; };
    io::safetensors_writer w;
    w.add("data", tensor_view<const float>(p.item(first).data(), shape{count, p.item_size()}));
    w.add("labels", tensor_view<const std::int64_t>(at(p.labels()), shape{count}));
    w.add("ids", tensor_view<const std::int64_t>(at(p.ids()), shape{count}));
    w.add("latents", latents);
    w.set_metadata("format", "ouro.loop.samples");
    w.set_metadata("generation", std::to_string(generation));
    w.set_data_checksum();
    w.write(file);
    return io::read_safetensors_metadata(file).at(io::safetensors_checksum_key);
}

// Writes the pool's index: every item's label, generation and id, and where its floats are.
inline void save_pool_index(const std::filesystem::path& file, const pool& p, const pool_sources& sources) {
    io::safetensors_writer w;
    w.add("labels", tensor_view<const std::int64_t>(p.labels().data(), shape{p.size()}));
    w.add("generations", tensor_view<const std::int64_t>(p.generations().data(), shape{p.size()}));
    w.add("ids", tensor_view<const std::int64_t>(p.ids().data(), shape{p.size()}));
    w.set_metadata("format", "ouro.loop.pool");
    w.set_metadata("floats", "in the real set and the chain's sample files");
    w.set_metadata("real_crc32", sources.real_crc32);
    std::string samples;
    for (const auto& [g, crc] : sources.sample_crc32) {
        if (!samples.empty()) samples += ' ';
        samples += std::to_string(g);
        samples += ':';
        samples += crc;
    }
    w.set_metadata("sample_crc32", samples);
    w.set_data_checksum();
    w.write(file);
}

// A pool with its floats inside the file (and, optionally, every item's G0 latents (size, D)): the
// layout the loop wrote before sample files, kept for pools held in memory whole.
inline void save_pool(const std::filesystem::path& file, const pool& p, std::span<const float> latents = {}) {
    // Written straight from the pool's storage: no copy of the pool is made to save it.
    io::safetensors_writer w;
    const auto n = static_cast<std::size_t>(p.size());
    w.add("data", tensor_view<const float>(p.data().data(), shape{p.size(), p.item_size()}));
    w.add("labels", tensor_view<const std::int64_t>(p.labels().data(), shape{p.size()}));
    w.add("generations", tensor_view<const std::int64_t>(p.generations().data(), shape{p.size()}));
    w.add("ids", tensor_view<const std::int64_t>(p.ids().data(), shape{p.size()}));
    if (!latents.empty()) {
        require(n > 0 && latents.size() % n == 0, file.string(), ": internal: ", latents.size(),
                " latent values for a pool of ", n, " items");
        w.add("latents",
              tensor_view<const float>(latents.data(), shape{p.size(), static_cast<std::int64_t>(latents.size() / n)}));
    }
    w.set_metadata("format", "ouro.loop.pool");
    w.set_data_checksum();
    w.write(file);
}

// Reads a pool file: an index (save_pool_index: no item resident, `sources` filled) or a whole pool
// (save_pool: every item resident; its latents, when the file holds them, read into `latents`
// ((size, D) row-major, finite), else `latents` left empty for the caller to recompute). Ids are
// re-assigned in order and must come out as saved. `extra_items`: room reserved for that many more
// resident items, so that the step which restores the pool adds its S_k without a copy.
inline pool load_pool(const std::filesystem::path& file, std::int64_t item_size, std::vector<float>* latents = nullptr,
                      std::int64_t extra_items = 0, pool_sources* sources = nullptr) {
    io::safetensors_reader r(file);  // verifies the data's CRC-32
    r.require_data_checksum();
    if (const auto f = r.metadata().find("format"); f == r.metadata().end() || f->second != "ouro.loop.pool")
        fail(file.string(), ": expected a pool file of this loop (metadata format 'ouro.loop.pool'), found ",
             f == r.metadata().end() ? std::string("no format") : "'" + f->second + "'");
    const tensor<std::int64_t> labels = r.read<std::int64_t>("labels"),
                               generations = r.read<std::int64_t>("generations"), ids = r.read<std::int64_t>("ids");
    const std::int64_t n = labels.numel();
    require(labels.rank() == 1 && generations.dims() == labels.dims() && ids.dims() == labels.dims(), file.string(),
            ": expected labels, generations and ids of one length, found ", labels.dims(), ", ", generations.dims(),
            ", ", ids.dims());
    if (latents) latents->clear();
    const auto labels_span = std::span<const std::int64_t>(labels.data(), static_cast<std::size_t>(n));
    const auto generations_span = std::span<const std::int64_t>(generations.data(), static_cast<std::size_t>(n));
    pool p(item_size);
    if (!r.contains("data")) {  // an index: the floats are in the real set and the sample files
        require(!r.contains("latents"), file.string(), ": a pool index holds no latents");
        pool_sources s;
        const auto& m = r.metadata();
        const auto real = m.find("real_crc32"), samples = m.find("sample_crc32");
        require(real != m.end() && samples != m.end(), file.string(),
                ": expected a pool index with metadata 'real_crc32' and 'sample_crc32', found neither or one");
        s.real_crc32 = real->second;
        std::string text = samples->second;
        for (std::size_t at = 0; at < text.size();) {
            const std::size_t end = std::min(text.find(' ', at), text.size()), colon = text.find(':', at);
            std::int64_t g = -1;
            try {
                if (colon < end) g = std::stoll(text.substr(at, colon - at));
            } catch (const std::exception&) {
            }
            require(g >= 1 && colon < end && end - colon == 9, file.string(), ": malformed 'sample_crc32' entry '",
                    text.substr(at, end - at), "' (expected <generation>:<8 hex digits>)");
            s.sample_crc32[g] = text.substr(colon + 1, 8);
            at = end + 1;
        }
        p = pool::without_floats(item_size, labels_span, generations_span);
        for (const auto& [g, run] : generation_runs(p, 0, n))
            require(g == 0 || s.sample_crc32.contains(g), file.string(), ": generation ", g,
                    "'s items have no sample file recorded in the index");
        if (sources) *sources = std::move(s);
    } else {
        const shape data_dims = r.at("data").dims;
        require(data_dims.rank() == 2 && data_dims[0] == n && data_dims[1] == item_size, file.string(),
                ": expected a pool of ", n, " items of ", item_size, " floats, found data ", data_dims);
        // The items go from the file into one block that holds the pool and its S_k to come.
        std::vector<float> block;
        block.reserve(static_cast<std::size_t>((n + extra_items) * item_size));
        block.resize(static_cast<std::size_t>(n * item_size));
        const tensor_view<float> data(block.data(), data_dims);
        r.read_into("data", data);
        // The loop never saves a non-finite item (the trainer refuses such data before training), so
        // one here means the file was written by someone else; refused here, where the file has a name.
        if (const std::int64_t bad = first_non_finite(data.data(), data.numel()); bad >= 0)
            fail(file.string(), ": pool item ", bad / item_size, " holds a non-finite value (", data[bad],
                 " at element ", bad % item_size, ")");
        if (latents && r.contains("latents")) {
            const shape dims = r.at("latents").dims;
            require(dims.rank() == 2 && dims[0] == n && dims[1] >= 1, file.string(), ": expected latents (", n,
                    ", D) for its ", n, " items, found ", dims);
            latents->reserve(static_cast<std::size_t>((n + extra_items) * dims[1]));
            latents->resize(static_cast<std::size_t>(n * dims[1]));
            r.read_into("latents", tensor_view<float>(latents->data(), dims));
            if (const std::int64_t bad = first_non_finite(latents->data(), n * dims[1]); bad >= 0)
                fail(file.string(), ": the latent of pool item ", bad / dims[1], " holds a non-finite value");
        }
        p = pool(item_size, std::move(block), labels_span, generations_span);
        if (sources) *sources = {};
    }
    p.reserve(n + extra_items);
    for (std::int64_t i = 0; i < n; ++i)
        require(p.id(i) == ids[i], file.string(), ": item ", i, " has id ", ids[i], ", expected ", p.id(i),
                " (the pool file was not written by this loop)");
    return p;
}

// D_r as the run uses it: data (N, item_size) and the floats' CRC-32 that pool indexes record. Written
// once; a run directory whose file holds another real set is refused (the data changed under it).
inline void save_or_check_real_file(const std::filesystem::path& file, tensor_view<const float> images,
                                    const std::string& crc32) {
    if (std::filesystem::exists(file)) {
        const io::safetensors_metadata m = io::read_safetensors_metadata(file);
        const auto found = m.find("floats_crc32");
        require(found != m.end() && found->second == crc32, file.string(),
                ": this run directory's real set has CRC-32 ",
                found == m.end() ? std::string("(none recorded)") : found->second, ", this run's has ", crc32,
                " (the data changed under the run directory; use the same data, or start a new --out)");
        return;
    }
    const std::int64_t n = images.dim(0);
    io::safetensors_writer w;
    w.add("data", tensor_view<const float>(images.data(), shape{n, images.numel() / std::max<std::int64_t>(n, 1)}));
    w.set_metadata("format", "ouro.loop.real");
    w.set_metadata("floats_crc32", crc32);
    w.set_data_checksum();
    w.write(file);
}

// D_r as a pool reader sees it: its images (N, …), their G0 latents (N, D), and the CRC-32 of the
// images' floats (floats_crc32), which the caller computes once per run (a pool index records it).
struct real_set_view {
    tensor_view<const float> images, latents;
    std::string crc32;
};

// Reads a chain's pool items wherever their floats and latents are: resident items from the pool
// and `resident_latents` ((size − resident_begin, D)), generation 0 from the real set (item i is
// real row i), generation g from the sample file gen<g> (opened once and kept while the next items
// come from it too; its CRC-32 checked against the index's record).
class pool_reader {
public:
    pool_reader(const pool& p, const pool_sources& sources, std::filesystem::path samples_dir,
                const real_set_view& real, std::span<const float> resident_latents)
        : pool_(p),
          sources_(sources),
          samples_dir_(std::move(samples_dir)),
          real_images_(real.images),
          real_latents_(real.latents),
          resident_latents_(resident_latents),
          d_(real.latents.dim(1)) {
        require(real.latents.rank() == 2 && real.images.dim(0) == real.latents.dim(0) &&
                    static_cast<std::int64_t>(resident_latents.size()) == (p.size() - p.resident_begin()) * d_,
                "pool_reader: expected real images and latents of one count and latents (",
                p.size() - p.resident_begin(), ", ", d_, ") for the resident items, found ", real.images.dims(), ", ",
                real.latents.dims(), " and ", resident_latents.size(), " values");
        runs_ = generation_runs(p, 0, p.resident_begin());
        if (const auto generation0 = runs_.find(0); generation0 != runs_.end()) {
            const auto [first, count] = generation0->second;
            require(first == 0 && count <= real.images.dim(0), "pool_reader: the pool's real items (", count,
                    " from item ", first, ") are not the first rows of the real set of ", real.images.dim(0));
            require(sources.real_crc32 == real.crc32, "the chain's pool was built on a real set with CRC-32 ",
                    sources.real_crc32, ", this run's real set has ", real.crc32,
                    " (the data changed under the run directory; start a new --out)");
        }
    }

    std::int64_t latent_dim() const { return d_; }

    // Latents of items first … first + count − 1: (count, D).
    tensor<float> latents(std::int64_t first, std::int64_t count) {
        require(first >= 0 && count >= 0 && first + count <= pool_.size(), "pool_reader: items ", first, " … ",
                first + count - 1, " outside the pool of ", pool_.size());
        tensor<float> out(shape{count, d_});
        for (std::int64_t i = first; i < first + count;) {
            const segment s = segment_of_(i);
            const std::int64_t n = std::min(first + count, s.end) - i;
            const tensor_view<float> rows(out.data() + (i - first) * d_, shape{n, d_});
            if (s.from_file) file_(s.generation).read_rows_into("latents", i - s.begin, rows);
            else
                std::copy_n(s.latents + (i - s.begin) * d_, n * d_, rows.data());
            i += n;
        }
        return out;
    }

    // The floats of items `chosen` into `floats` (|chosen| * item_size, in order) and their latents
    // into `latents` (|chosen|, D). Each sample file is opened at most once.
    void gather(std::span<const std::int64_t> chosen, std::span<float> floats, tensor_view<float> latents) {
        const std::int64_t item = pool_.item_size(), count = static_cast<std::int64_t>(chosen.size());
        require(static_cast<std::int64_t>(floats.size()) == count * item && latents.dims() == shape{count, d_},
                "pool_reader::gather: expected room for ", count, " items and latents (", count, ", ", d_, "), found ",
                floats.size(), " floats and ", latents.dims());
        std::vector<std::int64_t> order(chosen.size());  // positions in chosen, by item: files in order
        for (std::size_t k = 0; k < order.size(); ++k) order[k] = static_cast<std::int64_t>(k);
        std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
            return chosen[static_cast<std::size_t>(a)] < chosen[static_cast<std::size_t>(b)];
        });
        for (const std::int64_t k : order) {
            const std::int64_t i = chosen[static_cast<std::size_t>(k)];
            require(i >= 0 && i < pool_.size(), "pool_reader::gather: item ", i, " outside the pool of ", pool_.size());
            float* to = floats.data() + k * item;
            float* to_latent = latents.data() + k * d_;
            const segment s = segment_of_(i);
            if (s.from_file) {
                io::safetensors_reader& r = file_(s.generation);
                r.read_rows_into("data", i - s.begin, tensor_view<float>(to, shape{1, item}));
                r.read_rows_into("latents", i - s.begin, tensor_view<float>(to_latent, shape{1, d_}));
            } else {
                const float* x = s.floats + (i - s.begin) * item;
                std::copy_n(x, item, to);
                std::copy_n(s.latents + (i - s.begin) * d_, d_, to_latent);
            }
        }
        // A sample file holds what the loop sampled (finite: the sampler refuses otherwise); a
        // non-finite value read from one means the file was written by someone else.
        if (const std::int64_t bad = first_non_finite(floats.data(), static_cast<std::int64_t>(floats.size()));
            bad >= 0)
            fail("pool item ", chosen[static_cast<std::size_t>(bad / item)], " (read from ",
                 describe_(chosen[static_cast<std::size_t>(bad / item)]), ") holds a non-finite value");
    }

private:
    struct segment {
        std::int64_t begin, end, generation;
        bool from_file;
        const float* floats;  // for the others: row 0 is item `begin`
        const float* latents;
    };

    segment segment_of_(std::int64_t i) const {
        const std::int64_t rb = pool_.resident_begin();
        if (i >= rb)
            return {
                rb, pool_.size(), pool_.generation(i), false, pool_.resident_data().data(), resident_latents_.data()};
        const auto [first, count] = runs_.at(pool_.generation(i));
        if (pool_.generation(i) == 0)
            return {first, first + count, 0, false, real_images_.data(), real_latents_.data()};
        return {first, first + count, pool_.generation(i), true, nullptr, nullptr};
    }

    std::string describe_(std::int64_t i) const {
        return pool_.holds(i)             ? std::string("memory")
               : pool_.generation(i) == 0 ? std::string("the real set")
                                          : sample_file(samples_dir_, pool_.generation(i)).string();
    }

    // The sample file of generation g, opened and checked against the index (once per file in a row).
    io::safetensors_reader& file_(std::int64_t g) {
        if (open_ && open_generation_ == g) return *open_;
        const std::filesystem::path path = sample_file(samples_dir_, g);
        const auto expected = sources_.sample_crc32.find(g);
        require(expected != sources_.sample_crc32.end(), path.string(),
                ": the pool index records no sample file of generation ", g);
        open_.reset();
        open_.emplace(path);  // verifies the data's CRC-32
        io::safetensors_reader& r = *open_;
        r.require_data_checksum();
        const auto& m = r.metadata();
        const auto format = m.find("format"), generation = m.find("generation");
        require(format != m.end() && format->second == "ouro.loop.samples" && generation != m.end() &&
                    generation->second == std::to_string(g),
                path.string(), ": expected the loop's samples of generation ", g,
                " (metadata format 'ouro.loop.samples', generation ", g, "), found another file");
        const std::string& crc = m.at(io::safetensors_checksum_key);
        require(crc == expected->second, path.string(), ": its data's CRC-32 is ", crc, ", the pool index records ",
                expected->second, " (the file was replaced after the pool was saved)");
        const auto [first, count] = runs_.at(g);
        require(r.at("data").dims == shape{count, pool_.item_size()} && r.at("latents").dims == shape{count, d_},
                path.string(), ": expected data (", count, ", ", pool_.item_size(), ") and latents (", count, ", ", d_,
                "), found ", r.at("data").dims, " and ", r.at("latents").dims);
        const tensor<std::int64_t> ids = r.read<std::int64_t>("ids"), labels = r.read<std::int64_t>("labels");
        require(ids.dims() == shape{count} && labels.dims() == shape{count}, path.string(), ": expected ", count,
                " ids and labels, found ", ids.dims(), " and ", labels.dims());
        for (std::int64_t k = 0; k < count; ++k)
            require(ids[k] == pool_.id(first + k) && labels[k] == pool_.label(first + k), path.string(), ": row ", k,
                    " has id ", ids[k], " and label ", labels[k], ", the pool index has ", pool_.id(first + k), " and ",
                    pool_.label(first + k));
        open_generation_ = g;
        return r;
    }

    const pool& pool_;
    const pool_sources& sources_;
    std::filesystem::path samples_dir_;
    tensor_view<const float> real_images_, real_latents_;
    std::span<const float> resident_latents_;
    std::int64_t d_;
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> runs_;  // of the items not resident
    std::optional<io::safetensors_reader> open_;
    std::int64_t open_generation_ = -1;
};

}  // namespace ouro::loop::detail

namespace ouro::loop {

// A chain's pool after a generation with every item's floats in memory: for tools that look at a
// finished run (examples/lsf_steps); the loop itself never holds a pool whole. `run_dir` is the run
// directory, `pool_file` one of its chains/<method>/gen<k>/pool.safetensors. Pools written before
// sample files, which hold their floats, are read as they are.
inline pool read_whole_pool(const std::filesystem::path& run_dir, const std::filesystem::path& pool_file,
                            std::int64_t item_size) {
    detail::pool_sources sources;
    const pool index = detail::load_pool(pool_file, item_size, nullptr, 0, &sources);
    if (index.resident_begin() == 0) return index;
    pool whole(item_size);
    whole.reserve(index.size());
    const std::filesystem::path samples = pool_file.parent_path().parent_path() / "samples";
    for (const auto& [g, run] : detail::generation_runs(index, 0, index.size())) {
        const auto [first, count] = run;
        const std::filesystem::path file = g == 0 ? run_dir / "real.safetensors" : detail::sample_file(samples, g);
        io::safetensors_reader r(file);
        r.require_data_checksum();
        // The index records D_r by its floats' CRC-32 and a sample file by its data checksum.
        const auto recorded = r.metadata().find(g == 0 ? "floats_crc32" : io::safetensors_checksum_key);
        const std::string& expected = g == 0 ? sources.real_crc32 : sources.sample_crc32.at(g);
        require(recorded != r.metadata().end() && recorded->second == expected, file.string(),
                ": not the file the pool index ", pool_file.string(), " records (CRC-32 ", expected, ")");
        tensor<float> floats(shape{count, item_size});
        r.read_rows_into("data", 0, floats.view());
        whole.add({floats.data(), static_cast<std::size_t>(floats.numel())},
                  index.labels().subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(count)), g);
    }
    return whole;
}

}  // namespace ouro::loop
