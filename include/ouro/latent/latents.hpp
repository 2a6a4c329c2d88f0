// Latent Space Filtering's latents (Cai, Wang, Liu & Zhang, "Stabilizing Self-Consuming Diffusion
// Models with Latent Space Filtering", AAAI-26, §3): h_t(x) = pool(enc(√ᾱ_t·x + √(1−ᾱ_t)·ε, t, y))
// read from a frozen model's encoder, optionally averaged over R noise draws; the pooling policies
// that turn a bottleneck into a feature vector; and the per-dimension standardisation fitted on the
// real set and applied to every other set.
//
//   latent::latent_extractor ex(g0, diffusion::schedule_table(diffusion::linear_ho2020{}, 1000),
//                               {.timestep = 50, .draws = 4, .seed = 7}, latent::spatial_mean{});
//   tensor<float> h_real = ex.extract(real_set);                       // (N, D)
//   const auto stdz = latent::standardizer::fit(h_real);
//   tensor<float> h_fake = stdz.apply(ex.extract(pool_images, pool_labels, pool_ids));
//
// Reproducibility: ε of draw r of an item is a pure function of (seed, the item's stable id, r), and
// every encode call sees exactly one (item, draw), so an item's latent is bitwise the same whether it
// is extracted alone or among others, at any batch size and any thread count. (One item per call is
// what makes this hold: a GEMM over a batch rounds each row differently depending on the batch's
// size and the row's position in it.) Threads work on different items, each with its own replica of
// the model when the model can be replicated (see replicable_encoder).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/progress.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/forward_process.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/io/safetensors.hpp"

namespace ouro::latent {

// The Philox purpose of the latent noise, apart from the training noise that shares a seed.
inline constexpr rng_purpose latent_noise_purpose = rng_purpose::latent_noise;

// Item ids take the low 40 bits of the noise stream's index and the draw the 24 bits above them.
inline constexpr int latent_id_bits = 40;
inline constexpr std::int64_t max_latent_id = (std::int64_t{1} << latent_id_bits) - 1;
inline constexpr std::int64_t max_latent_draws = std::int64_t{1} << (64 - latent_id_bits);

// The Philox index of draw `draw` of item `id`: (draw << 40) | id. Draw 0 of item i is index i.
constexpr std::uint64_t latent_noise_index(std::int64_t id, std::int64_t draw) {
    return (static_cast<std::uint64_t>(draw) << latent_id_bits) | static_cast<std::uint64_t>(id);
}

// ---- Models -----------------------------------------------------------------------------------

// A model with an encoder of nn::unet's signature: noisy images x_t (B, C, H, W), timesteps t (B)
// and labels y (B) (or an empty view, shape (0), when unconditional) -> a bottleneck (B, ...) whose
// rows do not depend on each other. The returned view may point into the model's own buffers.
template <class M>
concept encoder = requires(M& m, tensor_view<const float> x_t, tensor_view<const std::int64_t> t,
                           tensor_view<const std::int64_t> y) {
    { m.encode(x_t, t, y) } -> std::convertible_to<tensor_view<const float>>;
};

// static_assert(check_encoder<M>()) explains in words what M lacks.
template <class M>
constexpr bool check_encoder() {
    static_assert(encoder<M>,
                  "a latent encoder needs `tensor_view<const float> encode(tensor_view<const float> x_t /*(B, C, H, W)*/, "
                  "tensor_view<const std::int64_t> t /*(B)*/, tensor_view<const std::int64_t> y /*(B) or (0)*/)` "
                  "returning its bottleneck (B, ...), as nn::unet has");
    return encoder<M>;
}

// An encoder the extractor can copy, one replica per thread: default-constructible, with all the
// state that encode reads in its float parameter store (true of nn::unet). Extraction then runs
// items on all threads at once; other encoders run items one after another, each call parallel
// inside. Both give the same bits.
template <class M>
concept replicable_encoder = encoder<M> && std::default_initializable<M> && requires(M& m) {
    { m.store() } -> std::same_as<parameter_store<float>&>;
};

// An encoder that states the images it takes and its classes (nn::unet's static unet_spec). The
// extractor then checks its input against the spec before any work, with messages in those terms.
template <class M>
concept specified_encoder = encoder<M> && requires {
    { M::spec.in_channels } -> std::convertible_to<std::int64_t>;
    { M::spec.image_size } -> std::convertible_to<std::int64_t>;
    { M::spec.classes } -> std::convertible_to<std::int64_t>;
};

// ---- Pooling ------------------------------------------------------------------------------------

// A pooling policy maps one item's bottleneck (e.g. (C, h, w)) to D features: dim(item_shape) says D
// (and refuses shapes it cannot pool, with an ouro::error), pool(h, out) writes them to out (D).
template <class P>
concept pooling = requires(const P& p, const shape& item, tensor_view<const float> h, tensor_view<float> out) {
    { P::name } -> std::convertible_to<const char*>;
    { p.dim(item) } -> std::convertible_to<std::int64_t>;
    p.pool(h, out);
};

// static_assert(check_pooling<P>()) explains in words what P lacks.
template <class P>
constexpr bool check_pooling() {
    static_assert(requires { { P::name } -> std::convertible_to<const char*>; },
                  "a pooling policy needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(requires(const P& p, const shape& item) { { p.dim(item) } -> std::convertible_to<std::int64_t>; },
                  "a pooling policy needs `std::int64_t dim(const shape& item) const`: the number of features of an "
                  "item's bottleneck of shape `item`, e.g. (C, h, w)");
    static_assert(requires(const P& p, tensor_view<const float> h, tensor_view<float> out) { p.pool(h, out); },
                  "a pooling policy needs `void pool(tensor_view<const float> h /*one item, e.g. (C, h, w)*/, "
                  "tensor_view<float> out /*(D)*/) const`");
    return pooling<P>;
}

namespace detail {
// (C, ...) with C >= 1 and at least one position: what the spatial poolings need.
inline void require_channels_first(const shape& item, const char* who) {
    require(item.rank() >= 2 && item[0] >= 1 && item.numel() >= 1, who,
            ": expected an item bottleneck (C, h, w) with C >= 1 and h·w >= 1, found shape ", item);
}
}  // namespace detail

// Every element, in the bottleneck's row-major order: D = C·h·w.
struct flatten {
    static constexpr const char* name = "flatten";
    std::int64_t dim(const shape& item) const {
        require(item.rank() >= 1 && item.numel() >= 1, "flatten: expected a non-empty item bottleneck, found shape ", item);
        return item.numel();
    }
    void pool(tensor_view<const float> h, tensor_view<float> out) const {
        std::copy(h.begin(), h.end(), out.begin());
    }
};

// The mean of each channel over its h·w positions, summed in order in double and rounded once: D = C.
struct spatial_mean {
    static constexpr const char* name = "spatial_mean";
    std::int64_t dim(const shape& item) const {
        detail::require_channels_first(item, name);
        return item[0];
    }
    void pool(tensor_view<const float> h, tensor_view<float> out) const {
        const std::int64_t c = h.dim(0), hw = h.numel() / c;
        for (std::int64_t k = 0; k < c; ++k) {
            double s = 0;
            for (std::int64_t i = k * hw; i < (k + 1) * hw; ++i) s += static_cast<double>(h[i]);
            out[k] = static_cast<float>(s / static_cast<double>(hw));
        }
    }
};

// The largest value of each channel over its h·w positions: D = C.
struct spatial_max {
    static constexpr const char* name = "spatial_max";
    std::int64_t dim(const shape& item) const {
        detail::require_channels_first(item, name);
        return item[0];
    }
    void pool(tensor_view<const float> h, tensor_view<float> out) const {
        const std::int64_t c = h.dim(0), hw = h.numel() / c;
        for (std::int64_t k = 0; k < c; ++k) out[k] = *std::max_element(h.data() + k * hw, h.data() + (k + 1) * hw);
    }
};

static_assert(check_pooling<flatten>());
static_assert(check_pooling<spatial_mean>());
static_assert(check_pooling<spatial_max>());

// ---- Extraction ---------------------------------------------------------------------------------

struct latent_options {
    // The timestep t at which latents are read, 0 <= t < T. A small t keeps the image recognisable
    // under the noise; 50 (of T = 1000) is our default, not the paper's: tune it per data set.
    std::int64_t timestep = 50;
    // R: each latent is the mean of R pooled latents, of draws first_draw … first_draw + R − 1.
    std::int64_t draws = 1;
    std::int64_t first_draw = 0;
    std::uint64_t seed = 0;
    // Items per round: the unit of progress reports and of a cancellation check. The latents do
    // not depend on it.
    std::int64_t batch_size = 256;
    // Copy a replicable encoder once per thread and run items on all threads at once; false: one
    // item after another on the model itself (each encode call parallel inside). Same bits.
    bool replicate = true;
};

// What a callback's on_step receives after every round of an extraction.
struct extraction_step {
    std::int64_t done;   // items finished so far
    std::int64_t total;  // items of this extraction
};

// A callback that shows an extraction on an ouro::progress (a bar on a terminal, log lines elsewhere).
class extraction_progress {
public:
    explicit extraction_progress(std::int64_t total, progress_options options = {.label = "latents", .log_every = 1024,
                                                                                 .unit = "img"})
        : bar_(total, std::move(options)) {}
    void on_step(const extraction_step& s) { bar_.update(s.done); }
    void finish() { bar_.finish(); }

private:
    progress bar_;
};

// Ids first_id, first_id + 1, … for n items: the ids of a data set's items by position.
inline tensor<std::int64_t> sequential_ids(std::int64_t n, std::int64_t first_id = 0) {
    require(n >= 0, "sequential_ids: expected n >= 0, found ", n);
    tensor<std::int64_t> ids(shape{n});
    for (std::int64_t i = 0; i < n; ++i) ids[i] = first_id + i;
    return ids;
}

// Latents of a frozen model's encoder (see the top of this file). Holds a reference to the model,
// which must outlive the extractor; the model's weights are read (copied to the replicas) at the
// start of every extract call.
template <class Model, class Pool = flatten>
class latent_extractor {
    static_assert(check_encoder<Model>());
    static_assert(check_pooling<Pool>());

public:
    // Requires 0 <= timestep < table.timesteps(), draws >= 1, first_draw >= 0,
    // first_draw + draws <= 2^24 and batch_size >= 1.
    latent_extractor(Model& model, diffusion::schedule_table table, latent_options options = {}, Pool pool = {})
        : model_(&model), table_(std::move(table)), options_(options), pool_(pool) {
        validate_options_();
    }

    const latent_options& options() const { return options_; }
    const diffusion::schedule_table& table() const { return table_; }
    const Pool& pooling_policy() const { return pool_; }

    // Latents (N, D) of images (N, C, H, W) with labels (N) (or (0) for an unconditional model) and
    // stable ids (N), each in [0, 2^40). Each callback's on_step(const extraction_step&) runs after
    // every round; a hook returning true stops the extraction with an ouro::error.
    // Throws ouro::error, before any work, for: no images, ids or labels of the wrong shape, ids out
    // of range, and, for an encoder with a spec, images of the wrong size, labels missing for a
    // class-conditional model (or given to an unconditional one) and labels out of range.
    template <class... Callbacks>
    tensor<float> extract(tensor_view<const float> images, tensor_view<const std::int64_t> labels,
                          tensor_view<const std::int64_t> ids, Callbacks&... callbacks) {
        check_inputs_(images, labels, ids);
        const std::int64_t n = images.dim(0);
        const shape item_batch{1, images.dim(1), images.dim(2), images.dim(3)};  // (1, C, H, W)
        const std::int64_t per_item = item_batch.numel();
        const bool conditional = labels.numel() > 0;

        // Item 0 on the model itself first: it checks what only the model knows (a model without a
        // spec) and gives the bottleneck's shape, hence D, before any thread starts.
        const shape item_shape = probe_bottleneck_(tensor_view<const float>(images.data(), item_batch),
                                                   conditional ? labels[0] : -1, ids[0]);
        const std::int64_t d = pool_.dim(item_shape);
        require(d >= 1, "latent_extractor: pooling '", Pool::name, "' gives ", d, " features for a bottleneck item of shape ",
                item_shape, ", expected at least 1");

        tensor<float> out(shape{n, d});  // (N, D)
        const int threads = worker_count_(n);
        prepare_replicas_(threads);
        std::vector<worker> workers(static_cast<std::size_t>(threads));
        for (int w = 0; w < threads; ++w)
            workers[static_cast<std::size_t>(w)].model = w == 0 ? model_ : replicas_[static_cast<std::size_t>(w - 1)].get();

        // One item: R draws, each noised, encoded alone and pooled; their mean (in double, draw order).
        auto run_item = [&](worker& wk, std::int64_t i) {
            wk.resize(item_batch, d);
            wk.t[0] = options_.timestep;
            const tensor_view<const float> x0(images.data() + i * per_item, item_batch);
            wk.y[0] = conditional ? labels[i] : 0;
            const tensor_view<const std::int64_t> y =
                conditional ? wk.y.view() : tensor_view<const std::int64_t>(wk.y.data(), shape{0});  // (1) or (0)
            std::fill(wk.sum.begin(), wk.sum.end(), 0.0);
            const tensor_view<float> row(out.data() + i * d, shape{d});
            for (std::int64_t r = options_.first_draw; r < options_.first_draw + options_.draws; ++r) {
                philox_stream rng(options_.seed, latent_noise_purpose, latent_noise_index(ids[i], r));
                for (float& e : wk.eps) e = rng.normal();
                diffusion::q_sample<float>(table_, x0, wk.t.view(), wk.eps.view(), wk.x_t.view());
                const tensor_view<const float> h = wk.model->encode(wk.x_t.view(), wk.t.view(), y);  // (1, ...)
                require(h.rank() >= 2 && h.dim(0) == 1, "latent_extractor: the encoder returned shape ", h.dims(),
                        " for one image, expected (1, ...)");
                require_shape(drop_batch_(h.dims()), item_shape, "latent_extractor: the encoder's bottleneck item");
                if (options_.draws == 1) {
                    pool_.pool(tensor_view<const float>(h.data(), item_shape), row);
                    return;
                }
                pool_.pool(tensor_view<const float>(h.data(), item_shape), wk.pooled.view());
                for (std::int64_t k = 0; k < d; ++k) wk.sum[static_cast<std::size_t>(k)] += wk.pooled[k];
            }
            const auto r_count = static_cast<double>(options_.draws);
            for (std::int64_t k = 0; k < d; ++k) row[k] = static_cast<float>(wk.sum[static_cast<std::size_t>(k)] / r_count);
        };

        for (std::int64_t begin = 0; begin < n; begin += options_.batch_size) {
            const std::int64_t end = std::min(n, begin + options_.batch_size);
            run_round_(workers, begin, end, run_item);
            if (invoke_each(on_step, std::tie(callbacks...), extraction_step{end, n}))
                fail("latent_extractor: stopped by a callback after ", end, " of ", n, " items");
        }
        return out;
    }

    // Latents of every item of `set`, ids 0 … N−1 (the item's position), labels given to a
    // class-conditional model (one with spec.classes > 0, or any model without a spec).
    template <class... Callbacks>
    tensor<float> extract(const data::image_dataset& set, Callbacks&... callbacks) {
        require(set.size() >= 1, "latent_extractor: data set '", set.name, "' holds no images (shape ", set.images.dims(),
                ")");
        const tensor<std::int64_t> ids = sequential_ids(set.size());
        bool with_labels = true;
        if constexpr (specified_encoder<Model>) with_labels = Model::spec.classes > 0;
        const tensor_view<const std::int64_t> labels =
            with_labels ? set.labels.view() : tensor_view<const std::int64_t>(set.labels.data(), shape{0});
        return extract(set.images.view(), labels, ids.view(), callbacks...);
    }

private:
    struct worker {
        Model* model = nullptr;
        tensor<float> eps, x_t, pooled;
        tensor<std::int64_t> t, y;
        std::vector<double> sum;
        std::exception_ptr error;
        std::int64_t error_item = -1;

        void resize(const shape& item_batch, std::int64_t d) {
            if (eps.dims() == item_batch && pooled.numel() == d) return;
            eps.resize(item_batch);
            x_t.resize(item_batch);
            pooled.resize(shape{d});
            t.resize(shape{1});
            y.resize(shape{1});
            sum.assign(static_cast<std::size_t>(d), 0.0);
        }
    };

    void validate_options_() const {
        table_.require_timestep(options_.timestep, "latent_extractor");
        require(options_.draws >= 1, "latent_extractor: expected draws >= 1, found ", options_.draws);
        require(options_.first_draw >= 0, "latent_extractor: expected first_draw >= 0, found ", options_.first_draw);
        require(options_.first_draw + options_.draws <= max_latent_draws, "latent_extractor: expected first_draw + draws <= 2^",
                64 - latent_id_bits, ", found ", options_.first_draw, " + ", options_.draws);
        require(options_.batch_size >= 1, "latent_extractor: expected batch_size >= 1, found ", options_.batch_size);
    }

    static shape drop_batch_(const shape& s) {
        shape item;
        switch (s.rank()) {
            case 2: item = shape{s[1]}; break;
            case 3: item = shape{s[1], s[2]}; break;
            case 4: item = shape{s[1], s[2], s[3]}; break;
            case 5: item = shape{s[1], s[2], s[3], s[4]}; break;
            case 6: item = shape{s[1], s[2], s[3], s[4], s[5]}; break;
            default: fail("latent_extractor: expected a bottleneck (B, ...) of rank 2 to 6, found shape ", s);
        }
        return item;
    }

    void check_inputs_(tensor_view<const float> images, tensor_view<const std::int64_t> labels,
                       tensor_view<const std::int64_t> ids) const {
        require(images.rank() == 4 && images.dim(0) >= 1,
                "latent_extractor: expected images (N, C, H, W) with N >= 1, found shape ", images.dims());
        const std::int64_t n = images.dim(0);
        require_shape(ids.dims(), shape{n}, "latent_extractor: item ids (N)");
        for (std::int64_t i = 0; i < n; ++i)
            require(ids[i] >= 0 && ids[i] <= max_latent_id, "latent_extractor: item id ", ids[i], " at index ", i,
                    " is out of range: expected 0 <= id < 2^", latent_id_bits);
        if (labels.numel() > 0) require_shape(labels.dims(), shape{n}, "latent_extractor: labels (N)");
        if constexpr (specified_encoder<Model>) {
            const std::int64_t c = Model::spec.in_channels, s = Model::spec.image_size, k = Model::spec.classes;
            require_shape(images.dims(), shape{n, c, s, s}, "latent_extractor: images (N, C, H, W) for the model's spec");
            if (k > 0) {
                require(labels.numel() > 0, "latent_extractor: the model is class-conditional (", k,
                        " classes): expected labels of shape (", n, "), found shape ", labels.dims());
                for (std::int64_t i = 0; i < n; ++i)
                    require(labels[i] >= 0 && labels[i] <= k, "latent_extractor: label ", labels[i], " at index ", i,
                            " is out of range: expected 0..", k - 1, ", or ", k, " for no label");
            } else {
                require(labels.numel() == 0, "latent_extractor: the model is unconditional, but labels of shape ",
                        labels.dims(), " were given");
            }
        }
    }

    // Runs item 0's first draw through the model alone and returns its bottleneck item shape.
    shape probe_bottleneck_(tensor_view<const float> x0, std::int64_t label, std::int64_t id) {
        tensor<float> eps(x0.dims()), x_t(x0.dims());
        philox_stream rng(options_.seed, latent_noise_purpose, latent_noise_index(id, options_.first_draw));
        for (float& e : eps) e = rng.normal();
        const tensor<std::int64_t> t(shape{1}, options_.timestep);
        const tensor<std::int64_t> y(label >= 0 ? shape{1} : shape{0}, label);
        diffusion::q_sample<float>(table_, x0, t.view(), eps.view(), x_t.view());
        const tensor_view<const float> h = model_->encode(x_t.view(), t.view(), y.view());
        require(h.rank() >= 2 && h.dim(0) == 1, "latent_extractor: the encoder returned shape ", h.dims(),
                " for one image, expected (1, ...)");
        return drop_batch_(h.dims());
    }

    // Threads that take items: one per item at most, and one only inside a parallel region.
    int worker_count_(std::int64_t items) const {
#if defined(_OPENMP)
        if (!options_.replicate || omp_in_parallel()) return 1;
        if constexpr (replicable_encoder<Model>)
            return static_cast<int>(std::clamp<std::int64_t>(items, 1, std::max(1, max_threads())));
#endif
        (void)items;
        return 1;
    }

    // Replicas 1 … threads−1 hold a copy of the model's current weights.
    void prepare_replicas_(int threads) {
        if constexpr (replicable_encoder<Model>) {
            while (static_cast<int>(replicas_.size()) < threads - 1) replicas_.push_back(std::make_unique<Model>());
            const parameter_store<float>& source = model_->store();
            for (int r = 0; r < threads - 1; ++r) {
                parameter_store<float>& dest = replicas_[static_cast<std::size_t>(r)]->store();
                require(dest.size() == source.size(), "latent_extractor: a replica of the model has ", dest.size(),
                        " parameter elements, the model ", source.size(), " (a replicable encoder must be fully "
                        "described by its type)");
                std::copy(source.values(), source.values() + source.size(), dest.values());
            }
        } else {
            (void)threads;
        }
    }

    // Items [begin, end) on the workers; a failure is rethrown after the round, the one of the
    // lowest item first, so the error does not depend on the thread count.
    template <class RunItem>
    void run_round_(std::vector<worker>& workers, std::int64_t begin, std::int64_t end, RunItem& run_item) {
        auto guarded = [&](worker& w, std::int64_t i) {
            if (w.error) return;
            try {
                run_item(w, i);
            } catch (...) {
                w.error = std::current_exception();
                w.error_item = i;
            }
        };
        const int threads = static_cast<int>(workers.size());
        if (threads == 1) {
            for (std::int64_t i = begin; i < end; ++i) guarded(workers[0], i);
        } else {
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
            {
                worker& w = workers[static_cast<std::size_t>(omp_get_thread_num())];
#pragma omp for schedule(static)
                for (std::int64_t i = begin; i < end; ++i) guarded(w, i);
            }
#endif
        }
        const worker* first = nullptr;
        for (const worker& w : workers)
            if (w.error && (!first || w.error_item < first->error_item)) first = &w;
        if (first) std::rethrow_exception(first->error);
    }

    Model* model_;
    diffusion::schedule_table table_;
    latent_options options_;
    Pool pool_;
    std::vector<std::unique_ptr<Model>> replicas_;
};

// ---- Standardisation ----------------------------------------------------------------------------

// Per-dimension standardisation x' = (x − mean) / max(std, min_std), with the mean and population
// standard deviation of a reference (real) set, applied to any other set: the probe then sees real
// and synthetic latents on the real set's scale. min_std keeps a (nearly) constant dimension from
// dividing by zero.
class standardizer {
public:
    static constexpr double default_min_std = 1e-6;

    standardizer() = default;

    // Requires mean and std of shape (D), D >= 1, finite, std > 0 (the floored values).
    standardizer(tensor<double> mean, tensor<double> stddev, double min_std = default_min_std,
                 std::int64_t reference_rows = 0)
        : mean_(std::move(mean)), std_(std::move(stddev)), min_std_(min_std), reference_rows_(reference_rows) {
        require(min_std_ > 0 && std::isfinite(min_std_), "standardizer: expected a finite min_std > 0, found ", min_std_);
        require(mean_.rank() == 1 && mean_.numel() >= 1, "standardizer: expected a mean of shape (D) with D >= 1, found ",
                mean_.dims());
        require_shape(std_.dims(), mean_.dims(), "standardizer: std (D) beside the mean");
        for (std::int64_t j = 0; j < dim(); ++j) {
            require(std::isfinite(mean_[j]), "standardizer: expected a finite mean, found ", mean_[j], " at dimension ", j);
            require(std::isfinite(std_[j]) && std_[j] > 0, "standardizer: expected a finite std > 0, found ", std_[j],
                    " at dimension ", j);
        }
    }

    // The statistics of `reference` (N, D), N >= 1, finite: mean and population std (ddof = 0, as
    // numpy.std), each dimension summed over the rows in order in double; std floored at min_std.
    static standardizer fit(tensor_view<const float> reference, double min_std = default_min_std) {
        return fit_(reference, min_std);
    }
    static standardizer fit(tensor_view<const double> reference, double min_std = default_min_std) {
        return fit_(reference, min_std);
    }

    // D, or 0 before fitting (a default-constructed tensor has rank 0 and one element).
    std::int64_t dim() const { return mean_.rank() == 1 ? mean_.numel() : 0; }
    bool fitted() const { return dim() > 0; }
    const tensor<double>& mean() const { return mean_; }
    const tensor<double>& stddev() const { return std_; }  // floored at min_std
    double min_std() const { return min_std_; }
    std::int64_t reference_rows() const { return reference_rows_; }

    // x (N, D) standardised: float((x − mean) / std), computed in double. Requires D = dim().
    tensor<float> apply(tensor_view<const float> x) const {
        tensor<float> out(x.dims());
        apply_(x, out.view());
        return out;
    }
    tensor<double> apply(tensor_view<const double> x) const {
        tensor<double> out(x.dims());
        apply_(x, out.view());
        return out;
    }
    void apply_in_place(tensor_view<float> x) const { apply_(tensor_view<const float>(x), x); }
    void apply_in_place(tensor_view<double> x) const { apply_(tensor_view<const double>(x), x); }

    // Writes the statistics to a safetensors file, atomically: F64 tensors "mean" and "std" (D), and
    // metadata {"format": "ouro.standardizer", "version": "1", "min_std", "reference_rows"}.
    void save(const std::filesystem::path& file) const {
        require(fitted(), "standardizer: nothing to save, the standardizer was never fitted");
        io::safetensors_writer writer;
        writer.add("mean", mean_);
        writer.add("std", std_);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", min_std_);
        writer.set_metadata({{"format", format_name}, {"version", "1"}, {"min_std", buf},
                             {"reference_rows", std::to_string(reference_rows_)}});
        writer.write(file);
    }

    // Reads what save() wrote; refuses a file of another kind or with statistics that do not fit.
    static standardizer load(const std::filesystem::path& file) {
        io::safetensors_reader reader(file);
        io::require_metadata(reader.metadata(), {{"format", format_name}, {"version", "1"}}, file.string());
        tensor<double> mean = reader.read<double>("mean"), stddev = reader.read<double>("std");
        double min_std = default_min_std;
        std::int64_t rows = 0;
        try {
            min_std = std::stod(reader.metadata().at("min_std"));
            rows = std::stoll(reader.metadata().at("reference_rows"));
        } catch (const std::exception&) {
            fail(file.string(), ": standardizer metadata 'min_std' or 'reference_rows' is missing or not a number");
        }
        try {
            return standardizer(std::move(mean), std::move(stddev), min_std, rows);
        } catch (const error& e) {
            fail(file.string(), ": ", e.what());
        }
    }

    static constexpr const char* format_name = "ouro.standardizer";

private:
    // Dimensions per parallel work item; each one sums its rows in order, so the statistics do not
    // depend on the thread count.
    static constexpr std::int64_t dims_per_item = 16;

    template <real_scalar T>
    static standardizer fit_(tensor_view<const T> x, double min_std) {
        require(x.rank() == 2 && x.dim(0) >= 1 && x.dim(1) >= 1,
                "standardizer::fit: expected reference features (N, D) with N, D >= 1, found shape ", x.dims());
        require(min_std > 0 && std::isfinite(min_std), "standardizer::fit: expected a finite min_std > 0, found ", min_std);
        const std::int64_t n = x.dim(0), d = x.dim(1);
        for (std::int64_t i = 0; i < x.numel(); ++i)
            if (!std::isfinite(x[i]))
                fail("standardizer::fit: expected finite reference features, found ", x[i], " at (", i / d, ", ", i % d, ")");
        tensor<double> mean(shape{d}), stddev(shape{d});
        const std::int64_t items = (d + dims_per_item - 1) / dims_per_item;
        parallel_for(
            items,
            [&](std::int64_t item) {
                const std::int64_t j0 = item * dims_per_item, j1 = std::min(d, j0 + dims_per_item);
                for (std::int64_t j = j0; j < j1; ++j) mean[j] = 0;
                for (std::int64_t r = 0; r < n; ++r)
                    for (std::int64_t j = j0; j < j1; ++j) mean[j] += static_cast<double>(x[r * d + j]);
                for (std::int64_t j = j0; j < j1; ++j) mean[j] /= static_cast<double>(n), stddev[j] = 0;
                for (std::int64_t r = 0; r < n; ++r)
                    for (std::int64_t j = j0; j < j1; ++j) {
                        const double c = static_cast<double>(x[r * d + j]) - mean[j];
                        stddev[j] += c * c;
                    }
                for (std::int64_t j = j0; j < j1; ++j)
                    stddev[j] = std::max(std::sqrt(stddev[j] / static_cast<double>(n)), min_std);
            },
            2 * n * dims_per_item);
        return standardizer(std::move(mean), std::move(stddev), min_std, n);
    }

    template <real_scalar T>
    void apply_(tensor_view<const T> x, tensor_view<T> out) const {
        require(fitted(), "standardizer: not fitted (use standardizer::fit or standardizer::load)");
        require(x.rank() == 2, "standardizer: expected features (N, D) with D = ", dim(), ", found shape ", x.dims());
        require_shape(x.dims(), shape{x.dim(0), dim()}, "standardizer: features (N, D)");
        const std::int64_t n = x.dim(0), d = dim();
        parallel_for(
            n,
            [&](std::int64_t r) {
                for (std::int64_t j = 0; j < d; ++j)
                    out[r * d + j] = static_cast<T>((static_cast<double>(x[r * d + j]) - mean_[j]) / std_[j]);
            },
            2 * d);
    }

    tensor<double> mean_, std_;
    double min_std_ = default_min_std;
    std::int64_t reference_rows_ = 0;
};

}  // namespace ouro::latent
