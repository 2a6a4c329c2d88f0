// The probe's L-BFGS (probe/softmax_probe.hpp: two-loop recursion, strong-Wolfe line search of
// Nocedal & Wright Algorithms 3.5/3.6) against LBFGSpp (Debian liblbfgspp-dev, header-only on Eigen)
// on the objective the probe minimises: mean softmax cross-entropy + (λ/2)||W||², λ = 1e-4 (the
// probe's default), standardised features, the same start (zeros), the same history (m = 10), the
// same stopping rule (||g||_2 <= 1e-6, at most 500 iterations). Prints, per problem and solver, the
// objective reached, ||g||, iterations, objective evaluations and wall time (best of 3).
// docs/ARCHITECTURE.md records the decision these figures support.
//
//   bench_lbfgs [--data data/mnist]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#if __has_include(<LBFGS.h>)
#include <LBFGS.h>
#define OURO_HAVE_LBFGSPP 1
#endif

#include "ouro/core/philox.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/probe/softmax_probe.hpp"

namespace {

using namespace ouro;

struct problem {
    std::string name;
    tensor<float> x;  // (N, D)
    std::vector<std::int64_t> labels;
    std::int64_t classes = 10;
};

probe::standardization standardize(const problem& p) {
    const std::int64_t n = p.x.dim(0), d = p.x.dim(1);
    probe::standardization s{std::vector<double>(static_cast<std::size_t>(d), 0.0),
                             std::vector<double>(static_cast<std::size_t>(d), 0.0)};
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) s.mean[static_cast<std::size_t>(j)] += p.x.data()[i * d + j] / double(n);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) {
            const double c = p.x.data()[i * d + j] - s.mean[static_cast<std::size_t>(j)];
            s.scale[static_cast<std::size_t>(j)] += c * c / double(n);
        }
    for (double& v : s.scale) v = v > 0 ? std::sqrt(v) : 1.0;
    return s;
}

// Ten overlapping Gaussian classes in 32 dimensions: the shape of the loop's spatial-mean latents.
problem gaussian_mixture(std::int64_t n) {
    problem p{"gaussian mixture, N=" + std::to_string(n) + ", D=32", tensor<float>(shape{n, 32}), {}, 10};
    philox_stream rng(1, rng_purpose::user);
    std::vector<double> centres(10 * 32);
    for (double& c : centres) c = rng.normal();
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t y = i % 10;
        p.labels.push_back(y);
        for (std::int64_t j = 0; j < 32; ++j)
            p.x.data()[i * 32 + j] =
                static_cast<float>(centres[static_cast<std::size_t>(y * 32 + j)] + 1.5 * rng.normal());
    }
    return p;
}

problem mnist_pixels(const std::filesystem::path& dir, std::int64_t n) {
    const data::image_dataset train = data::load_mnist(dir, data::split::train);
    problem p{"MNIST pixels, N=" + std::to_string(n) + ", D=784", tensor<float>(shape{n, 784}), {}, 10};
    std::copy_n(train.images.data(), n * 784, p.x.data());
    for (std::int64_t i = 0; i < n; ++i) p.labels.push_back(train.labels.data()[i]);
    return p;
}

template <class Solve>
void report(const char* solver, const probe::softmax_objective<float>& f, Solve&& solve) {
    double best_ms = 1e300;
    std::vector<double> x;
    long iterations = 0, evaluations = 0;
    for (int rep = 0; rep < 3; ++rep) {
        x.assign(static_cast<std::size_t>(f.num_parameters()), 0.0);
        const auto t0 = std::chrono::steady_clock::now();
        solve(x, iterations, evaluations);
        best_ms =
            std::min(best_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::vector<double> g(x.size());
    const double loss = f(x, g);
    double gn = 0;
    for (double v : g) gn += v * v;
    std::printf("  %-28s objective %.10f  ||g|| %.2e  iterations %4ld  evaluations %4ld  %8.1f ms\n", solver, loss,
                std::sqrt(gn), iterations, evaluations, best_ms);
}

#ifdef OURO_HAVE_LBFGSPP
template <template <class> class LineSearch>
void run_lbfgspp(const char* name, const probe::softmax_objective<float>& f) {
    report(name, f, [&](std::vector<double>& x, long& iterations, long& evaluations) {
        LBFGSpp::LBFGSParam<double> param;
        param.m = 10;
        param.epsilon = 1e-6;
        param.epsilon_rel = 0;  // absolute ||g|| test, as ours
        param.max_iterations = 500;
        if constexpr (std::is_same_v<LineSearch<double>, LBFGSpp::LineSearchNocedalWright<double>>)
            param.linesearch = LBFGSpp::LBFGS_LINESEARCH_BACKTRACKING_STRONG_WOLFE;  // the condition it implements
        long count = 0;
        auto fun = [&](const Eigen::VectorXd& v, Eigen::VectorXd& grad) {
            ++count;
            return f(std::span<const double>(v.data(), static_cast<std::size_t>(v.size())),
                     std::span<double>(grad.data(), static_cast<std::size_t>(grad.size())));
        };
        LBFGSpp::LBFGSSolver<double, LineSearch> solver(param);
        Eigen::VectorXd v = Eigen::Map<Eigen::VectorXd>(x.data(), static_cast<Eigen::Index>(x.size()));
        double fx = 0;
        try {
            iterations = solver.minimize(fun, v, fx);
        } catch (const std::exception& e) {
            std::printf("  %-28s stopped: %s\n", name, e.what());
            iterations = -1;
        }
        evaluations = count;
        std::copy(v.data(), v.data() + v.size(), x.begin());
    });
}
#endif

void compare(const problem& p) {
    std::printf("%s, %lld classes, lambda = 1e-4\n", p.name.c_str(), static_cast<long long>(p.classes));
    const probe::softmax_objective<float> f(p.x.view(), p.labels, p.classes, 1e-4, standardize(p));
    report("ouro (strong Wolfe)", f, [&](std::vector<double>& x, long& iterations, long& evaluations) {
        const probe::lbfgs_result r = probe::lbfgs_minimize(f, std::span<double>(x), probe::lbfgs_options{});
        iterations = static_cast<long>(r.iterations);
        evaluations = static_cast<long>(r.evaluations);
    });
#ifdef OURO_HAVE_LBFGSPP
    run_lbfgspp<LBFGSpp::LineSearchNocedalWright>("LBFGSpp, Nocedal-Wright", f);
    run_lbfgspp<LBFGSpp::LineSearchBacktracking>("LBFGSpp, backtracking", f);
#endif
}

}  // namespace

int main(int argc, char** argv) {
    std::filesystem::path dir = "data/mnist";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--data" && i + 1 < argc) {
            dir = argv[++i];
        } else {
            std::fprintf(stderr, "bench_lbfgs: unknown argument '%s' (expected --data DIR)\n", a.c_str());
            return 2;
        }
    }
#ifndef OURO_HAVE_LBFGSPP
    std::printf("LBFGSpp is not installed (apt-get install liblbfgspp-dev): only ouro's L-BFGS runs\n");
#endif
    try {
        compare(gaussian_mixture(1000));
        compare(gaussian_mixture(5000));
        if (std::filesystem::exists(dir)) {
            compare(mnist_pixels(dir, 1000));
        } else {
            std::printf("(no MNIST at %s: scripts/fetch-data mnist)\n", dir.string().c_str());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_lbfgs: %s\n", e.what());
        return 1;
    }
    return 0;
}
