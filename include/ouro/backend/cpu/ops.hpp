// ops<cpu>: the CPU backend of the op facade, composed from one struct of static kernels per op
// family. Layers call ops<B>::name(...); nothing outside backend/ names a kernel struct.
#pragma once

#include "ouro/backend/cpu/activation.hpp"
#include "ouro/backend/cpu/attention.hpp"
#include "ouro/backend/cpu/conv.hpp"
#include "ouro/backend/cpu/dropout.hpp"
#include "ouro/backend/cpu/elementwise.hpp"
#include "ouro/backend/cpu/embedding.hpp"
#include "ouro/backend/cpu/linear.hpp"
#include "ouro/backend/cpu/loss.hpp"
#include "ouro/backend/cpu/norm.hpp"
#include "ouro/backend/cpu/pool.hpp"
#include "ouro/backend/cpu/resample.hpp"
#include "ouro/backend/cpu/update.hpp"
#include "ouro/backend/ops.hpp"

namespace ouro {

template <>
struct ops<cpu> : cpu_kernels::activation_ops,
                  cpu_kernels::attention_ops,
                  cpu_kernels::conv_ops,
                  cpu_kernels::dropout_ops,
                  cpu_kernels::elementwise_ops,
                  cpu_kernels::embedding_ops,
                  cpu_kernels::linear_ops,
                  cpu_kernels::loss_ops,
                  cpu_kernels::norm_ops,
                  cpu_kernels::pool_ops,
                  cpu_kernels::resample_ops,
                  cpu_kernels::update_ops {};

}  // namespace ouro
