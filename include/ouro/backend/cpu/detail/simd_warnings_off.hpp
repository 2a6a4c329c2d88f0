// Included first by a CPU kernel header that uses xsimd, and paired with simd_warnings_on.hpp at
// its end (no include guard: each kernel header opens and closes its own region).
// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 intrinsics (the _mm*_undefined_*
// operands that xsimd's reductions and exp use; GCC bug 105593), a false positive. The region
// starts before xsimd so that it also covers xsimd's own function templates.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <xsimd/xsimd.hpp>
