// Teaches: labelling unlabelled images with SSC-OMP and spectral clustering, and scoring the labels
// against the truth by the best one-to-one cluster-to-class matching (the Hungarian method).
// Clusters the first N MNIST test images, raw pixels in [0, 1] or their projection on the top
// eigenvectors of XᵀX (uncentred PCA);
// k-means on the same features is printed beside it for comparison. The last line is
// `accuracy <fraction>` of SSC-OMP.
//
//   cluster_mnist [--data data/mnist] [--n 2000] [--pca 0] [--k-max 10] [--epsilon 1e-3]
//                 [--normalize-columns] [--seed 0]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <Eigen/Dense>

#include "cli.hpp"
#include "ouro/cluster/accuracy.hpp"
#include "ouro/cluster/kmeans.hpp"
#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/mnist.hpp"

using namespace ouro;

namespace {

struct options {
    std::string data = "data/mnist";
    std::int64_t n = 2000;
    std::int64_t pca = 0;  // 0: raw pixels
    std::int64_t k_max = 10;
    double epsilon = 1e-3;
    bool normalize_columns = false;
    std::uint64_t seed = 0;
};

// The command line, every value range-checked before the data is read.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "SSC-OMP + spectral clustering of the first N MNIST test images (raw pixels or their uncentred PCA), "
        "scored by the best cluster-to-digit matching, with k-means beside it.",
        "cluster_mnist"};
    examples::setup(app);
    app.add_option("--data", o.data, "Directory of the MNIST IDX files")->check(CLI::ExistingDirectory);
    app.add_option("--n", o.n, "Images: the first N of the test set (all of them when it holds fewer)")
        ->check(examples::whole_in(10, 1'000'000));
    app.add_option("--pca", o.pca, "Dimensions: project on the top eigenvectors of X^T X, uncentred (0: raw pixels)")
        ->check(examples::whole_in(0, 784));
    app.add_option("--k-max", o.k_max, "SSC-OMP: most atoms (neighbours) per point")
        ->check(examples::whole_in(1, 1000));
    app.add_option("--epsilon", o.epsilon, "SSC-OMP: stop once a unit-norm point's residual norm is <= this")
        ->check(examples::finite_at_least(0));
    app.add_flag("--normalize-columns", o.normalize_columns,
                 "Scale each coefficient column to unit L2 norm before the affinity |C| + |C|^T (You et al.'s code)");
    app.add_option("--seed", o.seed, "Seed of both k-means runs (in spectral clustering and the baseline)")
        ->check(examples::unsigned_integer);
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The rows of x (N, D) projected on the top `dims` eigenvectors of XᵀX, without centring: subspaces
// through the origin stay linear subspaces, which SSC models (centring would make them affine).
// The same reduction as You et al.'s dim_reduction.
tensor<double> project(const tensor<double>& x, std::int64_t dims) {
    const std::int64_t n = x.dim(0), d = x.dim(1);
    require(dims <= d, "cluster_mnist: expected --pca <= ", d, " (the pixel count), found ", dims);
    using row_matrix = cluster::row_matrix;
    const Eigen::Map<const row_matrix> xm(x.data(), n, d);
    const Eigen::MatrixXd gram = xm.transpose() * xm;  // (D, D)
    const cluster::eigenpairs top = cluster::top_eigenpairs(gram, dims);
    tensor<double> out(shape{n, dims});
    Eigen::Map<row_matrix>(out.data(), n, dims) = xm * top.vectors;
    return out;
}

int run(const options& o) {
    const auto test = data::load_mnist(o.data, data::split::test, data::pixel_scale::zero_to_one);
    const std::int64_t n = std::min(o.n, test.size()), pixels = test.height() * test.width();
    tensor<double> x(shape{n, pixels});  // (N, 784)
    for (std::int64_t i = 0; i < n * pixels; ++i) x[i] = test.images[i];
    std::vector<std::int64_t> truth(test.labels.begin(), test.labels.begin() + n);
    if (o.pca > 0) x = project(x, o.pca);
    std::printf("data: the first %lld MNIST test images, %s (D = %lld); %d threads\n", static_cast<long long>(n),
                o.pca > 0 ? "projected on the top eigenvectors of XᵀX" : "raw pixels", static_cast<long long>(x.dim(1)),
                max_threads());

    auto t = std::chrono::steady_clock::now();
    const cluster::ssc_omp_result c = cluster::ssc_omp(x, {.k_max = o.k_max, .epsilon = o.epsilon});
    const double ssc_seconds = seconds_since(t);
    t = std::chrono::steady_clock::now();
    const cluster::spectral_result s = cluster::spectral_clustering(
        cluster::ssc_affinity(c.coefficients, o.normalize_columns), 10, {.kmeans = {.seed = o.seed}});
    const double spectral_seconds = seconds_since(t);
    const cluster::label_matching m = cluster::match_clusters(s.labels, truth);
    std::printf("SSC-OMP (k_max %lld, epsilon %g): %lld coefficients in %.2f s; spectral clustering in %.2f s\n",
                static_cast<long long>(o.k_max), o.epsilon, static_cast<long long>(c.coefficients.nonZeros()),
                ssc_seconds, spectral_seconds);
    std::printf("cluster -> digit:");
    for (std::size_t k = 0; k < m.cluster_to_class.size(); ++k)
        std::printf(" %zu->%lld", k, static_cast<long long>(m.cluster_to_class[k]));
    std::printf("\n");

    t = std::chrono::steady_clock::now();
    const cluster::kmeans_result km = cluster::kmeans(x, 10, {.seed = o.seed});
    std::printf("k-means on the same features: accuracy %.4f (%.2f s)\n",
                cluster::clustering_accuracy(km.labels, truth), seconds_since(t));
    std::printf("accuracy %.4f\n", m.accuracy);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("cluster_mnist", [&] { return run(*o); });
}
