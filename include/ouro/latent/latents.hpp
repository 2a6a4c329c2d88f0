// Latent Space Filtering's latents (Cai, Wang, Liu & Zhang, "Stabilizing Self-Consuming Diffusion
// Models with Latent Space Filtering", AAAI-26, §3): h_t(x) = pool(enc(√ᾱ_t·x + √(1−ᾱ_t)·ε, t, y))
// read from a frozen model's encoder, optionally averaged over R noise draws. The pooling policies
// that turn a bottleneck into a feature vector are in pooling.hpp, the per-dimension standardisation
// fitted on the real set and applied to every other set in standardizer.hpp (both included here).
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
#include "ouro/latent/pooling.hpp"
#include "ouro/latent/standardizer.hpp"

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
// x_t and the bottleneck are in the memory of the model's backend (backend_of_t<M>), t and y on
// the host; the extractor noises and pools on the host and copies across when they differ.
template <class M>
concept encoder = requires(M& m, tensor_view<const float, backend_of_t<M>> x_t, tensor_view<const std::int64_t> t,
                           tensor_view<const std::int64_t> y) {
    { m.encode(x_t, t, y) } -> std::convertible_to<tensor_view<const float, backend_of_t<M>>>;
};

// static_assert(check_encoder<M>()) explains in words what M lacks.
template <class M>
constexpr bool check_encoder() {
    static_assert(
        encoder<M>,
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
    { m.store() } -> std::same_as<parameter_store<float, backend_of_t<M>>&>;
};

// An encoder that states the images it takes and its classes (nn::unet's static unet_spec). The
// extractor then checks its input against the spec before any work, with messages in those terms.
template <class M>
concept specified_encoder = encoder<M> && requires {
    { M::spec.in_channels } -> std::convertible_to<std::int64_t>;
    { M::spec.image_size } -> std::convertible_to<std::int64_t>;
    { M::spec.classes } -> std::convertible_to<std::int64_t>;
};

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
    explicit extraction_progress(std::int64_t total,
                                 progress_options options = {.label = "latents", .log_every = 1024, .unit = "img"})
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
        require(d >= 1, "latent_extractor: pooling '", Pool::name, "' gives ", d,
                " features for a bottleneck item of shape ", item_shape, ", expected at least 1");

        tensor<float> out(shape{n, d});  // (N, D)
        const int threads = worker_count_(n);
        prepare_replicas_(threads);
        std::vector<worker> workers(static_cast<std::size_t>(threads));
        for (int w = 0; w < threads; ++w)
            workers[static_cast<std::size_t>(w)].model =
                w == 0 ? model_ : replicas_[static_cast<std::size_t>(w - 1)].get();

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
                const tensor_view<const float> h =
                    encode_(*wk.model, wk.x_t.view(), wk.t.view(), y, wk.device_in, wk.host_out);  // (1, ...)
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
            for (std::int64_t k = 0; k < d; ++k)
                row[k] = static_cast<float>(wk.sum[static_cast<std::size_t>(k)] / r_count);
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
        require(set.size() >= 1, "latent_extractor: data set '", set.name, "' holds no images (shape ",
                set.images.dims(), ")");
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
        tensor<float, backend_of_t<Model>> device_in;  // x_t in the model's memory, when not the host's
        tensor<float> host_out;                        // the bottleneck brought back, then
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
        require(options_.first_draw + options_.draws <= max_latent_draws,
                "latent_extractor: expected first_draw + draws <= 2^", 64 - latent_id_bits, ", found ",
                options_.first_draw, " + ", options_.draws);
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
            require_shape(images.dims(), shape{n, c, s, s},
                          "latent_extractor: images (N, C, H, W) for the model's spec");
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

    // model.encode on a host x_t, the bottleneck as a host view (copies when the model's memory is not the host's).
    static tensor_view<const float> encode_(Model& model, tensor_view<const float> x_t,
                                            tensor_view<const std::int64_t> t, tensor_view<const std::int64_t> y,
                                            tensor<float, backend_of_t<Model>>& device_in, tensor<float>& host_out) {
        return call_through<backend_of_t<Model>>([&](auto x) { return model.encode(x, t, y); }, x_t, device_in,
                                                 host_out);
    }

    // Runs item 0's first draw through the model alone and returns its bottleneck item shape.
    shape probe_bottleneck_(tensor_view<const float> x0, std::int64_t label, std::int64_t id) {
        tensor<float> eps(x0.dims()), x_t(x0.dims());
        philox_stream rng(options_.seed, latent_noise_purpose, latent_noise_index(id, options_.first_draw));
        for (float& e : eps) e = rng.normal();
        const tensor<std::int64_t> t(shape{1}, options_.timestep);
        const tensor<std::int64_t> y(label >= 0 ? shape{1} : shape{0}, label);
        diffusion::q_sample<float>(table_, x0, t.view(), eps.view(), x_t.view());
        tensor<float, backend_of_t<Model>> device_in;
        tensor<float> host_out;
        const tensor_view<const float> h = encode_(*model_, x_t.view(), t.view(), y.view(), device_in, host_out);
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
            using B = backend_of_t<Model>;
            const parameter_store<float, B>& source = model_->store();
            for (int r = 0; r < threads - 1; ++r) {
                parameter_store<float, B>& dest = replicas_[static_cast<std::size_t>(r)]->store();
                require(dest.size() == source.size(), "latent_extractor: a replica of the model has ", dest.size(),
                        " parameter elements, the model ", source.size(),
                        " (a replicable encoder must be fully "
                        "described by its type)");
                copy(tensor_view<const float, B>(source.values(), shape{source.size()}),
                     tensor_view<float, B>(dest.values(), shape{dest.size()}));
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

}  // namespace ouro::latent
