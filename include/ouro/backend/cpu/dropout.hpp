// CPU kernels: inverted dropout (Srivastava et al., JMLR 2014; scaled at training time as
// torch.nn.Dropout) with its mask drawn from Philox, so a step's mask is a pure function of
// (seed, step, salt, element index): the same at any thread count, and on any backend.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct dropout_ops {
    // Element i is kept with probability 1 − p: mask[i] = 1/(1 − p) if u_i >= p, else 0, and
    // y = x·mask. u_i is the (i mod 2^14)-th uniform() of
    //   philox_stream(seed, rng_purpose::dropout, index = step·2^32 + salt·2^18 + i / 2^14),
    // one stream per chunk of 2^14 elements (backend/op_params.hpp, dropout_streams: every backend's
    // layout). `salt` tells dropout layers of one model apart, `step` the training steps. With p = 1
    // every mask entry is 0 (as torch). Requires 0 <= p <= 1, y and mask of x's shape,
    // numel <= 2^32, step < 2^32, salt < 2^14. Overwrites y and mask (the backward reads the mask).
    template <real_scalar T>
    static void dropout_forward(tensor_view<const T> x, tensor_view<T> y, tensor_view<T> mask, double p,
                                std::uint64_t seed, std::uint64_t step, std::uint64_t salt) {
        require_shape(y.dims(), x.dims(), "dropout_forward y");
        require_shape(mask.dims(), x.dims(), "dropout_forward mask");
        dropout_streams::check("dropout_forward", x.dims(), p, step, salt);
        apply_mask_(x.data(), y.data(), mask.data(), x.numel(), p, seed, step, salt);
    }

    // The same without writing the mask: the backward can draw it again (dropout_backward below
    // with the same p, seed, step and salt), so training keeps no mask tensor.
    template <real_scalar T>
    static void dropout_forward(tensor_view<const T> x, tensor_view<T> y, double p, std::uint64_t seed,
                                std::uint64_t step, std::uint64_t salt) {
        require_shape(y.dims(), x.dims(), "dropout_forward y");
        dropout_streams::check("dropout_forward", x.dims(), p, step, salt);
        apply_mask_(x.data(), y.data(), static_cast<T*>(nullptr), x.numel(), p, seed, step, salt);
    }

    // dx = dy·mask with the mask of dropout_forward(p, seed, step, salt) drawn again: the same bits
    // as the stored mask gives. Requires dx of dy's shape and the forward's limits; overwrites dx.
    template <real_scalar T>
    static void dropout_backward(tensor_view<const T> dy, tensor_view<T> dx, double p, std::uint64_t seed,
                                 std::uint64_t step, std::uint64_t salt) {
        require_shape(dx.dims(), dy.dims(), "dropout_backward dx");
        dropout_streams::check("dropout_backward", dy.dims(), p, step, salt);
        apply_mask_(dy.data(), dx.data(), static_cast<T*>(nullptr), dy.numel(), p, seed, step, salt);
    }

    // dx = dy·mask, with the mask of the forward (which already holds the 1/(1 − p) scale).
    // Requires dy, mask and dx of one shape; overwrites dx.
    template <real_scalar T>
    static void dropout_backward(tensor_view<const T> dy, tensor_view<const T> mask, tensor_view<T> dx) {
        require_shape(mask.dims(), dy.dims(), "dropout_backward mask");
        require_shape(dx.dims(), dy.dims(), "dropout_backward dx");
        const std::int64_t n = dy.numel();
        const T* d = dy.data();
        const T* m = mask.data();
        T* out = dx.data();
        // Each element on its own: any split gives the same bits.
        parallel_for((n + 4095) / 4096,
                     [&](std::int64_t c) {
                         const std::int64_t end = std::min(n, (c + 1) * 4096);
                         for (std::int64_t i = c * 4096; i < end; ++i) out[i] = d[i] * m[i];
                     },
                     4096);
    }

private:
    // out = in·mask over n elements, the mask of (p, seed, step, salt) (see dropout_forward), also
    // written to `mask` when not null.
    template <class T>
    static void apply_mask_(const T* in, T* out, T* mask, std::int64_t n, double p, std::uint64_t seed,
                            std::uint64_t step, std::uint64_t salt) {
        const std::less<const T*> before;
        require(!before(in, out + n) || !before(out, in + n), "dropout: the output must not overlap the input");
        require(!mask || !before(mask, out + n) || !before(out, mask + n),
                "dropout: the mask must not overlap the output");
        const T keep_scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
        const std::int64_t chunk = std::int64_t{1} << dropout_streams::chunk_bits;
        const std::uint32_t threshold = dropout_streams::keep_threshold(p);
        parallel_for((n + chunk - 1) / chunk,
                     [&](std::int64_t c) {
                         // The draws of philox_stream(seed, dropout, index), computed block by block
                         // (dropout_streams::block): stateless blocks vectorise; the stream's
                         // one-at-a-time next_u32 does not (4x slower). tests/test_dropout_loss.cpp
                         // checks that the two agree.
                         const std::int64_t begin = c * chunk, end = std::min(n, begin + chunk);
                         constexpr std::int64_t batch_elements = 1024;
                         alignas(64) std::uint32_t bits[batch_elements];
                         for (std::int64_t b0 = begin; b0 < end; b0 += batch_elements) {
                             const std::int64_t count = std::min(batch_elements, end - b0);
                             const std::int64_t first_block = b0 / 4;  // chunks and batches start at multiples of 4
                             for (std::int64_t k = 0; k < (count + 3) / 4; ++k) {
                                 const philox_counter r = dropout_streams::block(seed, step, salt, first_block + k);
                                 for (int j = 0; j < 4; ++j) bits[4 * k + j] = r[j];
                             }
                             // Restrict-qualified pointers and local copies of the captured scalars:
                             // otherwise g++ must assume a store may change them, reloads them per
                             // element and keeps this loop scalar (it was most of dropout's time).
                             const T* __restrict src = in + b0;
                             T* __restrict dst = out + b0;
                             const std::uint32_t keep_from = threshold;
                             const T scale = keep_scale;
                             if (mask) {
                                 T* __restrict m = mask + b0;
                                 for (std::int64_t k = 0; k < count; ++k) {
                                     m[k] = (bits[k] >> 8) >= keep_from ? scale : T(0);
                                     dst[k] = src[k] * m[k];
                                 }
                             } else {
                                 for (std::int64_t k = 0; k < count; ++k)
                                     dst[k] = src[k] * ((bits[k] >> 8) >= keep_from ? scale : T(0));
                             }
                         }
                     },
                     chunk * 8);
    }
};

}  // namespace ouro::cpu_kernels
