// bench_metrics: seconds for FID, precision/recall/density/coverage and KID on Inception-sized
// feature sets (default 10,000 × 256 against 10,000 × 256, float32 features as a feature extractor
// hands them over). Compare with `tests/golden/gen_metrics.py reference` on the same .npy files
// (written with --save DIR) for the numpy/scipy side.
//
//   bench_metrics [N] [D] [--save DIR]
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>

#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/metrics/kid.hpp"
#include "ouro/metrics/precision_recall.hpp"

namespace {

// Correlated Gaussian features: x = z + 0.5 z_shifted, plus an offset for the fake set.
ouro::tensor<float> features(std::int64_t n, std::int64_t d, std::uint64_t seed, float offset, float scale) {
    ouro::tensor<float> x(ouro::shape{n, d});
    ouro::philox_stream rng(seed, ouro::rng_purpose::user, 0);
    for (std::int64_t i = 0; i < n; ++i) {
        float previous = 0;
        for (std::int64_t j = 0; j < d; ++j) {
            const float z = rng.normal();
            x[i * d + j] = offset + scale * (z + 0.5f * previous);
            previous = z;
        }
    }
    return x;
}

template <class F>
double seconds(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    std::int64_t n = 10000, d = 256;
    std::string save_dir;
    int positional = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--save" && i + 1 < argc) save_dir = argv[++i];
        else if (positional == 0 && ++positional)
            n = std::atoll(arg.c_str());
        else if (positional == 1 && ++positional)
            d = std::atoll(arg.c_str());
    }
    const ouro::tensor<float> real = features(n, d, 1, 0.0f, 1.0f), fake = features(n, d, 2, 0.05f, 1.1f);
    if (!save_dir.empty()) {
        ouro::io::write_npy(save_dir + "/real.npy", real.view());
        ouro::io::write_npy(save_dir + "/fake.npy", fake.view());
    }
    std::cout << "bench_metrics: real " << real.dims() << ", fake " << fake.dims() << ", " << ouro::max_threads()
              << " threads\n"
              << std::fixed << std::setprecision(3);

    double fid = 0;
    const double fid_s = seconds([&] { fid = ouro::metrics::fid(real, fake); });
    ouro::metrics::gaussian_stats stats;
    const double fit_s = seconds([&] { stats = ouro::metrics::fit_gaussian(real); });
    double distance = 0;
    const double fd_s = seconds([&] { distance = ouro::metrics::frechet_distance(stats, stats); });
    std::cout << "fid                   " << std::setw(8) << fid_s << " s   (fid " << std::setprecision(6) << fid
              << std::setprecision(3) << "; one fit_gaussian " << fit_s << " s, one frechet_distance " << fd_s
              << " s)\n";

    ouro::metrics::prdc_result pr;
    const double prdc_s = seconds([&] { pr = ouro::metrics::prdc(real, fake); });
    std::cout << "precision/recall/D/C  " << std::setw(8) << prdc_s << " s   (" << std::setprecision(4) << pr.precision
              << ", " << pr.recall << ", " << pr.density << ", " << pr.coverage << std::setprecision(3) << ")\n";

    ouro::metrics::kid_result kid;
    const std::int64_t m = std::min<std::int64_t>(1000, n);
    const double kid_s = seconds([&] { kid = ouro::metrics::kid(real, fake, {.subsets = 100, .subset_size = m}); });
    std::cout << "kid (100 × " << m << ")      " << std::setw(8) << kid_s << " s   (kid " << std::setprecision(6)
              << kid.mean << ")\n";
    return 0;
}
