// Memory belongs to the backend (issue #14). A backend whose memory the host cannot read
// (B::host_memory == false: a GPU, or the test-only cpu_strict) says how its blocks are made,
// freed, zeroed and copied by specialising backend_memory<B>:
//
//   template <> struct backend_memory<my_backend> {
//       static void* allocate(std::size_t bytes);                          // ouro::error when out of memory
//       static void deallocate(void* p, std::size_t bytes) noexcept;
//       static void zero(void* p, std::size_t bytes);
//       static void copy(void* dst, const void* src, std::size_t bytes);            // B to B
//       static void copy_from_host(void* dst, const void* host_src, std::size_t bytes);
//       static void copy_to_host(void* host_dst, const void* src, std::size_t bytes);
//   };
//
// device_buffer<T, B> is the owning block built on it: what ouro::tensor<T, B> and
// parameter_store<T, B> keep for such a backend. Host backends (ouro::cpu) keep std::vector
// storage from the buffer cache instead, and need no specialisation.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"

namespace ouro {

// No primary definition: using a device backend's memory without its header is a compile error
// that names backend_memory<B>.
template <class B>
struct backend_memory;

template <class B>
concept device_backend = backend<B> && !B::host_memory && requires(void* p, const void* q, std::size_t n) {
    { backend_memory<B>::allocate(n) } -> std::same_as<void*>;
    backend_memory<B>::deallocate(p, n);
    backend_memory<B>::zero(p, n);
    backend_memory<B>::copy(p, q, n);
    backend_memory<B>::copy_from_host(p, q, n);
    backend_memory<B>::copy_to_host(p, q, n);
};

// An owning block of `size()` elements of T in B's memory. resize() keeps the capacity (a module
// that reuses its buffers allocates only on its first step) and, like std::vector, keeps the
// first min(old, new) elements; elements a resize adds are zero.
template <class T, class B>
class device_buffer {
    static_assert(std::is_trivially_copyable_v<T>, "device_buffer<T, B>: T must be trivially copyable");

public:
    using value_type = T;

    device_buffer() = default;
    explicit device_buffer(std::size_t n) { resize(n); }
    device_buffer(const device_buffer& other) {
        resize(other.size_);
        if (size_ != 0) backend_memory<B>::copy(data_, other.data_, bytes_(size_));
    }
    device_buffer(device_buffer&& other) noexcept { swap(other); }
    device_buffer& operator=(device_buffer other) noexcept {
        swap(other);
        return *this;
    }
    ~device_buffer() { free_(); }

    void resize(std::size_t n) {
        if (n > capacity_) {
            if (n > std::size_t(-1) / sizeof(T)) fail("device_buffer: ", n, " elements do not fit in memory");
            T* grown = static_cast<T*>(backend_memory<B>::allocate(bytes_(n)));
            const std::size_t kept = size_;
            if (kept != 0) backend_memory<B>::copy(grown, data_, bytes_(kept));
            free_();
            data_ = grown;
            size_ = kept;
            capacity_ = n;
        }
        if (n > size_) backend_memory<B>::zero(data_ + size_, bytes_(n - size_));
        size_ = n;
    }
    void swap(device_buffer& other) noexcept {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
        std::swap(capacity_, other.capacity_);
    }
    void zero() {
        if (size_ != 0) backend_memory<B>::zero(data_, bytes_(size_));
    }

    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }

private:
    static std::size_t bytes_(std::size_t n) { return n * sizeof(T); }
    void free_() noexcept {
        if (data_ != nullptr) backend_memory<B>::deallocate(data_, bytes_(capacity_));
        data_ = nullptr;
        size_ = capacity_ = 0;
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace ouro
