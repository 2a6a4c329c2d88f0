// The library version, stored with checkpoints and run configurations. CMakeLists.txt checks at
// configure time that it equals the project version.
#pragma once

namespace ouro {

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;
inline constexpr const char* version = "0.1.0";

}  // namespace ouro
