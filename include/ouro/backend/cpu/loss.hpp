// CPU kernels: loss ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct loss_ops {};

}  // namespace ouro::cpu_kernels
