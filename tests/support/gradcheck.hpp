// Test support: random tensors, and a finite-difference gradient checker for any op or module
// (after dlib's test_layer). Use double where the op supports it.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::testing {

// Normal(0, scale) entries from Philox keyed by `seed`.
template <class T>
tensor<T> random_tensor(const shape& s, std::uint64_t seed, double scale = 1.0) {
    tensor<T> t(s);
    philox_stream rng(seed, rng_purpose::user, 0);
    for (auto& x : t) x = static_cast<T>(scale * rng.normal());
    return t;
}

// The entries of a double tensor converted to T (float runs of double goldens).
template <class T>
tensor<T> cast(const tensor<double>& t) {
    tensor<T> out(t.dims());
    for (std::int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<T>(t[i]);
    return out;
}

// Same shape and the same bits (thread-count and batch invariance checks).
template <class T>
bool bitwise_equal(const tensor<T>& a, const tensor<T>& b) {
    return a.dims() == b.dims() &&
           std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0;
}

template <class A, class B>
double dot(const A& a, const B& b) {
    REQUIRE(a.numel() == b.numel());
    double s = 0;
    for (std::int64_t i = 0; i < a.numel(); ++i)
        s += static_cast<double>(a.data()[i]) * static_cast<double>(b.data()[i]);
    return s;
}

// Compares `analytic` (dL/dx from backward) with central differences of `loss()` with respect to
// the entries of `x`, which `loss` must read. Checks every entry when there are at most
// `max_checks`, else an evenly spaced subset that includes the first and last entries.
// Passes when |numeric - analytic| <= tol * max(1, |numeric|).
template <class Loss>
void check_gradient(const std::string& what, tensor_view<double> x, tensor_view<const double> analytic, Loss&& loss,
                    double eps = 1e-6, double tol = 1e-6, std::int64_t max_checks = 400) {
    REQUIRE(x.numel() == analytic.numel());
    const std::int64_t n = x.numel();
    const std::int64_t checks = std::min(n, max_checks);
    double worst = 0;
    std::int64_t worst_at = -1;
    for (std::int64_t c = 0; c < checks; ++c) {
        const std::int64_t i = checks == 1 ? 0 : c * (n - 1) / (checks - 1);
        const double saved = x[i];
        x[i] = saved + eps;
        const double up = loss();
        x[i] = saved - eps;
        const double down = loss();
        x[i] = saved;
        const double numeric = (up - down) / (2 * eps);
        const double err = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
        if (err > worst) {
            worst = err;
            worst_at = i;
        }
    }
    INFO(what << ": worst relative error " << worst << " at flat index " << worst_at << " of " << n);
    CHECK(worst <= tol);
}

}  // namespace ouro::testing
