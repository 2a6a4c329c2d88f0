// Closes the region simd_warnings_off.hpp opened (no include guard: one per kernel header).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
