// Teaches: how much of the digit a trained G0's latents carry, measured on held-out real digits, and
// which pooling and timestep t to read them with (issue 12, parts 5 and 6). Latents are read from
// the quick profile's class-conditional U-Net with the null class (labels withheld), as the loop does.
//   1. Per t: the softmax probe fitted on D_r (the first 100 training digits of each class, the
//      quick profile's real set) and scored on N held-out test digits, for the spatial mean (32-d),
//      the flattened bottleneck (1,568-d) and the flattened bottleneck reduced by PCA fitted on D_r;
//      and the OLE score of the held-out latents with their true labels (rows normalised, divided
//      by N, as the loop reports it).
//   2. At --cluster-t: unsupervised labels for the held-out digits (labels used only to score), by
//      each variant, for every seed: today's loop path (z-scores + SSC-OMP), k-means, SSC-OMP with
//      normalised columns and a small k_max, and kNN-graph spectral clustering, on latents and on
//      pixels; with the graphs' connected components and the unit eigenvalues of D^-½ W D^-½.
// The last line is `accuracy <mean>` of the clustering variant of highest mean accuracy over seeds.
//
//   latent_structure MODEL [--data data/mnist] [--n 2000] [--t 10,50,100,200,400] [--pca 64,128,256]
//                    [--cluster-t 50] [--seeds 1,2,3]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/cluster/accuracy.hpp"
#include "ouro/cluster/kmeans.hpp"
#include "ouro/cluster/knn_graph.hpp"
#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/data/subset.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/latent/pca.hpp"
#include "ouro/ole/ole.hpp"
#include "ouro/presets/experiments.hpp"
#include "ouro/probe/softmax_probe.hpp"

using namespace ouro;

namespace {

constexpr nn::unet_spec spec = presets::lsf_unet_spec</*Colour=*/false, /*Conditional=*/true, /*Paper=*/false>();
using model_type = nn::unet<cpu, spec>;

struct options {
    std::string model, data = "data/mnist";
    std::int64_t n = 2000, real_per_class = 100, cluster_t = 50, cluster_pca = 20, neighbours = 10, k_max = 5;
    std::vector<std::int64_t> t = {10, 50, 100, 200, 400}, pca = {64, 128, 256};
    std::vector<std::uint64_t> seeds = {1, 2, 3};
    bool skip_table = false;
};

std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "What G0's latents know about held-out real digits: probe accuracy and OLE per pooling and timestep, "
        "and unsupervised clustering variants scored by the best cluster-to-digit matching.",
        "latent_structure"};
    examples::setup(app);
    app.add_option("MODEL", o.model, "G0 of the quick profile (lsf_experiment's g0/model.safetensors)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("--data", o.data, "Directory of the MNIST IDX files")->check(CLI::ExistingDirectory);
    app.add_option("--n", o.n, "Held-out digits: the first N of the test set")->check(examples::whole_in(100, 10'000));
    app.add_option("--real-per-class", o.real_per_class, "D_r: the first this many training digits of each class")
        ->check(examples::whole_in(10, 5'000));
    app.add_option("--t", o.t, "Timesteps of the table (of T = 1000)")
        ->delimiter(',')
        ->check(examples::whole_in(0, 999));
    app.add_option("--pca", o.pca, "PCA dimensions of the flattened latents in the table")
        ->delimiter(',')
        ->check(examples::whole_in(1, 999));
    app.add_flag("--skip-table", o.skip_table, "Only the clustering part");
    app.add_option("--cluster-t", o.cluster_t, "Timestep of the clustering part")->check(examples::whole_in(0, 999));
    app.add_option("--cluster-pca", o.cluster_pca, "Clustering: PCA dimensions (whitened) before centring + L2")
        ->check(examples::whole_in(2, 999));
    app.add_option("--neighbours", o.neighbours, "Clustering: k of the kNN graph")->check(examples::whole_in(1, 1000));
    app.add_option("--k-max", o.k_max, "Clustering: SSC-OMP's k_max of the new variant")
        ->check(examples::whole_in(1, 1000));
    app.add_option("--seeds", o.seeds, "Seeds of the latent noise and of k-means (list)")->delimiter(',');
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The spatial mean (N, C) of flattened bottlenecks (N, C·hw): latent::spatial_mean's sum in double
// of the same floats, so the same values as extracting with that policy.
tensor<float> spatial_mean_of(const tensor<float>& flat, std::int64_t channels) {
    const std::int64_t n = flat.dim(0), hw = flat.dim(1) / channels;
    tensor<float> out(shape{n, channels});
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t c = 0; c < channels; ++c) {
            double s = 0;
            for (std::int64_t p = 0; p < hw; ++p) s += static_cast<double>(flat[i * flat.dim(1) + c * hw + p]);
            out[i * channels + c] = static_cast<float>(s / static_cast<double>(hw));
        }
    return out;
}

int run(const options& o) {
    model_type g0;
    diffusion::load_model(o.model, g0);
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    const auto train = data::load_mnist(o.data, data::split::train);
    const auto test = data::load_mnist(o.data, data::split::test);
    const auto real = data::first_per_class(train, o.real_per_class, "mnist-real");
    std::vector<std::int64_t> rows(static_cast<std::size_t>(std::min(o.n, test.size())));
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>(i);
    const auto held = data::subset(test, rows, "mnist-held-out");
    const std::vector<std::int64_t> truth(held.labels.begin(), held.labels.end());
    constexpr std::int64_t channels = 32;  // the small U-Net's bottleneck: 32 channels × 7 × 7

    // Flattened latents, null class, of a set at t; ids apart for D_r and the held-out digits.
    auto latents = [&](const data::image_dataset& set, std::int64_t t, std::uint64_t seed, std::int64_t first_id) {
        latent::latent_extractor<model_type, latent::flatten> ex(g0, table, {.timestep = t, .seed = seed});
        const tensor<std::int64_t> null_labels(shape{set.size()}, spec.classes);
        const tensor<std::int64_t> ids = latent::sequential_ids(set.size(), first_id);
        return ex.extract(set.images.view(), null_labels.view(), ids.view());
    };
    std::printf(
        "G0 %s; D_r %lld digits (%lld per class); held-out: the first %lld test digits; latents with the "
        "null class, one noise draw\n",
        o.model.c_str(), static_cast<long long>(real.size()), static_cast<long long>(o.real_per_class),
        static_cast<long long>(held.size()));

    // ---- 1. Probe and OLE against t.
    if (!o.skip_table) {
        std::printf(
            "\nprobe: fitted on D_r (L-BFGS, l2 1e-4, standardised), held-out accuracy; OLE of the held-out latents\n");
        std::printf("%5s %10s %10s", "t", "mean(32)", "flat(1568)");
        for (std::int64_t d : o.pca) std::printf("   pca(%4lld)", static_cast<long long>(d));
        std::printf(" %10s %10s %10s\n", "OLE mean", "OLE flat", "OLE pca");
        for (std::int64_t t : o.t) {
            const tensor<float> fr = latents(real, t, 0, 0), fh = latents(held, t, 0, 1'000'000);
            auto held_accuracy = [&](const tensor<float>& a, const tensor<float>& b) {
                probe::softmax_probe p;
                p.fit(a.view(), real.labels, 10);
                return p.accuracy(b.view(), held.labels);
            };
            const tensor<float> mr = spatial_mean_of(fr, channels), mh = spatial_mean_of(fh, channels);
            std::printf("%5lld %10.4f %10.4f", static_cast<long long>(t), held_accuracy(mr, mh), held_accuracy(fr, fh));
            tensor<float> reduced_h;
            for (std::int64_t d : o.pca) {
                const auto reduce = latent::pca::fit(fr.view(), d);
                reduced_h = reduce.apply(fh.view());
                std::printf(" %11.4f", held_accuracy(reduce.apply(fr.view()), reduced_h));
            }
            const ole::score_options loop_ole{.normalize_rows = true, .divide_by_n = true};
            std::printf(" %10.4f %10.4f %10.4f\n", ole::score(mh.view(), truth, loop_ole),
                        ole::score(fh.view(), truth, loop_ole),
                        o.pca.empty() ? NAN : ole::score(reduced_h.view(), truth, loop_ole));
            std::fflush(stdout);
        }
    }

    // ---- 2. Clustering variants on the held-out digits.
    tensor<float> pixels(shape{held.size(), 784});
    std::copy(held.images.begin(), held.images.end(), pixels.begin());
    struct variant {
        std::string name;
        std::vector<double> accuracy;
    };
    std::vector<variant> variants;
    const std::int64_t k = 10, d = o.cluster_pca;
    auto record = [&](std::size_t index, const std::string& name, const std::vector<std::int64_t>& labels,
                      const std::string& extra) {
        if (variants.size() <= index) variants.push_back({name, {}});
        const double a = cluster::clustering_accuracy(labels, truth);
        variants[index].accuracy.push_back(a);
        std::vector<std::int64_t> sizes(static_cast<std::size_t>(k), 0);
        for (std::int64_t l : labels) ++sizes[static_cast<std::size_t>(l)];
        const double largest =
            static_cast<double>(*std::max_element(sizes.begin(), sizes.end())) / static_cast<double>(labels.size());
        std::printf("  %-58s accuracy %.4f, largest cluster %.2f%s\n", name.c_str(), a, largest, extra.c_str());
        std::fflush(stdout);
    };
    // A graph's components and the unit eigenvalues among the top K of its normalised affinity.
    auto graph_note = [](const Eigen::SparseMatrix<double>& w, const cluster::spectral_result& r) {
        const cluster::graph_components c = cluster::connected_components(w);
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "  (components %lld, isolated %lld, eigenvalues >= 1-1e-8: %lld; lambda_2 %.4f, lambda_K %.4f)",
                      static_cast<long long>(c.count), static_cast<long long>(c.isolated),
                      static_cast<long long>(cluster::near_unit_eigenvalues(r.eigenvalues)), r.eigenvalues[1],
                      r.eigenvalues[r.eigenvalues.size() - 1]);
        return std::string(buf);
    };
    std::printf("\nclustering the %lld held-out digits at t = %lld (K = 10; labels only score)\n",
                static_cast<long long>(held.size()), static_cast<long long>(o.cluster_t));
    for (std::uint64_t seed : o.seeds) {
        const auto t0 = std::chrono::steady_clock::now();
        std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
        const cluster::spectral_options spectral{.kmeans = {.seed = seed}};
        const tensor<float> flat = latents(held, o.cluster_t, seed, 1'000'000);
        const tensor<float> mean = spatial_mean_of(flat, channels);
        std::size_t v = 0;
        {  // Today's unlabelled loop: spatial mean, per-dimension z-scores, SSC-OMP (k_max 10).
            const tensor<float> z = latent::standardizer::fit(mean.view()).apply(mean.view());
            const auto w = cluster::ssc_affinity(cluster::ssc_omp(z.view()).coefficients);
            const auto r = cluster::spectral_clustering(w, k, spectral);
            record(v++, "mean(32) z-scores, SSC-OMP k_max 10 (the loop today)", r.labels, graph_note(w, r));
            record(v++, "mean(32) z-scores, k-means", cluster::kmeans(z.view(), k, {.seed = seed}).labels, "");
        }
        const tensor<float> unit = latent::centred_unit_rows::fit(flat.view()).apply(flat.view());
        const auto reduce50 = latent::pca::fit(flat.view(), 50);
        const tensor<float> r50 = reduce50.apply(flat.view());
        const tensor<float> u50 = latent::centred_unit_rows::fit(r50.view()).apply(r50.view());
        {
            const auto w = cluster::ssc_affinity(cluster::ssc_omp(u50.view(), {.k_max = o.k_max}).coefficients, true);
            const auto r = cluster::spectral_clustering(w, k, spectral);
            record(v++, "flat, PCA 50, centred+L2, SSC-OMP k_max " + std::to_string(o.k_max) + " unit columns",
                   r.labels, graph_note(w, r));
        }
        record(v++, "flat, centred+L2, k-means", cluster::kmeans(unit.view(), k, {.seed = seed}).labels, "");
        const auto white = latent::pca::fit(flat.view(), d, /*whiten=*/true);
        const tensor<float> rw = white.apply(flat.view());
        const tensor<float> uw = latent::centred_unit_rows::fit(rw.view()).apply(rw.view());
        const std::string tag = "flat, PCA " + std::to_string(d) + " whitened, centred+L2, ";
        record(v++, tag + "k-means", cluster::kmeans(uw.view(), k, {.seed = seed}).labels, "");
        for (const auto symmetry : {cluster::knn_symmetry::either, cluster::knn_symmetry::mutual}) {
            const auto w = cluster::knn_affinity(uw.view(), {.neighbours = o.neighbours, .symmetry = symmetry});
            const auto r = cluster::spectral_clustering(w, k, spectral);
            record(v++, tag + std::to_string(o.neighbours) + "-NN (" + cluster::to_string(symmetry) + ") spectral",
                   r.labels, graph_note(w, r));
        }
        {
            const auto w = cluster::knn_affinity(unit.view(), {.neighbours = o.neighbours});
            const auto r = cluster::spectral_clustering(w, k, spectral);
            record(v++, "flat, centred+L2, " + std::to_string(o.neighbours) + "-NN (either) spectral", r.labels,
                   graph_note(w, r));
        }
        {  // Pixels, the same recipe (seed-independent but for k-means).
            const auto pw = latent::pca::fit(pixels.view(), d, true);
            const tensor<float> pr = pw.apply(pixels.view());
            const tensor<float> pu = latent::centred_unit_rows::fit(pr.view()).apply(pr.view());
            const auto w = cluster::knn_affinity(pu.view(), {.neighbours = o.neighbours});
            const auto r = cluster::spectral_clustering(w, k, spectral);
            record(v++,
                   "pixels, PCA " + std::to_string(d) + " whitened, centred+L2, " + std::to_string(o.neighbours) +
                       "-NN (either) spectral",
                   r.labels, graph_note(w, r));
        }
        std::printf("  (%.1f s)\n", seconds_since(t0));
    }
    std::printf("\nover %zu seeds: mean, min, max\n", o.seeds.size());
    std::size_t best = 0;
    std::vector<double> means;
    for (std::size_t i = 0; i < variants.size(); ++i) {
        const auto& a = variants[i].accuracy;
        double s = 0, lo = 1, hi = 0;
        for (double x : a) s += x, lo = std::min(lo, x), hi = std::max(hi, x);
        means.push_back(s / static_cast<double>(a.size()));
        std::printf("  %-58s %.4f  [%.4f, %.4f]\n", variants[i].name.c_str(), means.back(), lo, hi);
        if (means.back() > means[best]) best = i;
    }
    std::printf("best: %s\n", variants[best].name.c_str());
    std::printf("accuracy %.4f\n", means[best]);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("latent_structure", [&] { return run(*o); });
}
