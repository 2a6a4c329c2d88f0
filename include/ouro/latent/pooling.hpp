// Pooling policies of the latent extractor (latents.hpp): one item's bottleneck, e.g. (C, h, w),
// to a feature vector (D). flatten keeps every element (the paper's probe reads the flattened
// bottleneck), spatial_mean and spatial_max one value per channel.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::latent {

// ---- Pooling ------------------------------------------------------------------------------------

// A pooling policy maps one item's bottleneck (e.g. (C, h, w)) to D features: dim(item_shape) says D
// (and refuses shapes it cannot pool, with an ouro::error), pool(h, out) writes them to out (D).
template <class P>
concept pooling = requires(const P& p, const shape& item, tensor_view<const float> h, tensor_view<float> out) {
    { P::name } -> std::convertible_to<const char*>;
    { p.dim(item) } -> std::convertible_to<std::int64_t>;
    p.pool(h, out);
};

// static_assert(check_pooling<P>()) explains in words what P lacks.
template <class P>
constexpr bool check_pooling() {
    static_assert(
        requires {
            { P::name } -> std::convertible_to<const char*>;
        },
        "a pooling policy needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(
        requires(const P& p, const shape& item) {
            { p.dim(item) } -> std::convertible_to<std::int64_t>;
        },
        "a pooling policy needs `std::int64_t dim(const shape& item) const`: the number of features of an "
        "item's bottleneck of shape `item`, e.g. (C, h, w)");
    static_assert(
        requires(const P& p, tensor_view<const float> h, tensor_view<float> out) { p.pool(h, out); },
        "a pooling policy needs `void pool(tensor_view<const float> h /*one item, e.g. (C, h, w)*/, "
        "tensor_view<float> out /*(D)*/) const`");
    return pooling<P>;
}

namespace detail {
// C of an item bottleneck (C, ...) with C >= 1 and at least one position: the D of the per-channel
// poolings, which refuse any other shape.
inline std::int64_t channel_count(const shape& item, const char* who) {
    require(item.rank() >= 2 && item[0] >= 1 && item.numel() >= 1, who,
            ": expected an item bottleneck (C, h, w) with C >= 1 and h·w >= 1, found shape ", item);
    return item[0];
}
}  // namespace detail

// Every element, in the bottleneck's row-major order: D = C·h·w.
struct flatten {
    static constexpr const char* name = "flatten";
    std::int64_t dim(const shape& item) const {
        require(item.rank() >= 1 && item.numel() >= 1, "flatten: expected a non-empty item bottleneck, found shape ",
                item);
        return item.numel();
    }
    void pool(tensor_view<const float> h, tensor_view<float> out) const { std::copy(h.begin(), h.end(), out.begin()); }
};

// The mean of each channel over its h·w positions, summed in order in double and rounded once: D = C.
struct spatial_mean {
    static constexpr const char* name = "spatial_mean";
    std::int64_t dim(const shape& item) const { return detail::channel_count(item, name); }
    void pool(tensor_view<const float> h, tensor_view<float> out) const {
        const std::int64_t c = h.dim(0), hw = h.numel() / c;
        for (std::int64_t k = 0; k < c; ++k) {
            double s = 0;
            for (std::int64_t i = k * hw; i < (k + 1) * hw; ++i) s += static_cast<double>(h[i]);
            out[k] = static_cast<float>(s / static_cast<double>(hw));
        }
    }
};

// The largest value of each channel over its h·w positions: D = C.
struct spatial_max {
    static constexpr const char* name = "spatial_max";
    std::int64_t dim(const shape& item) const { return detail::channel_count(item, name); }
    void pool(tensor_view<const float> h, tensor_view<float> out) const {
        const std::int64_t c = h.dim(0), hw = h.numel() / c;
        for (std::int64_t k = 0; k < c; ++k) out[k] = *std::max_element(h.data() + k * hw, h.data() + (k + 1) * hw);
    }
};

static_assert(check_pooling<flatten>());
static_assert(check_pooling<spatial_mean>());
static_assert(check_pooling<spatial_max>());

}  // namespace ouro::latent
