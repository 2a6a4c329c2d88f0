// Teaches: training a classifier with ouro end to end — data, model, loss, AdamW, evaluation.
// A LeNet-5 on the MNIST training set; prints progress and, as its last line, `accuracy <fraction>`
// on the 10,000 test images.
//
//   lenet_mnist [--data data/mnist] [--epochs 3] [--batch 64] [--lr 2e-3] [--seed 1]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/batches.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/nn/lenet.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/lr_schedule.hpp"

using namespace ouro;

namespace {

struct options {
    std::string data = "data/mnist";
    int epochs = 3;
    std::int64_t batch = 64;
    double lr = 2e-3;
    std::uint64_t seed = 1;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) fail("lenet_mnist: ", a, " needs a value");
            return argv[++i];
        };
        if (a == "--data") o.data = value();
        else if (a == "--epochs") o.epochs = std::stoi(value());
        else if (a == "--batch") o.batch = std::stoll(value());
        else if (a == "--lr") o.lr = std::stod(value());
        else if (a == "--seed") o.seed = std::stoull(value());
        else fail("lenet_mnist: unknown argument '", a, "' (expected --data, --epochs, --batch, --lr, --seed)");
    }
    require(o.epochs >= 1 && o.batch >= 1, "lenet_mnist: expected --epochs >= 1 and --batch >= 1");
    return o;
}

// Share of `set` classified as its label, in batches of 1,000, evaluation mode.
double accuracy(nn::lenet<cpu>& net, const data::image_dataset& set) {
    std::int64_t correct = 0;
    tensor<float> batch;
    for (std::int64_t begin = 0; begin < set.size(); begin += 1000) {
        const std::int64_t count = std::min<std::int64_t>(1000, set.size() - begin);
        std::vector<std::int64_t> idx(static_cast<std::size_t>(count));
        for (std::int64_t i = 0; i < count; ++i) idx[static_cast<std::size_t>(i)] = begin + i;
        data::gather<float>(set.images, idx.data(), count, batch);
        const auto logits = net.forward(batch);  // (count, 10)
        for (std::int64_t i = 0; i < count; ++i) {
            const float* row = logits.data() + i * 10;
            const auto best = std::max_element(row, row + 10) - row;
            correct += best == set.labels[begin + i];
        }
    }
    return static_cast<double>(correct) / static_cast<double>(set.size());
}

int run(const options& o) {
    const auto train = data::load_mnist(o.data, data::split::train);
    const auto test = data::load_mnist(o.data, data::split::test);
    std::printf("data: %lld training and %lld test images from %s; %d threads\n",
                static_cast<long long>(train.size()), static_cast<long long>(test.size()), o.data.c_str(), max_threads());

    nn::lenet<cpu> net;
    net.reset_parameters(o.seed);
    optim::adamw<float> opt(net.store(), {.lr = o.lr, .weight_decay = 1e-4});
    const std::int64_t steps_per_epoch = train.size() / o.batch;  // the last partial batch is dropped
    const auto schedule = optim::warmup_cosine(o.lr, 100, steps_per_epoch * o.epochs);

    tensor<float> images, dlogits(shape{o.batch, 10});
    tensor<std::int64_t> labels;
    const auto start = std::chrono::steady_clock::now();
    std::int64_t step = 0;
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
        const auto order = data::epoch_order(train.size(), o.seed, static_cast<std::uint64_t>(epoch));
        double loss_sum = 0;
        for (std::int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
            const std::int64_t* idx = order.data() + b * o.batch;
            data::gather<float>(train.images, idx, o.batch, images);
            data::gather<std::int64_t>(train.labels, idx, o.batch, labels);
            const auto logits = net.forward(images, {.training = true, .seed = o.seed, .step = static_cast<std::uint64_t>(step)});
            loss_sum += ops<cpu>::softmax_cross_entropy<float>(logits, labels, dlogits.view());
            net.store().zero_grad();
            net.backward(dlogits);
            opt.set_lr(schedule(step));
            opt.step(net.store());
            if ((b + 1) % 200 == 0 || b + 1 == steps_per_epoch) {
                const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                std::printf("epoch %d step %lld/%lld loss %.4f  %.0f images/s\n", epoch + 1,
                            static_cast<long long>(b + 1), static_cast<long long>(steps_per_epoch),
                            loss_sum / static_cast<double>(b + 1),
                            static_cast<double>((step + 1) * o.batch) / secs);
                std::fflush(stdout);
            }
        }
        std::printf("epoch %d done: test accuracy %.4f\n", epoch + 1, accuracy(net, test));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("trained %d epochs in %.1f s\n", o.epochs, secs);
    std::printf("accuracy %.4f\n", accuracy(net, test));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
