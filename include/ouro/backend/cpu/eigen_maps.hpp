// Row-major Eigen views of tensor memory, for the CPU kernels that hand a product to Eigen's GEMM
// (linear layers, attention): a tensor (rows, cols) is a row-major matrix in place, no copy.
#pragma once

#include <Eigen/Core>

namespace ouro::cpu_kernels {

template <class T>
using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using const_row_major_map = Eigen::Map<const row_major<T>>;
template <class T>
using row_major_map = Eigen::Map<row_major<T>>;

}  // namespace ouro::cpu_kernels
