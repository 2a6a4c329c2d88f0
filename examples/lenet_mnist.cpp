// Teaches: training a classifier with ouro end to end — data, model, the training loop of
// metrics/classifier_training.hpp (seeded batches, cross-entropy, AdamW, warm-up + cosine), evaluation.
// A LeNet-5 on the MNIST training set; prints progress and, as its last line, `accuracy <fraction>`
// on the 10,000 test images.
//
//   lenet_mnist [--data data/mnist] [--epochs 3] [--batch 64] [--lr 2e-3] [--seed 1]
#include <cstdio>
#include <cstdlib>
#include <optional>
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

// The command line, every value range-checked before the data is read.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "Trains a LeNet-5 on the MNIST training set (AdamW, warm-up + cosine) and reports its accuracy on the "
        "10,000 test images.",
        "lenet_mnist"};
    examples::setup(app);
    app.add_option("--data", o.data, "Directory of the MNIST IDX files")->check(CLI::ExistingDirectory);
    app.add_option("--epochs", o.epochs, "Passes over the 60,000 training images")->check(examples::whole_in(1, 1000));
    app.add_option("--batch", o.batch, "Images per optimizer step")->check(examples::whole_in(1, 60'000));
    app.add_option("--lr", o.lr, "AdamW learning rate at the end of the warm-up (then cosine decay)")
        ->check(examples::finite_above(0));
    app.add_option("--seed", o.seed, "Seed of the initial weights and the batch order")
        ->check(examples::unsigned_integer);
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
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
    std::printf("data: %lld training and %lld test images from %s; %d threads\n", static_cast<long long>(train.size()),
                static_cast<long long>(test.size()), o.data.c_str(), max_threads());

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
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("lenet_mnist", [&] { return run(*o); });
}
