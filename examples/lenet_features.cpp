// Teaches: judging MNIST-like images made by any program with ouro's LeNet, the feature extractor
// and classifier behind the loop's metrics. Reads images (N, 1, 28, 28) from a .npy file (float32 or
// float64 in [-1, 1], as ouro's and PyTorch's samplers write them), writes their LeNet features
// (N, 84) as .npy for compute_metrics, and prints the share classified as label i mod 10 (the
// class-balanced labels the loop samples with), overall and per label. --real writes the features
// of as many MNIST test images, class-balanced the same way, the reference set a LeNet-FID compares
// with. --predictions writes the class LeNet gives each image: the digit mix of an unconditional
// model's samples, which carry no label.
//
//   lenet_features IMAGES.npy --out FEATURES.npy [--lenet runs/cache/lenet_mnist.safetensors]
//                  [--data data/mnist] [--real REAL_FEATURES.npy] [--predictions CLASSES.npy] [--no-quantize]
//   compute_metrics REAL_FEATURES.npy FEATURES.npy        # LeNet-FID, precision, recall, ...
//
// Images are clamped to [-1, 1] and rounded to 8-bit levels first (as the loop keeps its samples),
// unless --no-quantize, so samples saved by different programs are judged alike.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/metrics/feature_extractor.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t classes = 10;

struct options {
    fs::path images, out, real, predictions, lenet = "runs/cache/lenet_mnist.safetensors", data = "data/mnist";
    bool quantize = true;
};

std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "LeNet features (N, 84) and label agreement of MNIST-like images (N, 1, 28, 28) from a .npy file, "
        "for compute_metrics.",
        "lenet_features"};
    examples::setup(app);
    app.add_option("IMAGES", o.images, "Images (N, 1, 28, 28), float32 or float64 in [-1, 1], label i mod 10 (.npy)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("--out", o.out, "Features (N, 84) float64 (.npy)")->required();
    app.add_option("--lenet", o.lenet,
                   "The cached LeNet (lsf_experiment's runs/cache/lenet_mnist.safetensors); "
                   "trained on --data's training split and written there when absent");
    app.add_option("--data", o.data, "Directory of the MNIST IDX files")->check(CLI::ExistingDirectory);
    app.add_option("--real", o.real, "Also write the features of N MNIST test images, the first N/10 of each class");
    app.add_option("--predictions", o.predictions, "Also write LeNet's class of each image (N) int64 (.npy)");
    app.add_flag("!--no-quantize", o.quantize, "Judge the images as they are, not rounded to 8-bit levels");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

// The first n / classes test images of each class, ordered so that image i has label i mod classes.
tensor<float> balanced_test_images(const data::image_dataset& test, std::int64_t n) {
    require(n % classes == 0, "--real: expected a multiple of ", classes, " images, found ", n);
    std::vector<std::vector<std::int64_t>> by_class(classes);
    for (std::int64_t i = 0; i < test.size(); ++i) {
        auto& v = by_class[static_cast<std::size_t>(test.labels[i])];
        if (static_cast<std::int64_t>(v.size()) < n / classes) v.push_back(i);
    }
    tensor<float> out(shape{n, 1, 28, 28});
    for (std::int64_t j = 0; j < n; ++j) {
        const auto& v = by_class[static_cast<std::size_t>(j % classes)];
        require(static_cast<std::int64_t>(v.size()) == n / classes,
                "--real: the test split has too few images of class ", j % classes);
        std::copy_n(test.images.data() + v[static_cast<std::size_t>(j / classes)] * 784, 784, out.data() + j * 784);
    }
    return out;
}

int run(const options& o) {
    tensor<float> images = io::read_npy<float>(o.images);
    require(
        images.rank() == 4 && images.dim(1) == 1 && images.dim(2) == 28 && images.dim(3) == 28 && images.dim(0) >= 1,
        o.images.string(), ": expected images (N, 1, 28, 28), found shape ", images.dims());
    for (float& v : images) {
        require(std::isfinite(v), o.images.string(), ": expected finite pixels, found ", v);
        if (o.quantize) v = std::round((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f) / 127.5f - 1.0f;
    }
    metrics::lenet_feature_extractor lenet;
    if (const auto r = lenet.train_or_load(data::load_mnist(o.data, data::split::train), o.lenet); r.trained)
        std::printf("LeNet: trained and cached in %s (%s)\n", o.lenet.string().c_str(), r.reason.c_str());

    const auto as_double = [](const tensor<float>& f) {
        tensor<double> d(f.dims());
        std::copy(f.begin(), f.end(), d.begin());
        return d;
    };
    io::write_npy(o.out, as_double(lenet.features(images.view())).view());
    const tensor<std::int64_t> predicted = lenet.classify(images.view());
    if (!o.predictions.empty()) io::write_npy(o.predictions, predicted.view());
    std::int64_t agree = 0;
    std::vector<std::int64_t> agree_per_label(static_cast<std::size_t>(classes), 0),
        per_label(static_cast<std::size_t>(classes), 0);
    for (std::int64_t i = 0; i < predicted.numel(); ++i) {
        const bool same = predicted[i] == i % classes;
        agree += same;
        agree_per_label[static_cast<std::size_t>(i % classes)] += same;
        ++per_label[static_cast<std::size_t>(i % classes)];
    }
    if (!o.real.empty()) {
        const tensor<float> real = balanced_test_images(data::load_mnist(o.data, data::split::test), images.dim(0));
        io::write_npy(o.real, as_double(lenet.features(real.view())).view());
    }
    std::printf("label_agreement %.4f\n", static_cast<double>(agree) / static_cast<double>(predicted.numel()));
    // Per conditioning label: a label the loop starved of training items shows here, not in the mean.
    std::printf("label_agreement_per_label");
    for (std::size_t c = 0; c < per_label.size(); ++c)
        std::printf(" %.3f",
                    per_label[c] ? static_cast<double>(agree_per_label[c]) / static_cast<double>(per_label[c]) : NAN);
    std::printf("\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("lenet_features", [&] { return run(*o); });
}
