// CPU kernels: activation ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct activation_ops {};

}  // namespace ouro::cpu_kernels
