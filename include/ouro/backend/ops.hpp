// The op facade: every tensor op a layer uses is a static member of ops<B>, so a layer is written
// once and never contains backend code. Each backend specialises ops<B> (ouro::cpu in
// backend/cpu/ops.hpp, composed from one struct per op family). Layers include this header (and
// backend/op_params.hpp), not a backend's: a program includes the backends it instantiates, so a
// translation unit for one backend never parses another's kernels (nvcc need not see AVX-512).
//
// Conventions for every op:
//  - inputs are tensor_view<const T>, outputs tensor_view<T> of the exact shape (checked; a wrong
//    shape raises ouro::error naming the expected and the found shapes);
//  - forward outputs and input gradients (dx) are overwritten;
//  - parameter gradients (dw, db) are accumulated (+=), so gradients of shared weights and of
//    several micro-batches add up; parameter_store::zero_grad() clears them;
//  - results are bitwise identical at any thread count (see core/parallel.hpp).
#pragma once

#include "ouro/core/backend.hpp"

namespace ouro {

namespace detail {
template <class B>
inline constexpr bool backend_header_included = false;
}  // namespace detail

// Only the backends' specialisations are used; this one says what is missing when none is seen.
template <backend B>
struct ops {
    static_assert(detail::backend_header_included<B>,
                  "ops<B> has no specialisation for this backend here: include its header before instantiating a "
                  "layer with it (ouro/backend/cpu/ops.hpp for ouro::cpu)");
};

}  // namespace ouro
