// Small helpers several test files share (one copy, so the grouped test programs, which compile a
// group's files as one translation unit, see each name once).
#pragma once

#include <cstdint>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::testing {

// Restores the thread count a test found when it ends, whatever the test set it to.
struct thread_guard {
    int saved = max_threads();
    ~thread_guard() { set_threads(saved); }
};

// Each value rounded to float, same shape.
inline tensor<float> to_float(const tensor<double>& x) {
    tensor<float> out(x.dims());
    for (std::int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<float>(x[i]);
    return out;
}

// The labels of a tensor as a vector, in order.
inline std::vector<std::int64_t> labels_of(const tensor<std::int64_t>& t) { return {t.begin(), t.end()}; }

}  // namespace ouro::testing
