// CPU kernels: the bf16 variant of gemm.hpp's outer-product tile, for the opt-in bf16 forward
// (forward_context::matmul = matmul_precision::bf16, inference only).
//
// Both operands are rounded to bfloat16 (round to nearest even, NaN kept NaN) and their products
// summed in fp32, as PyTorch's CPU autocast and oneDNN do: a bf16 times a bf16 is exact in fp32, so
// the rounding of the operands is the only new error (a relative 2^-9 per operand). On CPUs with
// AVX512-BF16 (Zen 4, Cooper Lake, Sapphire Rapids) one VDPBF16PS adds two products per fp32 lane,
// twice the multiply-adds of an fp32 FMA: measured here 404 against 214 GFLOP/s on one thread.
//
// Layout: two terms of the sum travel as one 32-bit pair of bf16 (VDPBF16PS's unit), A as panels
// of mr rows of pairs (gemm::pack_rows on pairs: a[q·mr + i]) and B as rows of pairs (b[q·ldb + j]);
// which two terms form a pair is the caller's choice (the convolution pairs input channels 2c and
// 2c + 1 at the same tap, so that its im2col copies whole pairs). Without AVX512-BF16 the
// convolution sends the same rounded operands through the fp32 kernel of gemm.hpp: no speed-up.
//
// Determinism: each entry of C is one sum over the pairs in increasing order, whatever its tile
// or thread, so results stay the same at any thread count and in any batch, as in gemm.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

#include "ouro/backend/cpu/gemm.hpp"

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define OURO_HAS_AVX512_BF16 1
#else
#define OURO_HAS_AVX512_BF16 0
#endif

namespace ouro::cpu_kernels::gemm {

// Whether this build multiplies bf16 pairs in hardware. Without it the bf16 path is slower than the
// fp32 one: a forward at 0.67-0.89 of PyTorch's fp32 one on an AVX2 machine where ouro's fp32 one
// ran at 1.01-1.40 (benchmarks/RESULTS.md, 2026-12-07 23:09).
inline constexpr bool has_bf16_products = OURO_HAS_AVX512_BF16 != 0;

// The bfloat16 nearest to f (ties to even): the top 16 bits of the rounded fp32 pattern. NaN stays
// a (quiet) NaN; values beyond bf16's range round to infinity, as fp32 ones beyond fp32's do.
inline std::uint16_t to_bf16(float f) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
    return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float from_bf16(std::uint16_t h) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

// f rounded to the nearest bfloat16, as a float.
inline float round_to_bf16(float f) noexcept { return from_bf16(to_bf16(f)); }

// Two bf16 of consecutive depths in one 32-bit lane: `even` in the low half (VDPBF16PS's order).
inline std::uint32_t bf16_pair(float even, float odd) noexcept {
    return static_cast<std::uint32_t>(to_bf16(even)) | (static_cast<std::uint32_t>(to_bf16(odd)) << 16);
}

#if OURO_HAS_AVX512_BF16
namespace detail {
// out[j … j + 15] = (even[j], odd[j]) pairs, odd null read as 0.
inline void pair_bf16_x16(const float* even, const float* odd, std::uint32_t* out) {
    const __m512i lo = _mm512_cvtepu16_epi32(std::bit_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(even))));
    const __m512i hi = odd ? _mm512_cvtepu16_epi32(std::bit_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(odd))))
                           : _mm512_setzero_si512();
    _mm512_storeu_si512(out, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
}
#if defined(__AVX512VL__)
// The same for 8 and for 4 values (256- and 128-bit forms).
inline void pair_bf16_x8(const float* even, const float* odd, std::uint32_t* out) {
    const __m256i lo = _mm256_cvtepu16_epi32(std::bit_cast<__m128i>(_mm256_cvtneps_pbh(_mm256_loadu_ps(even))));
    const __m256i hi = odd ? _mm256_cvtepu16_epi32(std::bit_cast<__m128i>(_mm256_cvtneps_pbh(_mm256_loadu_ps(odd))))
                           : _mm256_setzero_si256();
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)));
}
inline void pair_bf16_x4(const float* even, const float* odd, std::uint32_t* out) {
    const __m128i lo = _mm_cvtepu16_epi32(std::bit_cast<__m128i>(_mm_cvtneps_pbh(_mm_loadu_ps(even))));
    const __m128i hi =
        odd ? _mm_cvtepu16_epi32(std::bit_cast<__m128i>(_mm_cvtneps_pbh(_mm_loadu_ps(odd)))) : _mm_setzero_si128();
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_or_si128(lo, _mm_slli_epi32(hi, 16)));
}
#endif
}  // namespace detail
#endif

// Two planes of n values as one plane of pairs: out[j] = (even[j], odd[j]), odd[j] read as 0 when
// `odd` is null (the missing partner of an odd count). With AVX512-BF16 every value goes through
// the hardware conversion: a row's tail is one more vector ending at n, overlapping the one before
// (rows of 28, 14 and 7 values left two thirds of a small U-Net's conversions to the scalar loop,
// which made the padded copy of the bf16 forward cost as much as its products); no masked store
// (slow on AMD Zen 4, see conv.hpp's copy_row_). The hardware conversion reads fp32 denormals as
// zero where to_bf16 rounds them, the only values on which the two differ.
inline void pair_bf16(const float* even, const float* odd, std::int64_t n, std::uint32_t* out) {
    std::int64_t j = 0;
#if OURO_HAS_AVX512_BF16
    auto at = [&](std::int64_t k) { return odd ? odd + k : nullptr; };
    if (n >= 16) {
        for (; j + 16 <= n; j += 16) detail::pair_bf16_x16(even + j, at(j), out + j);
        if (j < n) detail::pair_bf16_x16(even + n - 16, at(n - 16), out + n - 16);
        return;
    }
#if defined(__AVX512VL__)
    if (n >= 8) {
        detail::pair_bf16_x8(even, at(0), out);
        detail::pair_bf16_x8(even + n - 8, at(n - 8), out + n - 8);
        return;
    }
    if (n >= 4) {
        detail::pair_bf16_x4(even, at(0), out);
        detail::pair_bf16_x4(even + n - 4, at(n - 4), out + n - 4);
        return;
    }
#endif
#endif
    for (; j < n; ++j) out[j] = bf16_pair(even[j], odd ? odd[j] : 0.0f);
}

#if OURO_HAS_AVX512_BF16
// The tile of gemm.hpp's outer_tile on pairs (fp32 accumulators, Tile's shape for float):
// c[i·ldc + j] = init_i + Σ_q (a_q,i · b_q,j summed over the pair's two halves), q in increasing order.
// B's row q at b + row_offset(rows, q), as in outer_tile.
template <class Tile, class Rows>
inline void outer_tile_bf16(std::int64_t pairs, const std::uint32_t* __restrict a, const std::uint32_t* __restrict b,
                            Rows rows, float* __restrict c, std::int64_t ldc, const float* init) {
    static_assert(Tile::lanes == 16, "the bf16 tile is written for 512-bit vectors");
    constexpr int mr = Tile::mr, vectors = Tile::vectors, lanes = Tile::lanes;
    __m512 acc[mr][vectors];
#pragma GCC unroll 24
    for (int i = 0; i < mr; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; ++v) acc[i][v] = _mm512_set1_ps(init ? init[i] : 0.0f);
    for (std::int64_t q = 0; q < pairs; ++q) {
        __m512bh bv[vectors];
#pragma GCC unroll 4
        for (int v = 0; v < vectors; ++v)
            bv[v] = std::bit_cast<__m512bh>(_mm512_loadu_si512(b + row_offset(rows, q) + v * lanes));
#pragma GCC unroll 24
        for (int i = 0; i < mr; ++i) {
            const __m512bh ai = std::bit_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[q * mr + i])));
#pragma GCC unroll 4
            for (int v = 0; v < vectors; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
        }
    }
#pragma GCC unroll 24
    for (int i = 0; i < mr; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; ++v) _mm512_storeu_ps(c + i * ldc + v * lanes, acc[i][v]);
}

// C (m × n, row stride ldc) = init + A·B on pairs: A packed by pack_rows, B rows of pairs where
// `rows` says (a row stride, or indexed_rows), readable up to n rounded up to Tile::nr columns (as
// gemm::outer_product asks).
template <class Tile, class Rows>
void outer_product_bf16(std::int64_t m, std::int64_t n, std::int64_t pairs, const std::uint32_t* a,
                        const std::uint32_t* b, Rows rows, float* c, std::int64_t ldc, const float* init) {
    for_each_tile<Tile::mr, Tile::nr, false>(
        m, n, c, ldc, init,
        [&](std::int64_t i0, std::int64_t j0, float* c_tile, std::int64_t ldt, const float* tile_init) {
            outer_tile_bf16<Tile>(pairs, a + i0 * pairs, b + j0, rows, c_tile, ldt, tile_init);
        });
}
#endif

}  // namespace ouro::cpu_kernels::gemm
