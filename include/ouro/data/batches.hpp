// Seeded shuffling and batch gathering for in-memory datasets. The order of epoch e is a pure
// function of (seed, e), so a run resumed at any step sees the same batches as an uninterrupted one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::data {

// A permutation of 0..n-1 by Fisher-Yates (Durstenfeld 1964) with Philox keyed by (seed, shuffle, epoch).
inline std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::uint64_t epoch) {
    require(n >= 0 && n < (std::int64_t{1} << 32), "epoch_order: expected 0 <= n < 2^32 items, found ", n);
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    philox_stream rng(seed, rng_purpose::shuffle, epoch);
    for (std::int64_t i = n - 1; i > 0; --i) {
        const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(i + 1)));
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    return order;
}

// Copies items `indices` of `source` (N, ...) into `batch` (resized to (indices.size(), ...)).
template <class T>
void gather(tensor_view<const T> source, const std::int64_t* indices, std::int64_t count, tensor<T>& batch) {
    require(source.rank() >= 1, "gather: expected a source of shape (N, ...), found ", source.dims());
    shape s = source.dims();
    const std::int64_t n = s[0], item = n == 0 ? 0 : source.numel() / n;
    for (std::int64_t i = 0; i < count; ++i)  // checked before the parallel loop: no throwing inside it
        require(indices[i] >= 0 && indices[i] < n, "gather: index ", indices[i], " out of range for ", n, " items");
    s[0] = count;
    batch.resize(s);
    parallel_for(
        count,
        [&](std::int64_t i) {
            const std::int64_t k = indices[i];
            std::copy(source.data() + k * item, source.data() + (k + 1) * item, batch.data() + i * item);
        },
        item);
}

}  // namespace ouro::data
