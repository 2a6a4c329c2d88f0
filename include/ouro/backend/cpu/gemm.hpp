// CPU kernels: the register-tiled matrix products under the convolutions, written with xsimd so
// they use whatever vector unit the build targets (AVX-512 here, AVX2 or NEON elsewhere).
//
// One kernel, the outer-product tile of Goto & van de Geijn ("Anatomy of high-performance matrix
// multiplication", ACM TOMS 2008): C (mr × nr) = init + Σ_k a_k ⊗ b_k, with a packed in panels of
// mr rows (a[k·mr + i]) and b read in place, nr contiguous values per k at any row stride or offset.
// The convolutions give it B as it lies (the im2col buffer, a padded input through a table of row
// offsets, dy, a transposed block of dy), so only the small operand is packed — the weights once per
// call, where Eigen's GEMM packed both operands of every per-block product anew. The depth is cut
// into blocks only where a tile says so (pixel_tile with 16 registers; see depth_block): elsewhere
// the depths here (Cin·k·k, Cout, a block of pixels) keep both panels in L2.
//
// Determinism: every entry of C is one sum over k in increasing order, whatever the tile it falls
// in, the position of its column in a panel or the thread that runs it, so the convolutions built
// on this kernel keep ouro's bitwise promise (same results at any thread count and in any batch).
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace ouro::cpu_kernels::gemm {

// Register tiles of mr rows × nr = vectors·lanes columns of accumulators for element type T, one
// per kind of product. With 32 vector registers (AVX-512) 24 accumulators, the b vectors and one
// broadcast fit; with 16 (AVX2) 8 to 12 (see each tile).
template <class T>
constexpr bool has_many_registers = xsimd::batch<T>::size * sizeof(T) >= 64;

// Products whose columns are pixels (forward, input gradient): 8 × 3 vectors (48 floats), or with
// 16 registers 4 × 3 (24 floats: 12 accumulators, 3 b vectors and the broadcast fill all 16).
// Measured on an AMD Zen 3 (AVX2, one thread, bench_unet, 2026-12-07): 4 × 3 against the earlier
// 4 × 2 gave S's forward +13%, its training +7%, Q and M alike; a 6-row channel_tile gained nothing.
// mr stays 4, which divides conv_ops::channel_block. The sums are the same (in increasing k), so
// are the bits.
template <class T>
struct pixel_tile {
    using batch = xsimd::batch<T>;
    static constexpr int lanes = static_cast<int>(batch::size);
    static constexpr int mr = has_many_registers<T> ? 8 : 4;
    static constexpr int vectors = 3;
    static constexpr int nr = vectors * lanes;
    // Depths per pass over C (see outer_product; 0: all in one pass), so that a pass's B strip
    // (depth_block rows of nr values) is reread from near caches by every row panel. Measured on
    // the Zen 3 (AVX2, bench_unet, one thread, 3 runs each): M's forward 27.4 images/s unblocked,
    // 29.7 at 128, 31.9 at 256, 28.8 at 384, 25.6 at 576; S's alike at 0 and 256 (its depths are
    // mostly ≤ 576). With AVX-512 (AMD Zen 5, 2026-12-07, 3 alternating runs each) M's forward was
    // 70.5, 71.1, 67.9 images/s in one pass and 68.9–70.7 at 128, 69.5–70.4 at 256, 67.8–69.5 at
    // 512: no gain (panels of 8 rows reread B half as often as AVX2's 4), so AVX-512 keeps one pass.
    static constexpr std::int64_t depth_block = has_many_registers<T> ? 0 : 256;
};

// Products whose columns are output channels (the weight gradient, 16 to 256 of them): 12 × 2
// vectors (32 floats), which divides the channel counts of the U-Nets.
template <class T>
struct channel_tile {
    using batch = xsimd::batch<T>;
    static constexpr int lanes = static_cast<int>(batch::size);
    static constexpr int mr = has_many_registers<T> ? 12 : 4;
    static constexpr int vectors = 2;
    static constexpr int nr = vectors * lanes;
};

// The same for at most one vector of output channels (16 floats with AVX-512: the small U-Nets'
// first level), where channel_tile would compute as many padding columns as real ones: 24 × 1
// vector (or 12 × 1).
template <class T>
struct narrow_channel_tile {
    using batch = xsimd::batch<T>;
    static constexpr int lanes = static_cast<int>(batch::size);
    static constexpr int mr = has_many_registers<T> ? 24 : 12;
    static constexpr int vectors = 1;
    static constexpr int nr = lanes;
};

// Packs rows [0, m) × columns [0, depth) of A, element (i, k) at a[i·row_stride + k·col_stride],
// into panels of mr rows: out[(i / mr)·depth·mr + k·mr + i % mr], rows past m zero. `out` holds
// ceil(m / mr)·mr·depth values.
template <class Tile, class T>
void pack_rows(const T* a, std::int64_t row_stride, std::int64_t col_stride, std::int64_t m, std::int64_t depth,
               T* out) {
    constexpr int mr = Tile::mr;
    for (std::int64_t i0 = 0; i0 < m; i0 += mr) {
        const std::int64_t rows = std::min<std::int64_t>(mr, m - i0);
        T* panel = out + i0 * depth;
        for (std::int64_t k = 0; k < depth; ++k) {
            T* dst = panel + k * mr;
            for (std::int64_t i = 0; i < rows; ++i) dst[i] = a[(i0 + i) * row_stride + k * col_stride];
            for (std::int64_t i = rows; i < mr; ++i) dst[i] = T(0);
        }
    }
}

// Values of the packed A that pack_rows writes for m rows and `depth` columns.
template <class Tile>
constexpr std::int64_t packed_rows_size(std::int64_t m, std::int64_t depth) {
    constexpr int mr = Tile::mr;
    return (m + mr - 1) / mr * mr * depth;
}

// How the kernel finds A's element (i, k): packed by pack_rows (a[k·mr + i], one panel), or in
// place as rows of a row-major matrix (a[i·lda + k]), which saves the packing pass where A is
// written once per product anyway (the weight gradient's im2col block). Either way each entry is
// broadcast from memory; rows in place cost one address per row instead of one per panel.
enum class a_layout { packed, rows };

// Where the kernel finds B's row k: `ldb` (an integer) places it at k·ldb, a matrix at row
// stride ldb; indexed_rows at offsets[k], rows anywhere — the direct convolution's taps, each
// a fixed shift of one zero-padded image (conv.hpp). Either way row k is read nr values at a time.
struct indexed_rows {
    const std::int64_t* offsets;
};

template <class Rows>
inline std::int64_t row_offset(Rows rows, std::int64_t k) {
    if constexpr (std::is_same_v<Rows, indexed_rows>) return rows.offsets[k];
    else
        return k * rows;
}

// B from its row k0 on: b' and rows' with b' + row_offset(rows', k) = b + row_offset(rows, k0 + k).
template <class T, class Rows>
inline std::pair<const T*, Rows> rows_from(const T* b, Rows rows, std::int64_t k0) {
    if constexpr (std::is_same_v<Rows, indexed_rows>) return {b, indexed_rows{rows.offsets + k0}};
    else
        return {b + k0 * rows, rows};
}

// A tile's depth_block, 0 (the whole depth in one pass) where it declares none.
template <class Tile>
constexpr std::int64_t depth_block_of() {
    if constexpr (requires { Tile::depth_block; }) return Tile::depth_block;
    else
        return 0;
}

// One mr × nr tile: c[i·ldc + j] = (Accumulate ? c[i·ldc + j] : init_i) + Σ_{k < depth} A(i, k)·B(k, j),
// the sum in increasing k, init_i = init[i] or 0 when init is null, A as Layout says (lda unused
// when packed), B(k, j) = b[row_offset(rows, k) + j]. Reads nr values of every b row and writes all
// mr × nr entries of c.
template <class Tile, bool Accumulate, a_layout Layout = a_layout::packed, class T, class Rows>
inline void outer_tile(std::int64_t depth, const T* __restrict a, std::int64_t lda, const T* __restrict b, Rows rows,
                       T* __restrict c, std::int64_t ldc, const T* init) {
    using batch = typename Tile::batch;
    constexpr int mr = Tile::mr, vectors = Tile::vectors, lanes = Tile::lanes;
    batch acc[mr][vectors];
#pragma GCC unroll 24
    for (int i = 0; i < mr; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; ++v) {
            if constexpr (Accumulate) acc[i][v] = batch::load_unaligned(c + i * ldc + v * lanes);
            else
                acc[i][v] = batch(init ? init[i] : T(0));
        }
    for (std::int64_t k = 0; k < depth; ++k) {
        batch bv[vectors];
#pragma GCC unroll 4
        for (int v = 0; v < vectors; ++v) bv[v] = batch::load_unaligned(b + row_offset(rows, k) + v * lanes);
#pragma GCC unroll 24
        for (int i = 0; i < mr; ++i) {
            const batch ai(Layout == a_layout::packed ? a[k * mr + i] : a[i * lda + k]);
#pragma GCC unroll 4
            for (int v = 0; v < vectors; ++v) acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 24
    for (int i = 0; i < mr; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; ++v) acc[i][v].store_unaligned(c + i * ldc + v * lanes);
}

// Runs `tile(i0, j0, c_tile, ldc_tile, tile_init)` over the mr × nr tiles of C (m × n, row stride
// ldc), the tile writing all mr × nr entries of c_tile. A partial last panel of columns, or of rows,
// goes through a small buffer (C's entries copied in first when Accumulate, the init padded with
// zeros), so the tile never writes past C. The driver of outer_product and of its bf16 variant.
template <int mr, int nr, bool Accumulate, class T, class Tile>
void for_each_tile(std::int64_t m, std::int64_t n, T* c, std::int64_t ldc, const T* init, Tile&& tile) {
    alignas(64) T edge[mr * nr];
    T padded_init[mr];
    for (std::int64_t j0 = 0; j0 < n; j0 += nr) {
        const std::int64_t cols = std::min<std::int64_t>(nr, n - j0);
        for (std::int64_t i0 = 0; i0 < m; i0 += mr) {
            const std::int64_t rows = std::min<std::int64_t>(mr, m - i0);
            T* c_tile = c + i0 * ldc + j0;
            if (rows == mr && cols == nr) {
                tile(i0, j0, c_tile, ldc, init ? init + i0 : nullptr);
                continue;
            }
            if constexpr (Accumulate) {
                for (std::int64_t i = 0; i < rows; ++i)
                    std::copy(c_tile + i * ldc, c_tile + i * ldc + cols, edge + i * nr);
            }
            const T* tile_init = nullptr;
            if (init) {
                std::fill(padded_init, padded_init + mr, T(0));
                std::copy(init + i0, init + i0 + rows, padded_init);
                tile_init = padded_init;
            }
            tile(i0, j0, static_cast<T*>(edge), std::int64_t{nr}, tile_init);
            for (std::int64_t i = 0; i < rows; ++i) std::copy(edge + i * nr, edge + i * nr + cols, c_tile + i * ldc);
        }
    }
}

// C (m × n, row stride ldc) = init + A·B with A (m × depth) packed by pack_rows or in rows at row
// stride lda (Layout), and B (depth × n) read at b[row_offset(rows, k) + j] (rows: a row stride ldb,
// or indexed_rows). Columns are taken nr at a time (see for_each_tile for partial tiles), so B must
// be readable for columns up to n rounded up to nr, and A in rows for rows up to m rounded up to mr
// (the caller pads its buffers; the padding's products are computed and dropped). Accumulate adds
// to C instead.
template <class Tile, bool Accumulate, a_layout Layout = a_layout::packed, class T, class Rows>
void outer_product(std::int64_t m, std::int64_t n, std::int64_t depth, const T* a, std::int64_t lda, const T* b,
                   Rows rows, T* c, std::int64_t ldc, const T* init) {
    // One pass over C per block of `block` depths (Goto & van de Geijn's kc), the first from init
    // (or C when Accumulate), the rest adding to C. Each entry's sum keeps its order and its fp32
    // partial sums, so the bits do not depend on the block.
    const std::int64_t block = depth_block_of<Tile>() > 0 ? depth_block_of<Tile>() : std::max<std::int64_t>(depth, 1);
    auto pass = [&]<bool Add>(std::int64_t k0, std::int64_t kb, const T* pass_init) {
        // (Not a structured binding: clang 14 cannot capture one in the lambda below.)
        const std::pair<const T*, Rows> from = rows_from(b, rows, k0);
        const T* pass_b = from.first;
        const Rows pass_rows = from.second;
        for_each_tile<Tile::mr, Tile::nr, Add>(
            m, n, c, ldc, pass_init,
            [&](std::int64_t i0, std::int64_t j0, T* c_tile, std::int64_t ldt, const T* tile_init) {
                const T* panel = Layout == a_layout::packed ? a + i0 * depth + k0 * Tile::mr : a + i0 * lda + k0;
                outer_tile<Tile, Add, Layout>(kb, panel, lda, pass_b + j0, pass_rows, c_tile, ldt, tile_init);
            });
    };
    for (std::int64_t k0 = 0; k0 < depth || k0 == 0; k0 += block) {
        const std::int64_t kb = std::min(block, depth - k0);
        if (k0 == 0 && !Accumulate) pass.template operator()<false>(k0, kb, init);
        else
            pass.template operator()<true>(k0, kb, static_cast<const T*>(nullptr));
    }
}

}  // namespace ouro::cpu_kernels::gemm
