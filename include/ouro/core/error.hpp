// ouro::error, the one exception type of the library, and the checks that raise it.
// Messages name what was expected and what was found, so a user can fix the input without a debugger.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ouro {

class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    return os.str();
}
}  // namespace detail

// Throws ouro::error with the streamed parts as its message.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
    throw error(detail::concat(std::forward<Parts>(parts)...));
}

// Requires `condition`; otherwise throws ouro::error built from `parts`.
// The parts are only formatted on failure.
template <class... Parts>
void require(bool condition, Parts&&... parts) {
    if (!condition) fail(std::forward<Parts>(parts)...);
}

}  // namespace ouro
