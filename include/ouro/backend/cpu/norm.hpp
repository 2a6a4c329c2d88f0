// CPU kernels: norm ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct norm_ops {};

}  // namespace ouro::cpu_kernels
