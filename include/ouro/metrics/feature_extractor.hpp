// Feature extractors for the metrics: the FeatureExtractor concept (images (N, C, H, W) -> features
// (N, D)) and lenet_feature_extractor, a LeNet-5 trained once on the real training set whose 84-d
// penultimate layer stands in for Inception's pool features on small images (FID, precision,
// recall): 28×28 grey digits, 32×32 colour CIFAR-10, S×S image folders. Its weights are cached as
// safetensors with the metadata of what they were trained on (the image geometry included), so a
// cache made for other data, other images or another recipe is retrained, never silently reused.
//
//   metrics::lenet_feature_extractor lenet;
//   lenet.train_or_load(data::load_mnist("data/mnist", data::split::train), "runs/cache/lenet.safetensors");
//   const double fid = metrics::fid(lenet.features(real), lenet.features(fake));
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/fnv1a.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/metrics/classifier_training.hpp"
#include "ouro/nn/lenet.hpp"

namespace ouro::metrics {

// ---- The concept --------------------------------------------------------------------------------

// A feature extractor maps images (N, C, H, W) to features (N, D), D = feature_dim().
template <class E>
concept feature_extractor = requires(E& e, const E& ce, tensor_view<const float> images) {
    { ce.feature_dim() } -> std::convertible_to<std::int64_t>;
    { e.features(images) } -> std::same_as<tensor<float>>;
};

// static_assert(check_feature_extractor<E>()) explains in words what E lacks.
template <class E>
constexpr bool check_feature_extractor() {
    static_assert(
        requires(const E& e) {
            { e.feature_dim() } -> std::convertible_to<std::int64_t>;
        },
        "a feature extractor needs `std::int64_t feature_dim() const`: D, the length of one feature vector");
    static_assert(
        requires(E & e, tensor_view<const float> images) {
            { e.features(images) } -> std::same_as<tensor<float>>;
        },
        "a feature extractor needs `tensor<float> features(tensor_view<const float> images /*(N, C, H, W)*/)` "
        "returning features (N, D)");
    return feature_extractor<E>;
}

// ---- Data fingerprints --------------------------------------------------------------------------

// 16 hex digits identifying the contents of `set`: a 64-bit FNV-1a-style hash (Fowler, Noll & Vo),
// one multiply per 8-byte word, of the image shape, every image's float bits, the labels and the
// number of classes. Any change of a pixel or a label changes it (barring a 2^-64 collision).
inline std::string dataset_fingerprint(const data::image_dataset& set) {
    fnv1a h;
    auto mix = [&h](std::uint64_t word) { h.add_word(word); };
    auto mix_bytes = [&](const void* data, std::size_t bytes) {
        const auto* p = static_cast<const unsigned char*>(data);
        std::size_t i = 0;
        for (; i + 8 <= bytes; i += 8) {
            std::uint64_t w;
            std::memcpy(&w, p + i, 8);
            mix(w);
        }
        std::uint64_t tail = 0;
        if (bytes > i) std::memcpy(&tail, p + i, bytes - i);
        mix(tail ^ (static_cast<std::uint64_t>(bytes - i) << 56));
    };
    const shape& s = set.images.dims();
    mix(static_cast<std::uint64_t>(s.rank()));
    for (int a = 0; a < s.rank(); ++a) mix(static_cast<std::uint64_t>(s[a]));
    mix_bytes(set.images.data(), static_cast<std::size_t>(set.images.numel()) * sizeof(float));
    mix(static_cast<std::uint64_t>(set.labels.numel()));
    mix_bytes(set.labels.data(), static_cast<std::size_t>(set.labels.numel()) * sizeof(std::int64_t));
    mix(static_cast<std::uint64_t>(set.num_classes));
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h.value()));
    return buf;
}

// ---- LeNet features -----------------------------------------------------------------------------

// What train_or_load did.
struct train_or_load_result {
    bool trained = false;  // false: the cache was used as it was
    std::string reason;    // why it trained: no cache, an unreadable cache, or the metadata that differed
};

// A LeNet-5 (nn::lenet) trained on a real training set of images (N, C, S, S) (C >= 1 channels, S a
// multiple of 4, at least 12); features() are its 84-d penultimate activations, and take images of
// that same geometry only. Images are taken on the scale the network was trained on (the data set's;
// load_mnist gives [-1, 1], as the diffusion models' samples).
//
// Every image runs through the network alone, on all threads at once (one copy of the network per
// thread), so an image's features and class do not depend on the other images of the call, nor on
// the thread count. (A batched GEMM rounds each row differently depending on the batch.)
class lenet_feature_extractor {
public:
    using network = nn::lenet<cpu>;
    static constexpr std::int64_t dim = network::feature_dim;  // 84
    static constexpr const char* format_name = "ouro.lenet_feature_extractor";
    static constexpr const char* format_version = "1";

    lenet_feature_extractor() = default;

    std::int64_t feature_dim() const { return dim; }
    bool ready() const { return net_ != nullptr; }
    std::int64_t num_classes() const { return num_classes_; }
    // The geometry of the images the weights were trained on (0 before train_or_load or load).
    std::int64_t in_channels() const { return in_channels_; }
    std::int64_t image_size() const { return image_size_; }
    // The metadata of the weights: what they were trained on and how.
    const io::safetensors_metadata& metadata() const { return metadata_; }
    // The network itself (requires ready()); changing its weights changes what features() returns.
    network& net() { return checked_net_(); }

    // Loads the weights cached at `cache` when its metadata matches `train` and `options` (format,
    // image geometry, data set name, size and fingerprint, classes, and every training option that
    // shapes the weights); otherwise trains a fresh LeNet for train's geometry (reset_parameters(seed),
    // then train_classifier) and writes the cache atomically. A cache that exists but does not match,
    // or cannot be read, is retrained and `log` says why. Requires train to hold square images
    // (N, C, S, S) that nn::lenet takes (C >= 1, S a multiple of 4 and >= 12), N >= batch_size, and
    // labels in [0, num_classes) with num_classes >= 2. Callbacks go to train_classifier.
    template <class... Callbacks>
    train_or_load_result train_or_load(const data::image_dataset& train, const std::filesystem::path& cache,
                                       const classifier_training_options& options = {}, std::ostream& log = std::cerr,
                                       Callbacks&... callbacks) {
        validate(options);
        detail::require_labelled_images(train, "lenet_feature_extractor");
        const auto [channels, size] = training_geometry_(train);
        require(train.num_classes >= 2, "lenet_feature_extractor: data set '", train.name,
                "': expected at least 2 classes, found num_classes = ", train.num_classes);
        const io::safetensors_metadata expected = expected_metadata(train, options);

        train_or_load_result result;
        std::error_code ec;
        if (!std::filesystem::exists(cache, ec)) {
            result.reason = "no cache at " + cache.string();
            log << "lenet_feature_extractor: training, " << result.reason << '\n' << std::flush;
        } else {
            try {
                io::safetensors_reader reader(cache);
                const std::string diff = metadata_differences_(with_geometry_defaults_(reader.metadata()), expected);
                if (diff.empty()) {
                    auto net = std::make_unique<network>(train.num_classes, channels, size);
                    io::read_parameter_buffer(reader, net->store(), net->store().values());
                    adopt_(std::move(net), train.num_classes, with_geometry_defaults_(reader.metadata()));
                    return result;
                }
                result.reason = "the cache " + cache.string() + " was made for something else: " + diff;
            } catch (const std::exception& e) {
                result.reason = std::string("the cache cannot be used: ") + e.what();
            }
            log << "lenet_feature_extractor: retraining, " << result.reason << '\n' << std::flush;
        }

        auto net = std::make_unique<network>(train.num_classes, channels, size);
        net->reset_parameters(options.seed);
        train_classifier(*net, train, options, callbacks...);
        adopt_(std::move(net), train.num_classes, expected);
        save(cache);
        result.trained = true;
        return result;
    }

    // Loads whatever weights `file` holds, for the image geometry its metadata records (no check of
    // what they were trained on; see train_or_load for that). Requires a file that save() or
    // train_or_load wrote.
    void load(const std::filesystem::path& file) {
        io::safetensors_reader reader(file);
        io::require_metadata(reader.metadata(), {{"format", format_name}, {"version", format_version}}, file.string());
        const io::safetensors_metadata metadata = with_geometry_defaults_(reader.metadata());
        const std::int64_t classes = metadata_integer_(metadata, "num_classes", file);
        const std::int64_t channels = metadata_integer_(metadata, "in_channels", file);
        const std::int64_t size = metadata_integer_(metadata, "image_size", file);
        require(classes >= 2, file.string(), ": expected num_classes >= 2 in the metadata, found ", classes);
        try {
            network::require_geometry(channels, size);
        } catch (const std::exception& e) {
            fail(file.string(), ": the metadata's in_channels ", channels, " and image_size ", size,
                 " do not fit a LeNet: ", e.what());
        }
        auto net = std::make_unique<network>(classes, channels, size);
        io::read_parameter_buffer(reader, net->store(), net->store().values());
        adopt_(std::move(net), classes, metadata);
    }

    // Writes the weights and their metadata to `file`, atomically.
    void save(const std::filesystem::path& file) const {
        require(ready(), "lenet_feature_extractor: nothing to save, no weights were trained or loaded");
        io::save_parameters(file, net_->store(), metadata_);
    }

    // The metadata train_or_load expects of a cache for `train` and `options`.
    static io::safetensors_metadata expected_metadata(const data::image_dataset& train,
                                                      const classifier_training_options& options) {
        auto num = [](double v) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.17g", v);
            return std::string(buf);
        };
        const shape& s = train.images.dims();
        const std::int64_t channels = s.rank() == 4 ? s[1] : 0, size = s.rank() == 4 ? s[3] : 0;
        return {{"format", format_name},
                {"version", format_version},
                {"architecture", "lenet5 relu maxpool (" + std::to_string(channels) + ", " + std::to_string(size) +
                                     ", " + std::to_string(size) + ") -> 84 -> classes"},
                {"in_channels", std::to_string(channels)},
                {"image_size", std::to_string(size)},
                {"dataset", train.name},
                {"dataset_size", std::to_string(train.size())},
                {"dataset_fingerprint", dataset_fingerprint(train)},
                {"num_classes", std::to_string(train.num_classes)},
                {"epochs", std::to_string(options.epochs)},
                {"batch_size", std::to_string(options.batch_size)},
                {"lr", num(options.lr)},
                {"weight_decay", num(options.weight_decay)},
                {"warmup_steps", std::to_string(options.warmup_steps)},
                {"seed", std::to_string(options.seed)}};
    }

    // Features (N, 84) of images (N, C, S, S), N >= 1, of the trained geometry: the penultimate
    // activations, evaluation mode.
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    tensor<float> features(tensor_view<const float> images) {
        require_images_(images, "lenet_feature_extractor::features: images");
        tensor<float> out(shape{images.dim(0), dim});  // (N, 84)
        for_each_image_(images, [&](network& net, tensor_view<const float> x, std::int64_t i) {
            const tensor_view<const float> f = net.features(x);  // (1, 84)
            std::copy(f.begin(), f.end(), out.data() + i * dim);
        });
        return out;
    }

    // The class (N) of images (N, C, S, S) of the trained geometry: the first largest logit.
    tensor<std::int64_t> classify(tensor_view<const float> images) {
        require_images_(images, "lenet_feature_extractor::classify: images");
        tensor<std::int64_t> out(shape{images.dim(0)});
        for_each_image_(images, [&](network& net, tensor_view<const float> x, std::int64_t i) {
            const tensor_view<const float> logits = net.forward(x);  // (1, K)
            out[i] = std::max_element(logits.begin(), logits.end()) - logits.begin();
        });
        return out;
    }

    // The share of `set` classified as labelled.
    double accuracy(const data::image_dataset& set) {
        detail::require_labelled_images(set, "lenet_feature_extractor::accuracy");
        const tensor<std::int64_t> predicted = classify(set.images.view());
        std::int64_t correct = 0;
        for (std::int64_t i = 0; i < set.size(); ++i) correct += predicted[i] == set.labels[i];
        return static_cast<double>(correct) / static_cast<double>(set.size());
    }

private:
    network& checked_net_() const {
        require(ready(), "lenet_feature_extractor: no weights yet: call train_or_load (or load) first");
        return *net_;
    }

    // Images (N, C, S, S) of the trained geometry, N >= 1; requires ready().
    void require_images_(tensor_view<const float> images, const char* what) const {
        checked_net_();
        const std::int64_t n = images.rank() == 4 ? images.dim(0) : 0;
        const shape expected{n, in_channels_, image_size_, image_size_};
        require(n >= 1, what, ": expected (N, ", in_channels_, ", ", image_size_, ", ", image_size_,
                ") with N >= 1, found shape ", images.dims());
        if (!(images.dims() == expected))
            fail(what, ": expected ", expected, " (the geometry the weights were trained on), found ", images.dims());
    }

    // (C, S) of train's images (N, C, S, S), which must be square and fit nn::lenet.
    static std::pair<std::int64_t, std::int64_t> training_geometry_(const data::image_dataset& train) {
        const shape& s = train.images.dims();
        require(s.rank() == 4 && s[2] == s[3], "lenet_feature_extractor: data set '", train.name,
                "': expected square training images (N, C, S, S), found shape ", s);
        try {
            network::require_geometry(s[1], s[2]);
        } catch (const std::exception& e) {
            fail("lenet_feature_extractor: data set '", train.name, "': training images of shape ", s,
                 " do not fit a LeNet: ", e.what());
        }
        return {s[1], s[2]};
    }

    // Caches written before the geometry was recorded all hold grey 28×28 weights (their
    // architecture entry says so): read them as in_channels 1, image_size 28.
    static io::safetensors_metadata with_geometry_defaults_(io::safetensors_metadata metadata) {
        const auto arch = metadata.find("architecture");
        if (arch != metadata.end() && arch->second == "lenet5 relu maxpool (1, 28, 28) -> 84 -> classes" &&
            !metadata.contains("in_channels") && !metadata.contains("image_size")) {
            metadata["in_channels"] = "1";
            metadata["image_size"] = "28";
        }
        return metadata;
    }

    static std::int64_t metadata_integer_(const io::safetensors_metadata& metadata, const std::string& key,
                                          const std::filesystem::path& file) {
        const auto it = metadata.find(key);
        std::size_t used = 0;
        std::int64_t value = 0;
        try {
            if (it != metadata.end()) value = std::stoll(it->second, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (it == metadata.end() || used == 0 || used != it->second.size())
            fail(file.string(), ": metadata '", key, "' is missing or not a whole number");
        return value;
    }

    void adopt_(std::unique_ptr<network> net, std::int64_t classes, io::safetensors_metadata metadata) {
        in_channels_ = net->in_channels();
        image_size_ = net->image_size();
        net_ = std::move(net);
        num_classes_ = classes;
        metadata_ = std::move(metadata);
        replicas_.clear();
    }

    // "key: cache 'a', expected 'b'; ..." for every key of `expected` that `found` lacks or differs in.
    static std::string metadata_differences_(const io::safetensors_metadata& found,
                                             const io::safetensors_metadata& expected) {
        std::string diff;
        for (const auto& [key, value] : expected) {
            const auto it = found.find(key);
            const std::string has = it == found.end() ? std::string("nothing") : "'" + it->second + "'";
            if (it != found.end() && it->second == value) continue;
            if (!diff.empty()) diff += "; ";
            diff += key + ": cache has " + has + ", expected '" + value + "'";
        }
        return diff;
    }

    // Calls body(net, x (1, C, S, S), i) for every image i, each with the network of its thread.
    // Inputs are checked before; a failure in a thread is rethrown after the loop, lowest image first.
    template <class Body>
    void for_each_image_(tensor_view<const float> images, Body&& body) {
        network& primary = checked_net_();
        const std::int64_t n = images.dim(0), per_item = in_channels_ * image_size_ * image_size_;
        const shape one{1, in_channels_, image_size_, image_size_};
        int threads = 1;
#if defined(_OPENMP)
        if (!omp_in_parallel()) threads = static_cast<int>(std::min<std::int64_t>(max_threads(), n));
#endif
        while (static_cast<int>(replicas_.size()) < threads - 1)
            replicas_.push_back(std::make_unique<network>(num_classes_, in_channels_, image_size_));
        // net() hands out the weights for changing: the replicas copy them on every call.
        for (int t = 0; t < threads - 1; ++t)
            std::copy(primary.store().values(), primary.store().values() + primary.store().size(),
                      replicas_[static_cast<std::size_t>(t)]->store().values());

        std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
        std::vector<std::int64_t> error_items(static_cast<std::size_t>(threads), -1);
        auto run = [&](int t, std::int64_t i) {
            if (errors[static_cast<std::size_t>(t)]) return;
            try {
                network& net = t == 0 ? primary : *replicas_[static_cast<std::size_t>(t - 1)];
                body(net, tensor_view<const float>(images.data() + i * per_item, one), i);
            } catch (...) {
                errors[static_cast<std::size_t>(t)] = std::current_exception();
                error_items[static_cast<std::size_t>(t)] = i;
            }
        };
        if (threads == 1) {
            for (std::int64_t i = 0; i < n; ++i) run(0, i);
        } else {
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
            {
                const int t = omp_get_thread_num();
#pragma omp for schedule(static)
                for (std::int64_t i = 0; i < n; ++i) run(t, i);
            }
#endif
        }
        int first = -1;
        for (int t = 0; t < threads; ++t)
            if (errors[static_cast<std::size_t>(t)] &&
                (first < 0 || error_items[static_cast<std::size_t>(t)] < error_items[static_cast<std::size_t>(first)]))
                first = t;
        if (first >= 0) std::rethrow_exception(errors[static_cast<std::size_t>(first)]);
    }

    std::unique_ptr<network> net_;
    std::vector<std::unique_ptr<network>> replicas_;
    std::int64_t num_classes_ = 0;
    std::int64_t in_channels_ = 0, image_size_ = 0;
    io::safetensors_metadata metadata_;
};

static_assert(check_feature_extractor<lenet_feature_extractor>());

}  // namespace ouro::metrics
