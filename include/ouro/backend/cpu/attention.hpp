// CPU kernels: attention ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct attention_ops {};

}  // namespace ouro::cpu_kernels
