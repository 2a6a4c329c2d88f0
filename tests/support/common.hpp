// Small helpers several test files share (one copy, so the grouped test programs, which compile a
// group's files as one translation unit, see each name once).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::testing {

// Restores the thread count a test found when it ends, whatever the test set it to.
struct thread_guard {
    int saved = max_threads();
    ~thread_guard() { set_threads(saved); }
};

// run() at one thread, then at two (the thread count restored after), for the tests that a result
// does not depend on the thread count: `const auto [one, two] = at_one_and_two_threads([&] { ... });`
template <class Run>
auto at_one_and_two_threads(Run&& run) {
    const thread_guard guard;
    set_threads(1);
    auto one = run();
    set_threads(2);
    auto two = run();
    return std::pair{std::move(one), std::move(two)};
}

// Each value rounded to float, same shape.
inline tensor<float> to_float(const tensor<double>& x) {
    tensor<float> out(x.dims());
    for (std::int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<float>(x[i]);
    return out;
}

// The labels of a tensor as a vector, in order.
inline std::vector<std::int64_t> labels_of(const tensor<std::int64_t>& t) { return {t.begin(), t.end()}; }

}  // namespace ouro::testing
