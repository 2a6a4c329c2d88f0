// Feature matrices for the metrics: (N, D) float or double features seen as one row-major double
// matrix (a view when the input is double, a converted copy when it is float), checked once for
// shape and finite values; plus the blocked row loop that the pairwise metrics share.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <utility>

#include <Eigen/Dense>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::metrics {

// Anything that converts to a read-only (N, D) float or double view: tensor<float>,
// tensor_view<double>, tensor_view<const float>, ...
template <class X>
concept feature_view =
    std::convertible_to<const X&, tensor_view<const float>> || std::convertible_to<const X&, tensor_view<const double>>;

using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using const_row_map = Eigen::Map<const row_matrix>;

// A checked (N, D) feature matrix in double. Double input is viewed without a copy (the input must
// outlive this object); float input is converted once, so every metric computes in double.
class feature_matrix {
public:
    // Requires rank 2, N >= min_rows, D >= 1 and finite entries; `what` names the set in messages,
    // e.g. "fid: real features".
    template <feature_view X>
    feature_matrix(const X& x, std::string what, std::int64_t min_rows = 1) : what_(std::move(what)) {
        if constexpr (std::convertible_to<const X&, tensor_view<const double>>) {
            const tensor_view<const double> v = x;
            check_shape(v.dims(), min_rows);
            data_ = v.data();
        } else {
            const tensor_view<const float> v = x;
            check_shape(v.dims(), min_rows);
            storage_.resize(v.dims());
            std::copy(v.begin(), v.end(), storage_.begin());
            data_ = storage_.data();
        }
        check_finite();
    }

    feature_matrix(const feature_matrix&) = delete;
    feature_matrix& operator=(const feature_matrix&) = delete;

    std::int64_t rows() const { return rows_; }
    std::int64_t cols() const { return cols_; }
    const double* data() const { return data_; }
    const double* row(std::int64_t i) const { return data_ + i * cols_; }
    const std::string& what() const { return what_; }
    const_row_map map() const { return const_row_map(data_, rows_, cols_); }

    // ||x_i||^2 for every row, each summed left to right.
    aligned_vector<double> squared_norms() const {
        aligned_vector<double> out(static_cast<std::size_t>(rows_));
        for (std::int64_t i = 0; i < rows_; ++i) {
            const double* r = row(i);
            double s = 0;
            for (std::int64_t j = 0; j < cols_; ++j) s += r[j] * r[j];
            out[static_cast<std::size_t>(i)] = s;
        }
        return out;
    }

private:
    void check_shape(const shape& s, std::int64_t min_rows) {
        if (s.rank() != 2) fail(what_, ": expected a rank-2 tensor (N, D), found shape ", s);
        if (s[0] < min_rows)
            fail(what_, ": expected at least ", min_rows, " sample", min_rows == 1 ? "" : "s", " (N >= ", min_rows,
                 "), found shape ", s);
        if (s[1] < 1) fail(what_, ": expected at least one feature (D >= 1), found shape ", s);
        rows_ = s[0];
        cols_ = s[1];
    }

    void check_finite() const {
        for (std::int64_t i = 0; i < rows_ * cols_; ++i)
            if (!std::isfinite(data_[i]))
                fail(what_, ": expected finite values, found ", data_[i], " at (", i / cols_, ", ", i % cols_, ")");
    }

    std::string what_;
    tensor<double> storage_;
    const double* data_ = nullptr;
    std::int64_t rows_ = 0, cols_ = 0;
};

// Requires equal feature dimensions; the message names both shapes.
inline void require_same_dim(const feature_matrix& a, const feature_matrix& b, const char* what) {
    if (a.cols() != b.cols())
        fail(what, ": expected features of the same dimension D, found ", a.what(), " (", a.rows(), ", ", a.cols(),
             ") and ", b.what(), " (", b.rows(), ", ", b.cols(), ")");
}

// Rows per block of the pairwise metrics: a block of squared distances is block_rows × M doubles
// (20 MB for M = 10,000), per thread. Fixed, never derived from the thread count.
inline constexpr std::int64_t default_block_rows = 256;

// Calls body(begin, end, scratch) for the row blocks [begin, end) of n rows, in parallel across
// blocks. Block boundaries depend only on n and block_rows, and each block's result must depend
// only on the block, so results are identical at any thread count. `scratch` is a row_matrix owned
// by the calling thread, reused across its blocks. Inside an enclosing parallel region the blocks
// run serially on the calling thread.
template <class Body>
void for_each_row_block(std::int64_t n, std::int64_t block_rows, Body&& body) {
    require(block_rows >= 1, "for_each_row_block: expected block_rows >= 1, found ", block_rows);
    const std::int64_t blocks = (n + block_rows - 1) / block_rows;
#pragma omp parallel if (blocks > 1)
    {
        row_matrix scratch;
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < blocks; ++b) body(b * block_rows, std::min(n, (b + 1) * block_rows), scratch);
    }
}

// Where ||a_i||^2 + ||b_j||^2 - 2 a_i·b_j has cancelled below this share of ||a_i||^2 + ||b_j||^2,
// it has lost at least six of its ~16 digits, and its round-off (which differs from entry to entry
// of the GEMM) can order equal distances either way: such pairs are recomputed from differences.
inline constexpr double distance_refine_ratio = 1e-6;

// Squared Euclidean distances of rows [begin, end) of `a` to every row of `b`, through one GEMM:
// ||a_i||^2 + ||b_j||^2 - 2 a_i·b_j, except for near pairs (distance_refine_ratio), which are
// summed from the differences: identical rows are exactly 0 apart, and every result is >= 0.
// Each entry depends only on its two rows. out: (end - begin, b.rows()).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline void squared_distances(const feature_matrix& a, const aligned_vector<double>& a_norms, std::int64_t begin,
                              std::int64_t end, const feature_matrix& b, const aligned_vector<double>& b_norms,
                              row_matrix& out) {
    const std::int64_t rows = end - begin, m = b.rows(), d = a.cols();
    out.resize(rows, m);
    const const_row_map am = a.map(), bm = b.map();
    out.noalias() = am.middleRows(begin, rows) * bm.transpose();
    for (std::int64_t i = 0; i < rows; ++i) {
        double* o = out.data() + i * m;
        const double na = a_norms[static_cast<std::size_t>(begin + i)];
        const double* nb = b_norms.data();
        for (std::int64_t j = 0; j < m; ++j) {
            const double expanded = na + nb[j] - 2.0 * o[j];
            if (expanded > distance_refine_ratio * (na + nb[j])) {
                o[j] = expanded;
                continue;
            }
            const double *x = a.row(begin + i), *y = b.row(j);
            double s = 0;
            for (std::int64_t k = 0; k < d; ++k) s += (x[k] - y[k]) * (x[k] - y[k]);
            o[j] = s;
        }
    }
}

}  // namespace ouro::metrics
