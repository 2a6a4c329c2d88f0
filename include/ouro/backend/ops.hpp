// The op facade: every tensor op a layer uses is a static member of ops<B>, so a layer is written
// once and never contains backend code. Each backend specialises ops<B> (ouro::cpu in
// backend/cpu/ops.hpp, composed from one struct per op family).
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

template <backend B>
struct ops;

}  // namespace ouro
