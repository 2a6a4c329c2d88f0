// CPU kernels: resample ops (placeholder; filled in by the op family's author).
#pragma once

namespace ouro::cpu_kernels {

struct resample_ops {};

}  // namespace ouro::cpu_kernels
