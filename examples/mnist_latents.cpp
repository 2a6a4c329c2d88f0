// Teaches: what a trained DDPM's encoder knows about its data — the premise of Latent Space
// Filtering. Reads the bottleneck latents h_t(x) of MNIST digits from the U-Net that train_mnist
// trained (labels withheld: the null class), then
//   1. fits the softmax probe on latents of training digits (L-BFGS; convergence shown) and reports
//      its accuracy on held-out digits, and
//   2. clusters latents of test digits with SSC-OMP + spectral clustering (and k-means for
//      comparison), reporting accuracy under the best label matching.
//
//   mnist_latents [--model runs/train_mnist/model_ema.safetensors] [--data data/mnist]
//                 [--t 50] [--probe-n 5000] [--cluster-n 2000] [--k-max 10]
#include <cstdio>
#include <optional>
#include <string>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/cluster/accuracy.hpp"
#include "ouro/cluster/kmeans.hpp"
#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/presets/unet.hpp"
#include "ouro/probe/softmax_probe.hpp"

using namespace ouro;

namespace {

struct options {
    std::string model = "runs/train_mnist/model_ema.safetensors", data = "data/mnist";
    std::int64_t t = 50, probe_n = 5000, cluster_n = 2000, k_max = 10;
};

// The command line, every value range-checked before the model is read.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "What a trained DDPM's encoder knows: a softmax probe on the bottleneck latents of MNIST training "
        "digits, and SSC-OMP clustering of those of test digits (labels withheld).",
        "mnist_latents"};
    examples::setup(app);
    app.add_option("--model", o.model, "U-Net weights written by train_mnist (.safetensors)")->check(CLI::ExistingFile);
    app.add_option("--data", o.data, "Directory of the MNIST IDX files")->check(CLI::ExistingDirectory);
    app.add_option("--t", o.t, "Diffusion timestep of the latents, of T = 1000")->check(examples::whole_in(0, 999));
    app.add_option("--probe-n", o.probe_n, "Training digits for the probe (20% of them held out)")
        ->check(examples::whole_in(10, 60'000));
    app.add_option("--cluster-n", o.cluster_n, "Test digits to cluster")->check(examples::whole_in(10, 10'000));
    app.add_option("--k-max", o.k_max, "SSC-OMP: most atoms (neighbours) per point")
        ->check(examples::whole_in(1, 1000));
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

// The first n items of `set`: images (n, 1, 28, 28) and labels (n).
data::image_dataset head(const data::image_dataset& set, std::int64_t n) {
    require(n >= 1 && n <= set.size(), "mnist_latents: expected 1..", set.size(), " items, found ", n);
    data::image_dataset out;
    out.name = set.name;
    out.num_classes = set.num_classes;
    out.images = tensor<float>(shape{n, 1, 28, 28});
    std::copy(set.images.begin(), set.images.begin() + n * 784, out.images.begin());
    out.labels = tensor<std::int64_t>(shape{n});
    std::copy(set.labels.begin(), set.labels.begin() + n, out.labels.begin());
    return out;
}

int run(const options& o) {
    constexpr nn::unet_spec spec = presets::mnist_unet;
    nn::unet<cpu, spec> model;
    diffusion::load_model(o.model, model);
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    latent::latent_extractor<nn::unet<cpu, spec>, latent::spatial_mean> extractor(model, table, {.timestep = o.t});

    // Latents with labels withheld: every item gets the null class.
    auto latents_of = [&](const data::image_dataset& set, std::int64_t first_id) {
        const tensor<std::int64_t> null_labels(shape{set.size()}, spec.classes);
        const tensor<std::int64_t> ids = latent::sequential_ids(set.size(), first_id);
        return extractor.extract(set.images.view(), null_labels.view(), ids.view());
    };

    const auto train = head(data::load_mnist(o.data, data::split::train), o.probe_n);
    const tensor<float> train_latents = latents_of(train, 0);  // (N, C_mid)
    std::printf("latents: t = %lld, spatial mean of the bottleneck, %lld dims\n", static_cast<long long>(o.t),
                static_cast<long long>(train_latents.dim(1)));

    probe::softmax_probe probe;
    const auto report = probe.fit(train_latents.view(), train.labels, 10, {.holdout_fraction = 0.2});
    for (const auto& it : report.optimization.history)
        if (it.iteration % 50 == 0 || it.iteration + 1 == static_cast<std::int64_t>(report.optimization.history.size()))
            std::printf("  L-BFGS iteration %3lld: loss %.6f, |grad| %.2e\n", static_cast<long long>(it.iteration),
                        it.loss, it.gradient_norm);
    std::printf("probe: %s after %lld iterations; train accuracy %.4f, held-out accuracy %.4f (%lld digits)\n",
                to_string(report.optimization.status), static_cast<long long>(report.optimization.iterations),
                report.train_accuracy, report.holdout_accuracy, static_cast<long long>(report.holdout_count));

    const auto test = head(data::load_mnist(o.data, data::split::test), o.cluster_n);
    const tensor<float> test_latents = latents_of(test, 1'000'000);
    const auto standard = latent::standardizer::fit(test_latents.view());
    const tensor<float> z = standard.apply(test_latents.view());
    const auto ssc = cluster::ssc_omp_clustering(z.view(), 10, {.ssc = {.k_max = o.k_max}});
    const auto km = cluster::kmeans(z.view(), 10);
    std::printf("clustering %lld test digits: SSC-OMP accuracy %.4f, k-means accuracy %.4f\n",
                static_cast<long long>(test.size()), cluster::clustering_accuracy(ssc.labels, test.labels),
                cluster::clustering_accuracy(km.labels, test.labels));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("mnist_latents", [&] { return run(*o); });
}
