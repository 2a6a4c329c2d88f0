// The parameter-update kernels of the CPU backend: AdamW, SGD with momentum, the weight EMA's
// blend and swap, gradient clipping's sum of squares and scaling, and the finite check, each one
// pass over flat buffers in the parameter store's layout. The optimisers (optim/) compute their
// scalars on the host and call these through ops<B>, so the same optimiser runs on any backend.
// Every loop works in fixed chunks whose results are combined in chunk order: bitwise the same at
// any thread count.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <utility>
#include <vector>

#include "ouro/backend/adamw_update.hpp"
#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/finite.hpp"
#include "ouro/core/host_device.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct update_ops {
    // Elements per parallel work item: a multiple of every SIMD width, so only the last item has a tail.
    static constexpr std::int64_t chunk_elements = 4096;
    // Independent partial sums within a chunk of sum_of_squares: a fixed count, not the SIMD width,
    // so the order of the sum (and its last bits) is the same on every instruction set.
    static constexpr int sum_lanes = 8;

    // Index of the first NaN or ±Inf of x, or -1.
    template <real_scalar T>
    static std::int64_t first_non_finite(tensor_view<const T> x) {
        return ouro::first_non_finite(x.data(), x.numel());
    }

    // One AdamW step over p, m, v from g (backend/adamw_update.hpp's formula, torch's order).
    template <real_scalar T>
    static void adamw_step(tensor_view<T> p, tensor_view<T> m, tensor_view<T> v, tensor_view<const T> g,
                           const optim::adamw_step_scalars<T>& scalars) {
        same_size_("adamw_step", p.numel(), {m.numel(), v.numel(), g.numel()});
#if !OURO_DEVICE_PASS  // (core/host_device.hpp: a host kernel that nvcc's device pass must not instantiate)
        const auto sqrt = [](const auto& x) { return xsimd::sqrt(x); };
        auto update = [&](auto& pe, auto& me, auto& ve, const auto& ge) {
            optim::adamw_update(pe, me, ve, ge, scalars, sqrt);
        };
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        static_assert(chunk_elements % w == 0, "adamw_step: chunk size must be a multiple of the SIMD width");
        T *pp = p.data(), *mp = m.data(), *vp = v.data();
        const T* gp = g.data();
        for_each_chunk_(p.numel(), 12, [&](std::int64_t begin, std::int64_t end) {
            std::int64_t i = begin;
            for (; i + w <= end; i += w) {
                batch pb = xsimd::load_unaligned(pp + i), mb = xsimd::load_unaligned(mp + i);
                batch vb = xsimd::load_unaligned(vp + i);
                const batch gb = xsimd::load_unaligned(gp + i);
                update(pb, mb, vb, gb);
                pb.store_unaligned(pp + i);
                mb.store_unaligned(mp + i);
                vb.store_unaligned(vp + i);
            }
            for (; i < end; ++i) update(pp[i], mp[i], vp[i], gp[i]);
        });
#endif
    }

    // SGD with momentum and L2 weight decay, torch.optim.SGD (dampening 0, no Nesterov):
    //   d = g + wd·p;  b = μ·b + d;  p −= lr·b
    template <real_scalar T>
    static void sgd_step(tensor_view<T> p, tensor_view<T> momentum, tensor_view<const T> g, T lr, T mu, T wd) {
        same_size_("sgd_step", p.numel(), {momentum.numel(), g.numel()});
        T *pp = p.data(), *bp = momentum.data();
        const T* gp = g.data();
        for_each_chunk_(p.numel(), 4, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) {
                const T d = gp[i] + wd * pp[i];
                bp[i] = mu * bp[i] + d;
                pp[i] -= lr * bp[i];
            }
        });
    }

    // The EMA's update, diffusers' EMAModel.step form: avg −= (1 − decay)·(avg − p).
    template <real_scalar T>
    static void ema_blend(tensor_view<T> avg, tensor_view<const T> p, T one_minus_decay) {
        same_size_("ema_blend", avg.numel(), {p.numel()});
        auto blend = [&](auto& e, const auto& q) {
            using V = std::remove_cvref_t<decltype(q)>;
            e = e - V(one_minus_decay) * (e - q);
        };
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        T* e = avg.data();
        const T* q = p.data();
        for_each_chunk_(avg.numel(), 3, [&](std::int64_t begin, std::int64_t end) {
            std::int64_t i = begin;
            for (; i + w <= end; i += w) {
                batch eb = xsimd::load_unaligned(e + i);
                blend(eb, xsimd::load_unaligned(q + i));
                eb.store_unaligned(e + i);
            }
            for (; i < end; ++i) blend(e[i], q[i]);
        });
    }

    // Exchanges the contents of a and b (the EMA's weights and the model's).
    template <real_scalar T>
    static void swap_contents(tensor_view<T> a, tensor_view<T> b) {
        same_size_("swap_contents", a.numel(), {b.numel()});
        T *ap = a.data(), *bp = b.data();
        for_each_chunk_(a.numel(), 3, [&](std::int64_t begin, std::int64_t end) {
            std::swap_ranges(ap + begin, ap + end, bp + begin);
        });
    }

    // Σ x², each square formed and summed in double, in a fixed order (chunks in order, sum_lanes
    // partial sums within one): the same at any thread count and on any instruction set.
    template <real_scalar T>
    static double sum_of_squares(tensor_view<const T> x) {
        const std::int64_t n = x.numel();
        std::vector<double> partial(static_cast<std::size_t>((n + chunk_elements - 1) / chunk_elements));
        const T* xp = x.data();
        for_each_chunk_(n, 2, [&](std::int64_t begin, std::int64_t end) {
            double acc[sum_lanes] = {};
            std::int64_t i = begin;
            for (; i + sum_lanes <= end; i += sum_lanes)
                for (int k = 0; k < sum_lanes; ++k) {
                    const double v = static_cast<double>(xp[i + k]);
                    acc[k] += v * v;
                }
            for (; i < end; ++i) {
                const double v = static_cast<double>(xp[i]);
                acc[0] += v * v;
            }
            double sum = 0;
            for (int k = 0; k < sum_lanes; ++k) sum += acc[k];
            partial[static_cast<std::size_t>(begin / chunk_elements)] = sum;
        });
        double total = 0;
        for (double s : partial) total += s;
        return total;
    }

    // x *= s.
    template <real_scalar T>
    static void scale(tensor_view<T> x, T s) {
        T* xp = x.data();
        for_each_chunk_(x.numel(), 1, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) xp[i] *= s;
        });
    }

private:
    static void same_size_(const char* what, std::int64_t n, std::initializer_list<std::int64_t> others) {
        for (std::int64_t m : others)
            require(m == n, what, ": expected buffers of ", n, " elements each, found one of ", m);
    }

    // body(begin, end) over chunks of chunk_elements in parallel; `cost` is the work per element
    // in parallel_for's units (a few flops per element: worth threads only for large buffers).
    template <class Body>
    static void for_each_chunk_(std::int64_t n, std::int64_t cost, Body&& body) {
        const std::int64_t chunks = (n + chunk_elements - 1) / chunk_elements;
        parallel_for(
            chunks, [&](std::int64_t c) { body(c * chunk_elements, std::min(n, (c + 1) * chunk_elements)); },
            chunk_elements * cost);
    }
};

}  // namespace ouro::cpu_kernels
