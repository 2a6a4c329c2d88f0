// Per-column mean and population standard deviation (ddof = 0, as numpy.std) of the rows of a
// matrix x (N, D), in double: the arithmetic that latent::standardizer and the probe's feature
// standardisation share (each then applies its own floor to the deviation).
//
// Each column is summed over the rows in their given order, in two passes (the mean, then the
// squared deviations from it); columns are split into fixed groups of 16 across threads, so the
// numbers are bitwise the same at any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "ouro/core/backend.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro {

struct column_moments {
    std::vector<double> mean;    // (D)
    std::vector<double> stddev;  // (D), population standard deviation, unfloored
};

// The moments of the rows `rows` of x (N, D), in that order (all rows in order when `rows` is
// empty). Requires x of rank 2; the caller checks N, D >= 1 and finiteness with its own message.
template <real_scalar T>
column_moments column_moments_of(tensor_view<const T> x, std::span<const std::int64_t> rows = {}) {
    constexpr std::int64_t columns_per_item = 16;
    const std::int64_t d = x.dim(1);
    const std::int64_t n = rows.empty() ? x.dim(0) : static_cast<std::int64_t>(rows.size());
    const auto row = [&](std::int64_t i) { return rows.empty() ? i : rows[static_cast<std::size_t>(i)]; };
    column_moments m{std::vector<double>(static_cast<std::size_t>(d), 0.0),
                     std::vector<double>(static_cast<std::size_t>(d), 0.0)};
    double* mean = m.mean.data();
    double* dev = m.stddev.data();
    parallel_for((d + columns_per_item - 1) / columns_per_item,
                 [&](std::int64_t item) {
                     const std::int64_t j0 = item * columns_per_item, j1 = std::min(d, j0 + columns_per_item);
                     for (std::int64_t i = 0; i < n; ++i) {
                         const std::int64_t r = row(i);
                         for (std::int64_t j = j0; j < j1; ++j) mean[j] += static_cast<double>(x[r * d + j]);
                     }
                     for (std::int64_t j = j0; j < j1; ++j) mean[j] /= static_cast<double>(n);
                     for (std::int64_t i = 0; i < n; ++i) {
                         const std::int64_t r = row(i);
                         for (std::int64_t j = j0; j < j1; ++j) {
                             const double c = static_cast<double>(x[r * d + j]) - mean[j];
                             dev[j] += c * c;
                         }
                     }
                     for (std::int64_t j = j0; j < j1; ++j) dev[j] = std::sqrt(dev[j] / static_cast<double>(n));
                 },
                 2 * n * columns_per_item);
    return m;
}

}  // namespace ouro
