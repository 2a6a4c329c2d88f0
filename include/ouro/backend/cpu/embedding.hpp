// CPU kernels: embedding ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct embedding_ops {};

}  // namespace ouro::cpu_kernels
