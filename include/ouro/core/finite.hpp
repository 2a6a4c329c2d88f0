// The first NaN or ±Inf of a host buffer: what the readers, checkpoints, the trainer and the
// optimisers' gradient checks ask before they trust numbers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ouro/core/backend.hpp"
#include "ouro/core/parallel.hpp"

namespace ouro {

// Index of the first element of x[0, n) that is NaN or ±Inf, or -1. Chunks are scanned in
// parallel and their answers taken in order, so the answer does not depend on the thread count.
template <real_scalar T>
std::int64_t first_non_finite(const T* x, std::int64_t n) {
    constexpr std::int64_t chunk = 4096;
    const std::int64_t chunks = (n + chunk - 1) / chunk;
    std::vector<std::int64_t> first(static_cast<std::size_t>(chunks), -1);
    parallel_for(
        chunks,
        [&](std::int64_t c) {
            const std::int64_t begin = c * chunk, end = std::min(n, begin + chunk);
            // x - x is 0 for finite x and NaN for NaN or ±Inf; this form vectorises, isfinite does not.
            bool finite = true;
            for (std::int64_t i = begin; i < end; ++i) finite &= (x[i] - x[i] == T(0));
            if (finite) return;
            for (std::int64_t i = begin; i < end; ++i)
                if (!std::isfinite(x[i])) {
                    first[static_cast<std::size_t>(c)] = i;
                    return;
                }
        },
        chunk);
    for (std::int64_t f : first)
        if (f >= 0) return f;
    return -1;
}

}  // namespace ouro
