// The flat parameter store: every parameter of a model lives in one contiguous buffer, every
// gradient in a second one of the same layout, so optimizers, EMA, clipping and checkpoints act on
// whole buffers. Modules register named parameters ("down.0.conv.weight", as PyTorch state-dict
// keys) while they are built and keep small handles; views are made on use, so growing the
// buffers during construction never leaves a module with a dangling pointer. The buffers are in
// B's memory (host memory for ouro::cpu): values()/grads() are B's pointers, and code that reads
// them on the host (the CPU optimisers, checkpoints) requires B::host_memory or goes through to_host.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/memory.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro {

// A handle to one registered parameter; valid for the lifetime of its store.
struct parameter {
    std::int32_t index = -1;
    bool valid() const { return index >= 0; }
};

template <real_scalar T = float, backend B = cpu>
class parameter_store {
public:
    using value_type = T;
    using backend_type = B;

    struct entry {
        std::string name;
        shape dims;
        std::int64_t offset;  // in elements, into values() and grads()
    };

    // Each parameter starts on a 64-byte boundary so SIMD loops over one parameter stay aligned.
    static constexpr std::int64_t alignment_elements = static_cast<std::int64_t>(tensor_alignment / sizeof(T));

    // Registers a zero-initialised parameter; names must be unique.
    parameter add(std::string name, const shape& dims) {
        if (find(name).valid()) fail("parameter_store: a parameter named '", name, "' is already registered");
        const std::int64_t offset = (size_ + alignment_elements - 1) / alignment_elements * alignment_elements;
        size_ = offset + dims.numel();
        values_.resize(static_cast<std::size_t>(size_));  // new elements are zero
        grads_.resize(static_cast<std::size_t>(size_));
        entries_.push_back({std::move(name), dims, offset});
        return {static_cast<std::int32_t>(entries_.size() - 1)};
    }

    // The handle of the parameter named `name`, or an invalid handle.
    parameter find(std::string_view name) const {
        for (std::size_t i = 0; i < entries_.size(); ++i)
            if (entries_[i].name == name) return {static_cast<std::int32_t>(i)};
        return {};
    }

    tensor_view<T, B> value(parameter p) { return view_into(values_.data(), p); }
    tensor_view<const T, B> value(parameter p) const { return view_into(values_.data(), p); }
    tensor_view<T, B> grad(parameter p) { return view_into(grads_.data(), p); }
    tensor_view<const T, B> grad(parameter p) const { return view_into(grads_.data(), p); }

    // Whole buffers (padding between parameters included, always zero in values and grads).
    T* values() { return values_.data(); }
    const T* values() const { return values_.data(); }
    T* grads() { return grads_.data(); }
    const T* grads() const { return grads_.data(); }
    std::int64_t size() const { return size_; }

    // Number of trainable scalars (padding excluded).
    std::int64_t parameter_count() const {
        std::int64_t n = 0;
        for (const entry& e : entries_) n += e.dims.numel();
        return n;
    }

    const std::vector<entry>& entries() const { return entries_; }
    const entry& at(parameter p) const { return entries_.at(static_cast<std::size_t>(p.index)); }

    void zero_grad() { zero_fill(grads_); }

private:
    template <class U>
    tensor_view<U, B> view_into(U* base, parameter p) const {
        const entry& e = at(p);
        return {base + e.offset, e.dims};
    }

    std::vector<entry> entries_;
    flat_buffer<T, B> values_;
    flat_buffer<T, B> grads_;
    std::int64_t size_ = 0;
};

// "prefix" + "." + "name", or just "name" at the top level.
inline std::string join_name(std::string_view prefix, std::string_view name) {
    if (prefix.empty()) return std::string(name);
    std::string s(prefix);
    s += '.';
    s += name;
    return s;
}

}  // namespace ouro
