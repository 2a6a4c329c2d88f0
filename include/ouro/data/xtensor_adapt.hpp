// xtensor at the user-facing boundary: ouro tensors seen as xtensor arrays without copying, xtensor
// arrays seen as ouro tensor views, and data set images copied into an xt::xtensor<float, 4>.
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>

#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"

namespace ouro::data {

// A row-major xtensor adaptor over `v`'s data: no copy; writes go through unless T is const.
// Requires: v has rank N. The adaptor must not outlive the tensor that owns the data.
template <std::size_t N, class T>
requires(N >= 1 && N <= static_cast<std::size_t>(shape::max_rank)) auto as_xtensor(tensor_view<T> v) {
    if (v.rank() != static_cast<int>(N)) fail("as_xtensor: expected a rank-", N, " tensor, found shape ", v.dims());
    std::array<std::size_t, N> extents;
    for (std::size_t a = 0; a < N; ++a) extents[a] = static_cast<std::size_t>(v.dim(static_cast<int>(a)));
    return xt::adapt<xt::layout_type::row_major>(v.data(), static_cast<std::size_t>(v.numel()), xt::no_ownership(),
                                                 extents);
}

// An ouro view of a row-major xt::xtensor: no copy. Valid while `a` is alive and not resized.
template <class T, std::size_t N, xt::layout_type L>
requires(N >= 1 &&
         N <= static_cast<std::size_t>(shape::max_rank)) tensor_view<T> as_tensor_view(xt::xtensor<T, N, L>& a) {
    if (a.layout() != xt::layout_type::row_major) fail("as_tensor_view: expected a row-major xtensor");
    shape s;
    switch (N) {
        case 1: s = shape{0}; break;
        case 2: s = shape{0, 0}; break;
        case 3: s = shape{0, 0, 0}; break;
        case 4: s = shape{0, 0, 0, 0}; break;
        case 5: s = shape{0, 0, 0, 0, 0}; break;
        default: s = shape{0, 0, 0, 0, 0, 0}; break;
    }
    for (std::size_t i = 0; i < N; ++i) s[static_cast<int>(i)] = static_cast<std::int64_t>(a.shape()[i]);
    return tensor_view<T>(a.data(), s);
}

// A copy of the data set's images as an owning xtensor.   // (N, C, H, W)
inline xt::xtensor<float, 4> images_as_xtensor(const image_dataset& d) {
    return xt::xtensor<float, 4>(as_xtensor<4>(d.images.view()));
}

}  // namespace ouro::data
