// Training an image classifier on a labelled data set with ouro's usual recipe (seeded epoch order,
// AdamW, linear warm-up into cosine decay, mean softmax cross-entropy), and its evaluation: the
// loop behind examples/lenet_mnist and behind the LeNet feature extractor of the metrics.
//
//   nn::lenet<cpu> net;
//   net.reset_parameters(1);
//   metrics::train_classifier(net, train_set, {.epochs = 3}, my_callback);
//   const double acc = metrics::classifier_accuracy(net, test_set);
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <ostream>
#include <tuple>
#include <utility>
#include <vector>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/progress.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/batches.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/nn/module.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/lr_schedule.hpp"

namespace ouro::metrics {

// A classifier network: images (B, C, H, W) -> logits (B, K) in forward(x, ctx), backward(dlogits)
// accumulating the gradients of its float parameter store (nn::lenet is one).
template <class N>
concept classifier_network = requires(N& n, tensor_view<const float> x, const nn::forward_context& ctx) {
    { n.forward(x, ctx) } -> std::convertible_to<tensor_view<const float>>;
    { n.backward(x) } -> std::convertible_to<tensor_view<const float>>;
    { n.store() } -> std::same_as<parameter_store<float>&>;
};

// static_assert(check_classifier_network<N>()) explains in words what N lacks.
template <class N>
constexpr bool check_classifier_network() {
    static_assert(
        requires(N & n, tensor_view<const float> x, const nn::forward_context& ctx) {
            { n.forward(x, ctx) } -> std::convertible_to<tensor_view<const float>>;
        },
        "a classifier network needs `tensor_view<const float> forward(tensor_view<const float> x /*(B, C, H, W)*/, "
        "const nn::forward_context& ctx)` returning logits (B, K)");
    static_assert(
        requires(N & n, tensor_view<const float> dlogits) {
            { n.backward(dlogits) } -> std::convertible_to<tensor_view<const float>>;
        },
        "a classifier network needs `tensor_view<const float> backward(tensor_view<const float> dlogits)` that "
        "accumulates the gradients of its parameters");
    static_assert(
        requires(N & n) {
            { n.store() } -> std::same_as<parameter_store<float>&>;
        },
        "a classifier network needs `parameter_store<float>& store()`, the flat buffer of its weights");
    return classifier_network<N>;
}

// The recipe. The defaults are examples/lenet_mnist's: 3 epochs of batches of 64, AdamW at 2e-3
// with weight decay 1e-4, 100 warm-up steps, then cosine decay to 0 at the last step.
struct classifier_training_options {
    int epochs = 3;
    std::int64_t batch_size = 64;  // the last partial batch of an epoch is dropped
    double lr = 2e-3;
    double weight_decay = 1e-4;
    std::int64_t warmup_steps = 100;  // capped at half the run, so a short run still decays
    std::uint64_t seed = 1;           // epoch order (and dropout, for a network that has some)

    bool show_progress = false;  // a bar on a terminal, log lines elsewhere
    progress_style progress = progress_style::automatic;
    std::ostream* progress_out = nullptr;  // nullptr: std::cerr
};

// Throws ouro::error unless epochs >= 1, batch_size >= 1, lr >= 0, weight_decay >= 0, warmup_steps >= 0.
inline void validate(const classifier_training_options& o) {
    require(o.epochs >= 1, "train_classifier: expected epochs >= 1, found ", o.epochs);
    require(o.batch_size >= 1, "train_classifier: expected batch_size >= 1, found ", o.batch_size);
    require(o.lr >= 0, "train_classifier: expected lr >= 0, found ", o.lr);
    require(o.weight_decay >= 0, "train_classifier: expected weight_decay >= 0, found ", o.weight_decay);
    require(o.warmup_steps >= 0, "train_classifier: expected warmup_steps >= 0, found ", o.warmup_steps);
}

// What on_step(const classifier_step&) receives after every optimizer step.
struct classifier_step {
    int epoch;           // 0-based
    std::int64_t step;   // steps completed in the whole run (1 after the first)
    std::int64_t batch;  // batches completed in this epoch, 1 … steps_per_epoch
    std::int64_t steps_per_epoch;
    std::int64_t total_steps;
    double loss;               // this batch's mean cross-entropy
    double mean_loss;          // mean of this epoch's batch losses so far
    double lr;                 // the learning rate of this step
    double seconds;            // since training started
    double images_per_second;  // since training started
};

// What on_epoch_end(const classifier_epoch&) receives after every epoch.
struct classifier_epoch {
    int epoch;          // 0-based
    std::int64_t step;  // steps completed in the whole run
    double mean_loss;   // mean of the epoch's batch losses
    double seconds;     // since training started
};

struct classifier_training_report {
    std::int64_t steps = 0;      // steps taken
    int epochs = 0;              // epochs completed
    double final_mean_loss = 0;  // mean loss of the last (possibly partial) epoch
    double seconds = 0;
    bool stopped_early = false;  // a callback asked to stop
};

namespace detail {
// Labels (N) of `set`, each in [0, num_classes), images (N, C, H, W), N >= 1.
inline void require_labelled_images(const data::image_dataset& set, const char* who) {
    require(set.images.rank() == 4 && set.size() >= 1, who, ": data set '", set.name,
            "': expected images (N, C, H, W) with N >= 1, found shape ", set.images.dims());
    const std::string what = std::string(who) + ": labels (N) of data set '" + set.name + "'";
    require_shape(set.labels.dims(), shape{set.size()}, what.c_str());
    require(set.num_classes >= 1, who, ": data set '", set.name, "': expected num_classes >= 1, found ",
            set.num_classes);
    for (std::int64_t i = 0; i < set.size(); ++i)
        require(set.labels[i] >= 0 && set.labels[i] < set.num_classes, who, ": data set '", set.name, "': label ",
                set.labels[i], " at index ", i, " is out of range for ", set.num_classes, " classes");
}
}  // namespace detail

// Trains `net` from its current weights on `train` (the caller initialises them, e.g. with
// reset_parameters(seed)): each epoch visits data::epoch_order(N, seed, epoch) in batches of
// batch_size, in training mode with forward_context{training, seed, step}; one AdamW step per batch
// with the learning rate of warmup_cosine(lr, min(warmup_steps, total/2), total). Callbacks'
// on_step(const classifier_step&) and on_epoch_end(const classifier_epoch&) are called when
// present; a hook that returns true stops training after that step.
// Requires N >= batch_size and labels in [0, num_classes) (and below the network's K).
template <class Net, class... Callbacks>
classifier_training_report train_classifier(Net& net, const data::image_dataset& train,
                                            const classifier_training_options& options = {}, Callbacks&... callbacks) {
    static_assert(check_classifier_network<Net>());
    validate(options);
    detail::require_labelled_images(train, "train_classifier");
    require(train.size() >= options.batch_size, "train_classifier: data set '", train.name, "' has ", train.size(),
            " images, fewer than one batch of ", options.batch_size);

    const std::int64_t batch = options.batch_size;
    const std::int64_t steps_per_epoch = train.size() / batch;
    const std::int64_t total_steps = steps_per_epoch * options.epochs;
    const auto schedule =
        optim::warmup_cosine(options.lr, std::min(options.warmup_steps, total_steps / 2), total_steps);
    optim::adamw<float> opt(net.store(), {.lr = options.lr, .weight_decay = options.weight_decay});

    std::optional<progress> bar;
    if (options.show_progress)
        bar.emplace(total_steps, progress_options{.label = "classifier",
                                                  .log_every = 100,
                                                  .items_per_step = batch,
                                                  .unit = "img",
                                                  .style = options.progress,
                                                  .out = options.progress_out});

    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    tensor<float> images, dlogits;
    tensor<std::int64_t> labels;
    classifier_training_report report;
    std::int64_t step = 0;
    for (int epoch = 0; epoch < options.epochs && !report.stopped_early; ++epoch) {
        const auto order = data::epoch_order(train.size(), options.seed, static_cast<std::uint64_t>(epoch));
        double loss_sum = 0;
        std::int64_t b = 0;
        for (; b < steps_per_epoch; ++b) {
            const std::int64_t* idx = order.data() + b * batch;
            data::gather<float>(train.images, idx, batch, images);
            data::gather<std::int64_t>(train.labels, idx, batch, labels);
            const nn::forward_context ctx{
                .training = true, .seed = options.seed, .step = static_cast<std::uint64_t>(step)};
            const tensor_view<const float> logits = net.forward(images, ctx);  // (batch, K)
            dlogits.resize(logits.dims());
            const double loss =
                ops<backend_of_t<Net>>::template softmax_cross_entropy<float>(logits, labels, dlogits.view());
            loss_sum += loss;
            net.store().zero_grad();
            net.backward(dlogits);
            const double lr = schedule(step);
            opt.set_lr(lr);
            opt.step(net.store());
            ++step;

            const double secs = seconds();
            const classifier_step event{epoch,
                                        step,
                                        b + 1,
                                        steps_per_epoch,
                                        total_steps,
                                        loss,
                                        loss_sum / static_cast<double>(b + 1),
                                        lr,
                                        secs,
                                        secs > 0 ? static_cast<double>(step * batch) / secs : 0.0};
            if (bar) bar->update(step, {{"loss", event.mean_loss}});
            if (invoke_each(on_step, std::tie(callbacks...), event)) {
                report.stopped_early = true;
                ++b;
                break;
            }
        }
        report.final_mean_loss = loss_sum / static_cast<double>(std::max<std::int64_t>(b, 1));
        if (report.stopped_early) break;
        report.epochs = epoch + 1;
        const classifier_epoch event{epoch, step, report.final_mean_loss, seconds()};
        if (invoke_each(on_epoch_end, std::tie(callbacks...), event)) report.stopped_early = true;
    }
    if (bar) bar->finish();
    report.steps = step;
    report.seconds = seconds();
    return report;
}

// The predicted class of every image (N, C, H, W): the first largest logit of `net` in evaluation
// mode, in batches of `batch` images (N >= 1).
template <class Net>
tensor<std::int64_t> predict_classes(Net& net, tensor_view<const float> images, std::int64_t batch = 1000) {
    static_assert(check_classifier_network<Net>());
    require(images.rank() == 4 && images.dim(0) >= 1,
            "predict_classes: expected images (N, C, H, W) with N >= 1, found shape ", images.dims());
    require(batch >= 1, "predict_classes: expected batch >= 1, found ", batch);
    const std::int64_t n = images.dim(0), per_item = images.numel() / n;
    shape s = images.dims();
    tensor<std::int64_t> out(shape{n});
    for (std::int64_t begin = 0; begin < n; begin += batch) {
        const std::int64_t count = std::min(batch, n - begin);
        s[0] = count;
        const tensor_view<const float> x(images.data() + begin * per_item, s);          // (count, C, H, W)
        const tensor_view<const float> logits = net.forward(x, nn::forward_context{});  // (count, K)
        require(logits.rank() == 2 && logits.dim(0) == count && logits.dim(1) >= 1,
                "predict_classes: expected logits (", count, ", K), found shape ", logits.dims());
        const std::int64_t k = logits.dim(1);
        for (std::int64_t i = 0; i < count; ++i) {
            const float* row = logits.data() + i * k;
            out[begin + i] = std::max_element(row, row + k) - row;
        }
    }
    return out;
}

// The share of `set` that `net` classifies as labelled, in batches of `batch` images.
template <class Net>
double classifier_accuracy(Net& net, const data::image_dataset& set, std::int64_t batch = 1000) {
    detail::require_labelled_images(set, "classifier_accuracy");
    const tensor<std::int64_t> predicted = predict_classes(net, set.images.view(), batch);
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < set.size(); ++i) correct += predicted[i] == set.labels[i];
    return static_cast<double>(correct) / static_cast<double>(set.size());
}

}  // namespace ouro::metrics
