// Test support: golden tensors written by the PyTorch/NumPy scripts in tests/golden/ (run with
// Debian's python3), read here as .npy files so the C++ tests never need Python.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "ouro/io/npy.hpp"

namespace ouro::testing {

inline std::filesystem::path golden_path(const std::string& relative) {
    return std::filesystem::path(OURO_GOLDEN_DIR) / relative;
}

// The golden file of tensor `name` in case `c` of tests/golden/pointwise.py.
inline std::string pointwise_golden(const std::string& c, const std::string& name) {
    return "pointwise/" + c + "/" + name + ".npy";
}

template <class T = double>
tensor<T> load_golden(const std::string& relative) {
    return io::read_npy<T>(golden_path(relative));
}

// Requires equal shapes and |actual - expected| <= atol + rtol * |expected| everywhere.
template <class A, class E>
void require_close(const std::string& what, const A& actual, const E& expected, double rtol, double atol) {
    INFO(what << ": shapes " << actual.dims() << " vs " << expected.dims());
    REQUIRE(actual.dims() == expected.dims());
    double worst = 0;
    std::int64_t worst_at = -1;
    for (std::int64_t i = 0; i < actual.numel(); ++i) {
        const double a = static_cast<double>(actual.data()[i]), e = static_cast<double>(expected.data()[i]);
        const double excess = std::abs(a - e) - (atol + rtol * std::abs(e));
        if (!(excess <= worst)) {  // also catches NaN
            worst = std::isnan(excess) ? INFINITY : excess;
            worst_at = i;
        }
    }
    INFO(what << ": worst excess over tolerance " << worst << " at flat index " << worst_at);
    CHECK(worst <= 0);
}

}  // namespace ouro::testing
