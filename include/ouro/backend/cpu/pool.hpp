// CPU kernels: pool ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct pool_ops {};

}  // namespace ouro::cpu_kernels
