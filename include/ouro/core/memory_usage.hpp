// The process's memory as the OS counts it: resident set now and its high-water mark. Long loops
// record both per generation (loop diagnostics), so that a leak shows as a resident set that grows
// from one generation to the next instead of as an out-of-memory kill hours into a run.
#pragma once

#include <sys/resource.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cmath>
#include <cstdio>

namespace ouro {

struct memory_usage {
    double resident_mib = NAN;  // resident set size now (Linux: /proc/self/statm); NaN where unknown
    // The largest resident set since reset_peak_memory() last succeeded, else since the process
    // started (Linux: VmHWM of /proc/self/status; elsewhere getrusage's ru_maxrss, never reset).
    double peak_resident_mib = NAN;
    // What the allocator has handed out and not had back (glibc 2.33+: mallinfo2's heap and mmap'd
    // bytes in use); NaN elsewhere. Unlike the resident set it excludes free memory the allocator
    // keeps, so a leak shows in it and heap fragmentation does not.
    double heap_in_use_mib = NAN;
};

// Starts a new high-water mark of the resident set, so that the next peak_resident_mib is the
// peak of what runs from here (Linux: writing 5 to /proc/self/clear_refs, since Linux 4.0).
// Returns false where the platform cannot: the peak then stays the whole process's.
inline bool reset_peak_memory() {
#if defined(__linux__)
    if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
        const bool written = std::fputs("5", f) >= 0;
        return std::fclose(f) == 0 && written;
    }
#endif
    return false;
}

// Hands the allocator's free pages back to the OS (glibc: malloc_trim), so that the resident set
// from here is what is in use. glibc keeps freed memory, and once a large block has been freed it
// serves later large blocks from its heap (its mmap threshold grows to 32 MiB), whose free pages stay
// resident: without this a loop's resident set creeps up by the fragments of every step before it
// (MNIST smoke profile, SYN alone: +3.5 MiB a generation). Fixing the threshold instead keeps it
// flat too, but every large tensor is then a fresh mapping: 40% slower there. A no-op elsewhere.
inline void release_free_memory() {
#if defined(__GLIBC__)
    ::malloc_trim(0);
#endif
}

// Reads both figures; a figure the platform does not give stays NaN (never an error: it is a
// diagnostic, and a run must not fail for want of it).
inline memory_usage current_memory_usage() {
    memory_usage m;
    constexpr double mib = 1024.0 * 1024.0;
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 33)
    const struct mallinfo2 heap = ::mallinfo2();
    m.heap_in_use_mib = static_cast<double>(heap.uordblks + heap.hblkhd) / mib;
#endif
#endif
#if defined(__linux__)
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
        unsigned long long size = 0, resident = 0;
        if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) {
            const long page = ::sysconf(_SC_PAGESIZE);
            if (page > 0) m.resident_mib = static_cast<double>(resident) * static_cast<double>(page) / mib;
        }
        std::fclose(f);
    }
    if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
        char line[256];
        unsigned long long kib = 0;
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
                m.peak_resident_mib = static_cast<double>(kib) / 1024.0;
                break;
            }
        std::fclose(f);
        if (!std::isnan(m.peak_resident_mib)) return m;
    }
#endif
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0 && usage.ru_maxrss > 0) {
#if defined(__APPLE__)
        m.peak_resident_mib = static_cast<double>(usage.ru_maxrss) / mib;  // bytes on macOS
#else
        m.peak_resident_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux and the BSDs
#endif
    }
    return m;
}

}  // namespace ouro
