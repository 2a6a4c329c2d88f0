// FNV-1a, 64 bits (Fowler, Noll & Vo): the short fingerprints ouro stores beside its files (a
// model spec's, a dataset's) to notice that a file belongs to something else. Not a guard against
// damaged bytes: file contents carry CRC-32s (io/safetensors.hpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace ouro {

class fnv1a {
public:
    // One byte at a time: the textbook FNV-1a of a string.
    constexpr fnv1a& add_bytes(std::string_view bytes) {
        for (char c : bytes) add_word(static_cast<unsigned char>(c));
        return *this;
    }
    // One 64-bit word per multiply: the variant that hashes large buffers eight bytes at a time.
    constexpr fnv1a& add_word(std::uint64_t word) {
        value_ = (value_ ^ word) * prime;
        return *this;
    }
    constexpr std::uint64_t value() const { return value_; }

    static constexpr std::uint64_t offset_basis = 14695981039346656037ull;
    static constexpr std::uint64_t prime = 1099511628211ull;

private:
    std::uint64_t value_ = offset_basis;
};

constexpr std::uint64_t fnv1a_of(std::string_view bytes) { return fnv1a{}.add_bytes(bytes).value(); }

}  // namespace ouro
