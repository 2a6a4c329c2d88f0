// CPU kernels: linear ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct linear_ops {};

}  // namespace ouro::cpu_kernels
