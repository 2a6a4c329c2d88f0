// The process-wide cache of large tensor buffers. Modules free the activations nobody needs any
// more (see nn::forward_context::inference); the cache keeps those blocks so that the next step
// takes them back without a trip to the kernel: a large block from malloc is a fresh mmap whose
// pages fault in one by one, which costs more than the arithmetic of a small layer.
//
// Blocks of at least `buffer_cache::min_bytes` are rounded up to a size class (eight classes per
// power of two, so at most 12.5% is wasted) and cached by size; smaller blocks go straight to
// operator new. Cached bytes above `limit()` are handed back to the system at once.
//
// The caching itself is block_cache<Blocks>, over any source of raw blocks: host memory here, a
// GPU's memory in backend/cuda/memory.cuh (where every size is cached: cudaMalloc is slow at any
// size).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace ouro {

// Host memory for the cache: 64-byte aligned operator new; blocks below 256 KiB are not cached
// (malloc's own bins serve them well).
struct host_blocks {
    static constexpr std::size_t min_cached_bytes = std::size_t{256} << 10;
    static constexpr std::size_t alignment = 64;
    static void* allocate(std::size_t bytes) {
        return ::operator new (bytes, std::align_val_t{alignment});
    }  // std::bad_alloc
    static void deallocate(void* p) noexcept { ::operator delete (p, std::align_val_t{alignment}); }
};

// Blocks: allocate(bytes) (throws std::bad_alloc), deallocate(p), min_cached_bytes, alignment.
template <class Blocks>
class block_cache {
public:
    static constexpr std::size_t min_bytes = Blocks::min_cached_bytes;
    static constexpr std::size_t alignment = Blocks::alignment;

    // The size class a request of `bytes` is served from: `bytes` rounded up to a multiple of an
    // eighth of its power of two (at least 256 bytes, for a cache that keeps small blocks too).
    static constexpr std::size_t size_class(std::size_t bytes) {
        if (uncached_(bytes)) return bytes;
        if (bytes <= 256) return 256;
        const int width = std::bit_width(bytes - 1);             // 2^(width-1) < bytes <= 2^width
        const std::size_t step = std::size_t{1} << (width - 4);  // an eighth of 2^(width-1)
        return (bytes + step - 1) / step * step;
    }

    // A block of at least `bytes`, 64-byte aligned. Throws std::bad_alloc. A large request takes
    // the smallest cached block that fits and is at most twice its size class (a pass's tensors come
    // in a few sizes that rise and fall together, so exact matches alone would leave blocks of
    // other sizes idle beside fresh ones). A fresh allocation that fails frees the idle cached blocks
    // and tries once more before it lets std::bad_alloc out.
    void* acquire(std::size_t bytes) {
        const std::size_t size = size_class(bytes);
        if (uncached_(size)) return Blocks::allocate(size);
        std::lock_guard lock(mutex_);
        void* p = nullptr;
        std::size_t block = size;
        auto it = free_.lower_bound(size);
        if (it != free_.end() && it->first <= 2 * size) {
            block = it->first;
            p = it->second.back();
            it->second.pop_back();
            if (it->second.empty()) free_.erase(it);
            cached_bytes_ -= block;
        } else {
            try {
                p = Blocks::allocate(size);
            } catch (const std::bad_alloc&) {  // the cache's idle blocks may be what the system lacks
                if (free_.empty()) throw;
                free_cached_locked();
                p = Blocks::allocate(size);
            }
        }
        try {
            live_.emplace(p, block);
        } catch (...) {
            Blocks::deallocate(p);
            throw;
        }
        live_bytes_ += block;
        if (live_bytes_ > peak_live_bytes_) peak_live_bytes_ = live_bytes_;
        return p;
    }

    // Gives back a block from acquire(bytes) with the same `bytes`.
    void release(void* p, std::size_t bytes) noexcept {
        if (uncached_(size_class(bytes))) {
            Blocks::deallocate(p);
            return;
        }
        std::lock_guard lock(mutex_);
        const auto live = live_.find(p);
        const std::size_t block = live->second;  // acquire recorded every large block it handed out
        live_.erase(live);
        live_bytes_ -= block;
        if (cached_bytes_ + block <= limit_) {
            try {
                free_[block].push_back(p);
                cached_bytes_ += block;
                return;
            } catch (...) {  // no room for the bookkeeping: free the block instead
            }
        }
        Blocks::deallocate(p);
    }

    // Frees every cached block (live tensors are untouched).
    void clear() noexcept {
        std::lock_guard lock(mutex_);
        free_cached_locked();
    }

    // The most bytes kept cached (default 8 GiB); lowering it frees what is over.
    void set_limit(std::size_t bytes) noexcept {
        {
            std::lock_guard lock(mutex_);
            limit_ = bytes;
            if (cached_bytes_ <= limit_) return;
        }
        clear();
    }
    std::size_t limit() const noexcept {
        std::lock_guard lock(mutex_);
        return limit_;
    }
    std::size_t cached_bytes() const noexcept {
        std::lock_guard lock(mutex_);
        return cached_bytes_;
    }

    // Bytes of large blocks in use (acquired, not released), and the most since reset_peak(): what
    // a pass needs at once, without the cache's own reserve.
    std::size_t live_bytes() const noexcept {
        std::lock_guard lock(mutex_);
        return live_bytes_;
    }
    std::size_t peak_live_bytes() const noexcept {
        std::lock_guard lock(mutex_);
        return peak_live_bytes_;
    }
    void reset_peak() noexcept {
        std::lock_guard lock(mutex_);
        peak_live_bytes_ = live_bytes_;
    }

protected:
    block_cache() = default;

private:
    // Blocks below min_bytes bypass the cache (none when min_bytes is 0).
    static constexpr bool uncached_(std::size_t bytes) {
        if constexpr (min_bytes == 0) return false;
        else
            return bytes < min_bytes;
    }

private:
    void free_cached_locked() noexcept {
        for (auto& [size, blocks] : free_)
            for (void* p : blocks) Blocks::deallocate(p);
        free_.clear();
        cached_bytes_ = 0;
    }

    mutable std::mutex mutex_;
    std::map<std::size_t, std::vector<void*>> free_;  // block size -> cached blocks
    std::unordered_map<void*, std::size_t> live_;     // block -> its size, for blocks in use
    std::size_t cached_bytes_ = 0, live_bytes_ = 0, peak_live_bytes_ = 0;
    std::size_t limit_ = std::size_t{8} << 30;
};

// The process's cache of host tensor buffers.
class buffer_cache : public block_cache<host_blocks> {
public:
    // The one cache of this process. Never destroyed: thread_local buffers may return blocks to it
    // after static destructors have run.
    static buffer_cache& instance() {
        static buffer_cache* cache = new buffer_cache();
        return *cache;
    }

private:
    buffer_cache() = default;
};

}  // namespace ouro
