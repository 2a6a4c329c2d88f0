// Dense row-major tensors: tensor_view (non-owning pointer + shape) for kernels and modules,
// tensor (owning) for everything that keeps data. Both name the backend whose memory they hold
// (ouro::cpu when left out): elements can be read and written from the host only where
// B::host_memory, so host code that would touch a GPU's memory does not compile. Moving data
// between the host and a backend is explicit: copy_from_host, to_host.
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
#include "ouro/core/memory.hpp"
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
        return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{tensor_alignment}));
    }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{tensor_alignment}); }
    template <class U>
    bool operator==(const aligned_allocator<U>&) const noexcept {
        return true;
    }
};

template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

// A flat buffer in B's memory (the parameter store's, an optimiser's state): an aligned vector on
// a host backend, a device_buffer elsewhere. resize(n) zeroes what it adds in both.
template <class T, backend B>
using flat_buffer = std::conditional_t<B::host_memory, aligned_vector<T>, device_buffer<T, B>>;

template <class T>
void zero_fill(aligned_vector<T>& v) {
    std::fill(v.begin(), v.end(), T{});
}
template <class T, class B>
void zero_fill(device_buffer<T, B>& d) {
    d.zero();
}

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
    bool operator==(const tensor_allocator<U>&) const noexcept {
        return true;
    }

private:
    static inline const bool poison_ = [] {
        const char* v = std::getenv("OURO_POISON_TENSORS");
        return v != nullptr && v[0] == '1';
    }();
};

// A non-owning view of contiguous row-major data in B's memory. Cheap to copy; never outlives its
// owner. data() is B's pointer (a device address for a GPU backend); element access from the host
// exists only where B::host_memory.
template <class T, backend B = cpu>
class tensor_view {
public:
    using value_type = std::remove_const_t<T>;
    using backend_type = B;

    tensor_view() = default;
    tensor_view(T* data, const shape& s) : data_(data), shape_(s) {}
    // A mutable view converts to a read-only one.
    template <class U>
    requires(std::is_const_v<T>&& std::is_same_v<std::remove_const_t<T>, U>) tensor_view(const tensor_view<U, B>& other)
        : data_(other.data()), shape_(other.dims()) {}

    T* data() const { return data_; }
    const shape& dims() const { return shape_; }
    std::int64_t dim(int axis) const { return shape_[axis]; }
    int rank() const { return shape_.rank(); }
    std::int64_t numel() const { return shape_.numel(); }
    bool empty() const { return numel() == 0; }
    // An optional tensor argument is passed as a default-constructed view: rank 0, no data.
    bool absent() const { return rank() == 0 && data_ == nullptr; }
    T& operator[](std::int64_t i) const requires(B::host_memory) { return data_[i]; }
    T* begin() const requires(B::host_memory) { return data_; }
    T* end() const requires(B::host_memory) { return data_ + numel(); }

    // The same data seen with another shape of equal element count.
    tensor_view reshaped(const shape& s) const {
        if (s.numel() != numel()) fail("reshape: expected ", numel(), " elements, found shape ", s);
        return tensor_view(data_, s);
    }

private:
    T* data_ = nullptr;
    shape shape_;
};

// An owning dense tensor in B's memory: 64-byte aligned blocks of the buffer cache for a host
// backend (ouro::cpu), a device_buffer for the others.
// resize() keeps capacity, so a module that reuses its buffers allocates only on the first step;
// release() gives the storage back (to the buffer cache on the host), where the next resize finds it again.
template <class T, backend B = cpu>
class tensor {
public:
    using value_type = T;
    using backend_type = B;

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
    void fill(T value) requires(B::host_memory) { std::fill(data_.begin(), data_.end(), value); }
    void zero() {
        if constexpr (B::host_memory) fill(T{});
        else
            data_.zero();
    }

    T* data() { return data_.data(); }
    const T* data() const { return data_.data(); }
    const shape& dims() const { return shape_; }
    std::int64_t dim(int axis) const { return shape_[axis]; }
    int rank() const { return shape_.rank(); }
    std::int64_t numel() const { return shape_.numel(); }
    bool empty() const { return numel() == 0; }
    T& operator[](std::int64_t i) requires(B::host_memory) { return data_[static_cast<std::size_t>(i)]; }
    const T& operator[](std::int64_t i) const requires(B::host_memory) { return data_[static_cast<std::size_t>(i)]; }
    T* begin() requires(B::host_memory) { return data(); }
    T* end() requires(B::host_memory) { return data() + numel(); }
    const T* begin() const requires(B::host_memory) { return data(); }
    const T* end() const requires(B::host_memory) { return data() + numel(); }

    tensor_view<T, B> view() { return {data(), shape_}; }
    tensor_view<const T, B> view() const { return {data(), shape_}; }
    operator tensor_view<T, B>() { return view(); }
    operator tensor_view<const T, B>() const { return view(); }

private:
    // Running out of memory is an ouro::error that names the shape, not a bare std::bad_alloc.
    [[noreturn]] static void out_of_memory(const shape& s) {
        fail("cannot allocate a tensor of shape ", s, " (", s.bytes(sizeof(T)), " bytes): out of memory");
    }
    using storage = std::conditional_t<B::host_memory, std::vector<T, tensor_allocator<T>>, device_buffer<T, B>>;

    static storage allocate(const shape& s, T fill) {
        const auto n = static_cast<std::size_t>(s.bytes(sizeof(T)) / static_cast<std::int64_t>(sizeof(T)));
        try {
            if constexpr (B::host_memory) {
                return storage(n, fill);
            } else {
                storage d(n);  // zero-filled
                if (fill != T{} && n != 0) {
                    const std::vector<T> host(n, fill);
                    backend_memory<B>::copy_from_host(d.data(), host.data(), n * sizeof(T));
                }
                return d;
            }
        } catch (const std::bad_alloc&) {
            out_of_memory(s);
        } catch (const std::length_error&) {
            out_of_memory(s);
        }
    }

    storage data_;
    shape shape_;
};

// Copies a host view into a new owning host tensor.
template <class T>
tensor<std::remove_const_t<T>> to_tensor(tensor_view<T> v) {
    tensor<std::remove_const_t<T>> t(v.dims());
    std::copy(v.begin(), v.end(), t.begin());
    return t;
}

// src into dst, both in B's memory. Shapes must match. (T is taken from dst, so a mutable src
// converts.)
template <class T, backend B>
void copy(tensor_view<const std::type_identity_t<T>, B> src, tensor_view<T, B> dst) {
    if (!(dst.dims() == src.dims())) fail("copy: expected a destination of shape ", src.dims(), ", found ", dst.dims());
    const auto bytes = static_cast<std::size_t>(src.numel()) * sizeof(T);
    if (bytes == 0) return;
    if constexpr (B::host_memory) std::memcpy(dst.data(), src.data(), bytes);
    else
        backend_memory<B>::copy(dst.data(), src.data(), bytes);
}

// Host data into B's memory (a plain copy when B keeps host memory). Shapes must match.
template <class T, backend B>
void copy_from_host(tensor_view<const std::type_identity_t<T>> src, tensor_view<T, B> dst) {
    if (!(dst.dims() == src.dims()))
        fail("copy_from_host: expected a destination of shape ", src.dims(), ", found ", dst.dims());
    const auto bytes = static_cast<std::size_t>(src.numel()) * sizeof(T);
    if (bytes == 0) return;
    if constexpr (B::host_memory) std::memcpy(dst.data(), src.data(), bytes);
    else
        backend_memory<B>::copy_from_host(dst.data(), src.data(), bytes);
}

// B's data into a new host tensor: the explicit way out of a device (the probe, OLE, FID and the
// files stay on the host).
template <class T, backend B>
tensor<std::remove_const_t<T>> to_host(tensor_view<T, B> src) {
    tensor<std::remove_const_t<T>> out(src.dims());
    const auto bytes = static_cast<std::size_t>(src.numel()) * sizeof(T);
    if (bytes == 0) return out;
    if constexpr (B::host_memory) std::memcpy(out.data(), src.data(), bytes);
    else
        backend_memory<B>::copy_to_host(out.data(), src.data(), bytes);
    return out;
}

// f(x) for a host input x and a function of B's memory (a model's predict or encode), with the
// result as a host view: f(x) itself when B is ouro::cpu; else x copied to B through `device_in`
// and the result copied back into `host_out` (both reused from call to call).
template <backend B, class T, class F>
tensor_view<const T> call_through(F&& f, tensor_view<const T> x, tensor<T, B>& device_in, tensor<T>& host_out) {
    if constexpr (std::is_same_v<B, cpu>) {
        return f(x);
    } else {
        device_in.resize(x.dims());
        copy_from_host(x, device_in.view());
        host_out = to_host(tensor_view<const T, B>(f(tensor_view<const T, B>(device_in.view()))));
        return host_out.view();
    }
}

// n elements of B's memory at `data`, readable on the host: the memory itself on a host backend,
// else a copy (for writers such as checkpoints, which serialise a store's buffers).
template <class T, backend B>
class host_readable {
public:
    host_readable(const T* data, std::int64_t n) {
        if constexpr (B::host_memory) {
            data_ = data;
        } else {
            copy_ = to_host(tensor_view<const T, B>(data, shape{n}));
            data_ = copy_.data();
        }
    }
    const T* data() const { return data_; }

private:
    const T* data_ = nullptr;
    tensor<T> copy_;
};

}  // namespace ouro
