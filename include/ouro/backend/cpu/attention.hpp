// CPU kernels: scaled dot-product self-attention over the L = H·W positions of a feature map, one
// or several heads (Vaswani et al. 2017, eq. (1); the AttentionBlock of DDPM / guided-diffusion),
// and the elementwise steps of the attention and residual blocks (residual sum, per-channel shift).
//
// Channel layout of qkv, (B, 3C, L) as made by a 1×1 conv: that of guided-diffusion's
// QKVAttentionLegacy (openai/guided-diffusion, unet.py), so its qkv weights keep their row order here.
// Channels are grouped by head first, then by q, k, v:
//   head h, d = C / heads:  q = channels [3dh, 3dh + d),  k = [3dh + d, 3dh + 2d),  v = [3dh + 2d, 3dh + 3d)
// and head h writes channels [dh, dh + d) of out (B, C, L). With one head this is the plain
// q, k, v = qkv.chunk(3, dim=1) of ddpm-torch and of DDPM's original AttentionBlock.
// (diffusers and guided-diffusion's QKVAttention, the "new order", split q, k, v first and heads
// second; their checkpoints need their qkv rows permuted to load here.)
#pragma once

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstdint>

#include "ouro/backend/cpu/eigen_maps.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct attention_ops {
    // Self-attention forward. Per (batch b, head h), with Q, K, V the (d, L) slices of qkv above:
    //   probs = softmax_rows(Q^T K / sqrt(d))   // (L, L), row t = query position, column s = key
    //   out_h = V probs^T                        // (d, L)
    // Requires qkv (B, 3C, L) with B, L >= 1, heads >= 1 dividing C, out (B, C, L),
    // probs (B, heads, L, L). Overwrites out and probs (backward needs probs).
    template <real_scalar T>
    static void attention_forward(tensor_view<const T> qkv,  // (B, 3C, L)
                                  tensor_view<T> out,        // (B, C, L)
                                  tensor_view<T> probs,      // (B, heads, L, L)
                                  std::int64_t heads) {
        const dims_ dm = check_qkv_("attention_forward", qkv, heads);
        require_shape(out.dims(), shape{dm.b, dm.c, dm.l}, "attention_forward out (B, C, L)");
        require_shape(probs.dims(), shape{dm.b, heads, dm.l, dm.l}, "attention_forward probs (B, heads, L, L)");
        const std::int64_t b_count = dm.b, c = dm.c, d = dm.d, l = dm.l;
        const T scale = T(1) / std::sqrt(static_cast<T>(d));

        // Every (batch, head) pair reads and writes its own slices, so the pairs run in parallel
        // and each one's GEMMs have the same sizes at any thread count.
        parallel_for(
            b_count * heads,
            [&](std::int64_t item) {
                const std::int64_t b = item / heads, h = item % heads;
                const T* q_ptr = qkv.data() + (b * 3 * c + h * 3 * d) * l;
                const const_row_major_map<T> q(q_ptr, d, l), k(q_ptr + d * l, d, l), v(q_ptr + 2 * d * l, d, l);
                row_major_map<T> p(probs.data() + item * l * l, l, l);
                row_major_map<T> o(out.data() + (b * c + h * d) * l, d, l);
                p.noalias() = scale * (q.transpose() * k);
                for (std::int64_t t = 0; t < l; ++t) softmax_row_(p.data() + t * l, l);
                o.noalias() = v * p.transpose();
            },
            4 * d * l * l + 16 * l * l);
    }

    // Gradient of attention_forward. With dO the (d, L) slice of dout and P = probs:
    //   dV = dO P,   dP = dO^T V,   dS = P ∘ (dP − rowsum(P ∘ dP))   (softmax Jacobian)
    //   dQ = K dS^T / sqrt(d),   dK = Q dS / sqrt(d)
    // Requires the qkv and probs of the matching forward, dout (B, C, L), dqkv (B, 3C, L); heads is
    // read from probs. Overwrites dqkv.
    template <real_scalar T>
    static void attention_backward(tensor_view<const T> qkv,    // (B, 3C, L)
                                   tensor_view<const T> probs,  // (B, heads, L, L)
                                   tensor_view<const T> dout,   // (B, C, L)
                                   tensor_view<T> dqkv) {       // (B, 3C, L)
        require_rank(probs.dims(), 4, "attention_backward probs", "(B, heads, L, L)");
        const std::int64_t heads = probs.dim(1);
        const dims_ dm = check_qkv_("attention_backward", qkv, heads);
        require_shape(probs.dims(), shape{dm.b, heads, dm.l, dm.l}, "attention_backward probs (B, heads, L, L)");
        require_shape(dout.dims(), shape{dm.b, dm.c, dm.l}, "attention_backward dout (B, C, L)");
        require_shape(dqkv.dims(), qkv.dims(), "attention_backward dqkv (B, 3C, L)");
        const std::int64_t b_count = dm.b, c = dm.c, d = dm.d, l = dm.l;
        const T scale = T(1) / std::sqrt(static_cast<T>(d));

        parallel_for(
            b_count * heads,
            [&](std::int64_t item) {
                const std::int64_t b = item / heads, h = item % heads;
                const std::int64_t qkv_offset = (b * 3 * c + h * 3 * d) * l;
                const T* q_ptr = qkv.data() + qkv_offset;
                const const_row_major_map<T> q(q_ptr, d, l), k(q_ptr + d * l, d, l), v(q_ptr + 2 * d * l, d, l);
                const const_row_major_map<T> p(probs.data() + item * l * l, l, l);
                const const_row_major_map<T> dout_h(dout.data() + (b * c + h * d) * l, d, l);
                T* dq_ptr = dqkv.data() + qkv_offset;
                row_major_map<T> dq(dq_ptr, d, l), dk(dq_ptr + d * l, d, l), dv(dq_ptr + 2 * d * l, d, l);

                // (L, L) scratch per thread: the same values whichever thread runs the pair, and no
                // allocation per pair once a thread's buffer has grown.
                thread_local aligned_vector<T> scratch;
                if (scratch.size() < static_cast<std::size_t>(l * l)) scratch.resize(static_cast<std::size_t>(l * l));
                row_major_map<T> ds(scratch.data(), l, l);

                dv.noalias() = dout_h * p;
                ds.noalias() = dout_h.transpose() * v;  // dP
                for (std::int64_t t = 0; t < l; ++t) softmax_row_backward_(p.data() + t * l, ds.data() + t * l, l);
                dq.noalias() = scale * (k * ds.transpose());
                dk.noalias() = scale * (q * ds);
            },
            6 * d * l * l + 8 * l * l);
    }

private:
    struct dims_ {
        std::int64_t b, c, d, l;
    };

    // Checks what both directions need of qkv and heads; returns B, C, d = C / heads and L.
    template <class T>
    static dims_ check_qkv_(const char* what, tensor_view<const T> qkv, std::int64_t heads) {
        require_rank(qkv.dims(), 3, what, "qkv (B, 3C, L)");
        const std::int64_t b = qkv.dim(0), c3 = qkv.dim(1), l = qkv.dim(2);
        require(b > 0 && c3 > 0 && l > 0, what, ": expected a non-empty qkv (B, 3C, L), found shape ", qkv.dims());
        require(c3 % 3 == 0, what, ": expected qkv (B, 3C, L) with a channel count divisible by 3, found shape ",
                qkv.dims());
        const std::int64_t c = c3 / 3;
        require(heads > 0, what, ": expected heads >= 1, found heads = ", heads);
        require(c % heads == 0, what, ": expected channels C divisible by heads, found C = ", c, " (qkv shape ",
                qkv.dims(), ") and heads = ", heads);
        return {b, c, c / heads, l};
    }

    // In-place softmax of one row, max-subtracted for range (as torch.softmax).
    template <class T>
    static void softmax_row_(T* row, std::int64_t n) {
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        const std::int64_t vec_end = n - n % w;

        T m = row[0];
        if (vec_end > 0) {
            batch mv = xsimd::load_unaligned(row);
            for (std::int64_t i = w; i < vec_end; i += w) mv = xsimd::max(mv, xsimd::load_unaligned(row + i));
            alignas(64) T lanes[batch::size];
            mv.store_aligned(lanes);
            for (T x : lanes) m = x > m ? x : m;
        }
        for (std::int64_t i = vec_end; i < n; ++i) m = row[i] > m ? row[i] : m;

        // Exponentials and their sum: lanes in a fixed order, so the sum depends on n only.
        batch sum_v(T(0));
        const batch mb(m);
        for (std::int64_t i = 0; i < vec_end; i += w) {
            const batch e = xsimd::exp(xsimd::load_unaligned(row + i) - mb);
            e.store_unaligned(row + i);
            sum_v += e;
        }
        T sum = xsimd::hadd(sum_v);
        for (std::int64_t i = vec_end; i < n; ++i) {
            row[i] = std::exp(row[i] - m);
            sum += row[i];
        }

        const batch sb(sum);
        for (std::int64_t i = 0; i < vec_end; i += w) (xsimd::load_unaligned(row + i) / sb).store_unaligned(row + i);
        for (std::int64_t i = vec_end; i < n; ++i) row[i] /= sum;
    }

    // d_row <- p ∘ (d_row − <p, d_row>): the softmax Jacobian applied to the gradient of one row.
    template <class T>
    static void softmax_row_backward_(const T* p, T* d_row, std::int64_t n) {
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        const std::int64_t vec_end = n - n % w;

        batch dot_v(T(0));
        for (std::int64_t i = 0; i < vec_end; i += w)
            dot_v += xsimd::load_unaligned(p + i) * xsimd::load_unaligned(d_row + i);
        T dot = xsimd::hadd(dot_v);
        for (std::int64_t i = vec_end; i < n; ++i) dot += p[i] * d_row[i];

        const batch db(dot);
        for (std::int64_t i = 0; i < vec_end; i += w)
            (xsimd::load_unaligned(p + i) * (xsimd::load_unaligned(d_row + i) - db)).store_unaligned(d_row + i);
        for (std::int64_t i = vec_end; i < n; ++i) d_row[i] = p[i] * (d_row[i] - dot);
    }
};

}  // namespace ouro::cpu_kernels
