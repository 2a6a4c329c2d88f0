// Teaches: training a classifier with ouro end to end — data, model, the training loop of
// metrics/classifier_training.hpp (seeded batches, cross-entropy, AdamW, warm-up + cosine), evaluation.
// A LeNet-5 on the MNIST training set; prints progress and, as its last line, `accuracy <fraction>`
// on the 10,000 test images.
//
//   lenet_mnist [--data data/mnist] [--epochs 3] [--batch 64] [--lr 2e-3] [--seed 1]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/metrics/classifier_training.hpp"
#include "ouro/nn/lenet.hpp"

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
        else if (a == "--epochs") o.epochs = examples::number<int>(a, value());
        else if (a == "--batch") o.batch = examples::number<std::int64_t>(a, value());
        else if (a == "--lr") o.lr = examples::number<double>(a, value());
        else if (a == "--seed") o.seed = examples::number<std::uint64_t>(a, value());
        else fail("lenet_mnist: unknown argument '", a, "' (expected --data, --epochs, --batch, --lr, --seed)");
    }
    require(o.epochs >= 1 && o.batch >= 1, "lenet_mnist: expected --epochs >= 1 and --batch >= 1");
    return o;
}

// Prints the example's progress lines: every 200 steps and at the end of each epoch the running
// loss and throughput, after each epoch the test accuracy.
struct report_progress {
    nn::lenet<cpu>* net;
    const data::image_dataset* test;

    void on_step(const metrics::classifier_step& s) const {
        if (s.batch % 200 != 0 && s.batch != s.steps_per_epoch) return;
        std::printf("epoch %d step %lld/%lld loss %.4f  %.0f images/s\n", s.epoch + 1, static_cast<long long>(s.batch),
                    static_cast<long long>(s.steps_per_epoch), s.mean_loss, s.images_per_second);
        std::fflush(stdout);
    }
    void on_epoch_end(const metrics::classifier_epoch& e) const {
        std::printf("epoch %d done: test accuracy %.4f\n", e.epoch + 1, metrics::classifier_accuracy(*net, *test));
        std::fflush(stdout);
    }
};

int run(const options& o) {
    const auto train = data::load_mnist(o.data, data::split::train);
    const auto test = data::load_mnist(o.data, data::split::test);
    std::printf("data: %lld training and %lld test images from %s; %d threads\n",
                static_cast<long long>(train.size()), static_cast<long long>(test.size()), o.data.c_str(), max_threads());

    nn::lenet<cpu> net;
    net.reset_parameters(o.seed);
    report_progress progress{&net, &test};
    const metrics::classifier_training_report report = metrics::train_classifier(
        net, train, {.epochs = o.epochs, .batch_size = o.batch, .lr = o.lr, .weight_decay = 1e-4, .seed = o.seed},
        progress);
    std::printf("trained %d epochs in %.1f s\n", report.epochs, report.seconds);
    std::printf("accuracy %.4f\n", metrics::classifier_accuracy(net, test));
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
