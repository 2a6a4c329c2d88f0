// Dense row-major tensors: tensor_view (non-owning pointer + shape) for kernels and modules,
// tensor (owning, 64-byte aligned host storage) for everything that keeps data.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "ouro/core/backend.hpp"
#include "ouro/core/buffer_cache.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"

namespace ouro {

// 64-byte alignment: one AVX-512 register, one cache line.
inline constexpr std::size_t tensor_alignment = 64;

template <class T>
struct aligned_allocator {
    using value_type = T;
    aligned_allocator() = default;
    template <class U>
    aligned_allocator(const aligned_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{tensor_alignment}));
    }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{tensor_alignment}); }
    template <class U>
    bool operator==(const aligned_allocator<U>&) const noexcept { return true; }
};

template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

// The storage of ouro::tensor: 64-byte aligned blocks from the buffer cache, and elements left
// uninitialised when a tensor grows (every module writes its outputs in full, and zero-filling an
// activation the next kernel overwrites costs as much as a small layer). With the environment
// variable OURO_POISON_TENSORS=1, every block is filled with all-ones bytes when taken (NaN for
// floats, -1 for integers), so code that reads a buffer before writing it fails its tests.
template <class T>
struct tensor_allocator {
    using value_type = T;
    tensor_allocator() = default;
    template <class U>
    tensor_allocator(const tensor_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n > std::size_t(-1) / sizeof(T)) throw std::bad_alloc();
        void* p = buffer_cache::instance().acquire(n * sizeof(T));
        if (poison_) std::memset(p, 0xFF, n * sizeof(T));
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) noexcept { buffer_cache::instance().release(p, n * sizeof(T)); }
    // Default-initialisation: no zero-fill of trivial types.
    template <class U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    template <class U>
    bool operator==(const tensor_allocator<U>&) const noexcept { return true; }

private:
    static inline const bool poison_ = [] {
        const char* v = std::getenv("OURO_POISON_TENSORS");
        return v != nullptr && v[0] == '1';
    }();
};

// A non-owning view of contiguous row-major data. Cheap to copy; never outlives its owner.
template <class T>
class tensor_view {
public:
    using value_type = std::remove_const_t<T>;

    tensor_view() = default;
    tensor_view(T* data, const shape& s) : data_(data), shape_(s) {}
    // A mutable view converts to a read-only one.
    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<std::remove_const_t<T>, U>)
    tensor_view(const tensor_view<U>& other) : data_(other.data()), shape_(other.dims()) {}

    T* data() const { return data_; }
    const shape& dims() const { return shape_; }
    std::int64_t dim(int axis) const { return shape_[axis]; }
    int rank() const { return shape_.rank(); }
    std::int64_t numel() const { return shape_.numel(); }
    bool empty() const { return numel() == 0; }
    T& operator[](std::int64_t i) const { return data_[i]; }
    T* begin() const { return data_; }
    T* end() const { return data_ + numel(); }

    // The same data seen with another shape of equal element count.
    tensor_view reshaped(const shape& s) const {
        if (s.numel() != numel()) fail("reshape: expected ", numel(), " elements, found shape ", s);
        return tensor_view(data_, s);
    }

private:
    T* data_ = nullptr;
    shape shape_;
};

// An owning dense tensor on backend B (host memory for ouro::cpu).
// resize() keeps capacity, so a module that reuses its buffers allocates only on the first step;
// release() gives the storage back to the buffer cache, where the next resize finds it again.
template <class T, backend B = cpu>
class tensor {
    static_assert(B::host_memory, "ouro::tensor<T, B>: this backend keeps device memory; use its own buffer type");

public:
    using value_type = T;

    tensor() = default;
    explicit tensor(const shape& s, T fill = T{}) : data_(allocate(s, fill)), shape_(s) {}

    // Reshapes to `s`; contents are unspecified unless the element count is unchanged.
    void resize(const shape& s) {
        try {
            data_.resize(static_cast<std::size_t>(s.bytes(sizeof(T)) / static_cast<std::int64_t>(sizeof(T))));
        } catch (const std::bad_alloc&) {
            out_of_memory(s);
        } catch (const std::length_error&) {
            out_of_memory(s);
        }
        shape_ = s;
    }
    // Frees the storage (to the buffer cache) and leaves an empty tensor of shape (0).
    void release() noexcept {
        storage().swap(data_);
        shape_ = shape{0};
    }
    void fill(T value) { std::fill(data_.begin(), data_.end(), value); }
    void zero() { fill(T{}); }

    T* data() { return data_.data(); }
    const T* data() const { return data_.data(); }
    const shape& dims() const { return shape_; }
    std::int64_t dim(int axis) const { return shape_[axis]; }
    int rank() const { return shape_.rank(); }
    std::int64_t numel() const { return shape_.numel(); }
    bool empty() const { return numel() == 0; }
    T& operator[](std::int64_t i) { return data_[static_cast<std::size_t>(i)]; }
    const T& operator[](std::int64_t i) const { return data_[static_cast<std::size_t>(i)]; }
    T* begin() { return data(); }
    T* end() { return data() + numel(); }
    const T* begin() const { return data(); }
    const T* end() const { return data() + numel(); }

    tensor_view<T> view() { return {data(), shape_}; }
    tensor_view<const T> view() const { return {data(), shape_}; }
    operator tensor_view<T>() { return view(); }
    operator tensor_view<const T>() const { return view(); }

private:
    // Running out of memory is an ouro::error that names the shape, not a bare std::bad_alloc.
    [[noreturn]] static void out_of_memory(const shape& s) {
        fail("cannot allocate a tensor of shape ", s, " (", s.bytes(sizeof(T)), " bytes): out of memory");
    }
    using storage = std::vector<T, tensor_allocator<T>>;

    static storage allocate(const shape& s, T fill) {
        try {
            return storage(static_cast<std::size_t>(s.bytes(sizeof(T)) / static_cast<std::int64_t>(sizeof(T))), fill);
        } catch (const std::bad_alloc&) {
            out_of_memory(s);
        } catch (const std::length_error&) {
            out_of_memory(s);
        }
    }

    storage data_;
    shape shape_;
};

// Copies a view into a new owning tensor.
template <class T>
tensor<std::remove_const_t<T>> to_tensor(tensor_view<T> v) {
    tensor<std::remove_const_t<T>> t(v.dims());
    std::copy(v.begin(), v.end(), t.begin());
    return t;
}

}  // namespace ouro
