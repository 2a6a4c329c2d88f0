// CPU kernels: conv ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct conv_ops {};

}  // namespace ouro::cpu_kernels
