// ouro::shape: the extents of a dense row-major tensor, rank 0..6, printable as "(B, C, H, W)".
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "ouro/core/error.hpp"

namespace ouro {

class shape {
public:
    static constexpr int max_rank = 6;

    constexpr shape() = default;
    constexpr shape(std::initializer_list<std::int64_t> extents) {
        if (extents.size() > max_rank) throw error("shape: rank above 6 is not supported");
        for (std::int64_t e : extents) {
            if (e < 0) throw error("shape: negative extent");
            dims_[rank_++] = e;
        }
    }

    constexpr int rank() const { return rank_; }
    constexpr std::int64_t operator[](int axis) const { return dims_[normalise(axis)]; }
    constexpr std::int64_t& operator[](int axis) { return dims_[normalise(axis)]; }

    // Number of elements; 1 for rank 0. A shape whose element count does not fit in int64 (a
    // hostile file header, say) is an error here, not a wrapped count that reads or allocates the
    // wrong amount.
    constexpr std::int64_t numel() const {
        std::int64_t n = 1;
        for (int i = 0; i < rank_; ++i)
            if (__builtin_mul_overflow(n, dims_[i], &n)) overflow();
        return n;
    }

    // numel() * element_size, checked the same way: the bytes a dense tensor of this shape needs.
    constexpr std::int64_t bytes(std::int64_t element_size) const {
        std::int64_t b = 0;
        if (__builtin_mul_overflow(numel(), element_size, &b)) overflow();
        return b;
    }

    constexpr bool operator==(const shape& other) const {
        if (rank_ != other.rank_) return false;
        for (int i = 0; i < rank_; ++i)
            if (dims_[i] != other.dims_[i]) return false;
        return true;
    }

    std::string str() const {
        std::ostringstream os;
        os << '(';
        for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
        os << ')';
        return os.str();
    }

    friend std::ostream& operator<<(std::ostream& os, const shape& s) { return os << s.str(); }

private:
    [[noreturn]] void overflow() const {
        throw error("shape " + str() + ": its element count overflows a 64-bit integer");
    }

    // Negative axes count from the end, as in NumPy.
    constexpr int normalise(int axis) const {
        int a = axis < 0 ? axis + rank_ : axis;
        if (a < 0 || a >= rank_) throw error("shape: axis out of range");
        return a;
    }

    std::array<std::int64_t, max_rank> dims_{};
    int rank_ = 0;
};

// Requires `found == expected`; the message names `what` and both shapes.
inline void require_shape(const shape& found, const shape& expected, const char* what) {
    if (!(found == expected)) fail(what, ": expected shape ", expected, ", found ", found);
}

// Requires `s` to have `rank` axes; `layout` names them in the message, e.g. "(B, C, H, W)".
inline void require_rank(const shape& s, int rank, const char* what, const char* layout) {
    if (s.rank() != rank) fail(what, ": expected a rank-", rank, " tensor ", layout, ", found shape ", s);
}

}  // namespace ouro
