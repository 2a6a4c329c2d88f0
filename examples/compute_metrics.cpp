// compute_metrics: FID, precision, recall, density, coverage and KID of two feature files.
// Teaches the metrics API end to end: read (N, D) features handed over from Python as .npy, refuse
// anything that is not a plain float matrix, compute every metric in double.
//
//   compute_metrics REAL.npy FAKE.npy [--k K] [--density-k K] [--kid-subsets S]
//                   [--kid-subset-size M] [--seed S] [--time]
//
// Prints one line per metric ("fid 12.3456789"); --kid-subsets 0 computes KID over all samples
// once; --time adds the seconds of each metric on stderr. Bad input: "error: ..." and exit code 2.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "cli.hpp"
#include "ouro/core/error.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/metrics/kid.hpp"
#include "ouro/metrics/precision_recall.hpp"

namespace {

struct arguments {
    std::string real, fake;
    std::int64_t k = 3;
    std::int64_t density_k = 5;
    std::int64_t kid_subsets = 100;
    std::int64_t kid_subset_size = -1;  // default: min(1000, N_real, N_fake)
    std::uint64_t seed = 0;
    bool time = false;
};

// The command line, every value range-checked before a file is opened.
std::optional<arguments> parse(int argc, char** argv, int& exit_code) {
    arguments a;
    CLI::App app{
        "FID, precision, recall, density, coverage and KID of two (N, D) feature files (.npy, float32 or "
        "float64, C order).",
        "compute_metrics"};
    examples::setup(app);
    app.add_option("REAL", a.real, "Real features (N, D) .npy")->required()->check(CLI::ExistingFile);
    app.add_option("FAKE", a.fake, "Generated features (M, D) .npy")->required()->check(CLI::ExistingFile);
    app.add_option("--k", a.k, "Neighbours for precision and recall")->check(examples::whole_in(1, 1'000'000));
    app.add_option("--density-k", a.density_k, "Neighbours for density and coverage")
        ->check(examples::whole_in(1, 1'000'000));
    app.add_option("--kid-subsets", a.kid_subsets, "KID subsets (0: one estimate over all samples)")
        ->check(examples::whole_in(0, 1'000'000));
    app.add_option("--kid-subset-size", a.kid_subset_size, "KID subset size (default: min(1000, N, M))")
        ->check(examples::whole_in(2, std::int64_t{1} << 40))
        ->default_str("");
    app.add_option("--seed", a.seed, "Seed of the KID subsets")->check(examples::unsigned_integer);
    app.add_flag("--time", a.time, "Print each metric's seconds on stderr");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return a;
}

// Features (N, D) from a float32 or float64 C-order .npy file, as double; refuses everything else.
ouro::tensor<double> read_features(const std::string& path) {
    {
        std::ifstream in(path, std::ios::binary);
        if (!in) ouro::fail(path, ": cannot open the file");
        const ouro::io::npy_header h = ouro::io::read_npy_header(in, path);
        if (h.dtype != "<f4" && h.dtype != "<f8")
            ouro::fail(path, ": expected features of dtype float32 ('<f4') or float64 ('<f8'), found '", h.dtype, "'");
        if (h.fortran_order) ouro::fail(path, ": expected a C-order array, found fortran_order=True");
        if (h.dims.rank() != 2) ouro::fail(path, ": expected a rank-2 array (N, D), found shape ", h.dims);
    }
    ouro::tensor<double> x = ouro::io::read_npy<double>(path);
    for (std::int64_t i = 0; i < x.numel(); ++i)
        if (!std::isfinite(x[i]))
            ouro::fail(path, ": expected finite features, found ", x[i], " at (", i / x.dim(1), ", ", i % x.dim(1),
                       ")");
    return x;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const arguments& a) {
    const ouro::tensor<double> real = read_features(a.real), fake = read_features(a.fake);
    if (real.dim(1) != fake.dim(1))
        ouro::fail("expected features of the same dimension D, found ", a.real, " of shape ", real.dims(), " and ",
                   a.fake, " of shape ", fake.dims());
    const std::int64_t most_k = std::max(a.k, a.density_k);
    if (real.dim(0) <= most_k)
        ouro::fail(a.real, ": k = ", most_k, " nearest neighbours need more than ", most_k, " samples, found shape ",
                   real.dims());
    if (fake.dim(0) <= a.k)
        ouro::fail(a.fake, ": k = ", a.k, " nearest neighbours need more than ", a.k, " samples, found shape ",
                   fake.dims());

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    const double fid = ouro::metrics::fid(real, fake);
    const double fid_s = seconds_since(t0);
    t0 = clock::now();
    const ouro::metrics::prdc_result pr =
        ouro::metrics::prdc(real, fake, {.k = static_cast<int>(a.k), .density_k = static_cast<int>(a.density_k)});
    const double prdc_s = seconds_since(t0);
    t0 = clock::now();
    const std::int64_t m =
        a.kid_subset_size > 0 ? a.kid_subset_size : std::min<std::int64_t>({1000, real.dim(0), fake.dim(0)});
    const ouro::metrics::kid_result kid =
        ouro::metrics::kid(real, fake, {.subsets = a.kid_subsets, .subset_size = m, .seed = a.seed});
    const double kid_s = seconds_since(t0);

    std::cout << std::setprecision(12) << "fid " << fid << "\nprecision " << pr.precision << "\nrecall " << pr.recall
              << "\ndensity " << pr.density << "\ncoverage " << pr.coverage << "\nkid " << kid.mean << '\n';
    if (a.time)
        std::cerr << std::fixed << std::setprecision(3) << "seconds fid " << fid_s << " prdc " << prdc_s << " kid "
                  << kid_s << '\n';
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<arguments> a = parse(argc, argv, exit_code);
    if (!a) return exit_code;
    return examples::run_reporting_errors("compute_metrics", [&] { return run(*a); });
}
