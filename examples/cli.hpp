// The examples' one command-line helper: a number from a flag's text, or an ouro::error that names
// the flag and what it found (std::stoll alone would accept "12abc" and throw a bare "stoll").
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>

#include "ouro/core/error.hpp"

namespace examples {

template <class T>
T number(std::string_view flag, const std::string& text) {
    std::size_t used = 0;
    T v{};
    try {
        if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(text, &used));
        else v = static_cast<T>(std::stoll(text, &used));
    } catch (const std::exception&) {
        used = 0;
    }
    ouro::require(!text.empty() && used == text.size(), flag, ": expected ",
                  std::is_floating_point_v<T> ? "a number" : "a whole number", ", found '", text, "'");
    return v;
}

}  // namespace examples
