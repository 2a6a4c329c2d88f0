// CPU kernels: dropout ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct dropout_ops {};

}  // namespace ouro::cpu_kernels
