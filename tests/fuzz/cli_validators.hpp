// Fuzz target cli_validators: the bytes as the value of a command-line flag of the examples, checked
// by every validator of examples/cli.hpp (a CLI11 validator returns "" or its complaint; it throws
// nothing).
#pragma once

#include <cstdint>
#include <string>

#include "../../examples/cli.hpp"
#include "fuzz/common.hpp"

namespace ouro::fuzzing {

inline void fuzz_cli_validators(const std::uint8_t* data, std::size_t size) {
    static const CLI::Validator validators[] = {
        examples::whole_number,        examples::unsigned_integer,         examples::whole_in(1, 1000),
        examples::whole_in(-5, 5),     examples::finite_at_least(0.0),     examples::finite_above(0.0),
        examples::finite_in(0.0, 1.0), examples::finite_in(-1e300, 1e300),
    };
    for (const CLI::Validator& v : validators) {
        std::string text(reinterpret_cast<const char*>(data), size);  // a validator may rewrite its argument
        (void)v(text);
    }
}

}  // namespace ouro::fuzzing
