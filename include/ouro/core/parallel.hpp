// Parallel loops over independent work items. Determinism rule of ouro: work is split into items
// whose results do not depend on how items are assigned to threads, and every reduction runs in a
// fixed order, so results are bitwise identical at any OpenMP thread count.
#pragma once

#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ouro {

// Calls body(i) for i in [0, n), in parallel when OpenMP is on and the work is worth it.
// `cost_per_item` is a rough flop count used to keep tiny loops serial. Items go to whichever
// thread is free (dynamic schedule): work is cut by the layer, never by the thread count, so a
// layer may have few items (15 chunks of a 7 × 7 convolution at batch 256) that a static split
// shares unevenly, and the two threads of this machine's one core run at uneven speeds. Measured
// (Zen 3, S's forward at 2 threads, perf): time in OpenMP's waits 4.3% static, 2.6% dynamic.
// Which thread runs an item never changes its result (the determinism rule above).
template <class Body>
void parallel_for(std::int64_t n, Body&& body, [[maybe_unused]] std::int64_t cost_per_item = 1 << 12) {
#if defined(_OPENMP)
    if (n > 1 && n * cost_per_item >= (1 << 15) && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic)
        for (std::int64_t i = 0; i < n; ++i) body(i);
        return;
    }
#endif
    for (std::int64_t i = 0; i < n; ++i) body(i);
}

inline int max_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline void set_threads(int n) {
#if defined(_OPENMP)
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

}  // namespace ouro
