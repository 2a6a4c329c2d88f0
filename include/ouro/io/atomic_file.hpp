// Atomic file writes and the run directory's lock. A file is written to a temporary name beside
// its target, synced to disk, then renamed over the target and the folder synced, so a reader, an
// interrupted run or a power cut sees either the old file or the new one, never half of either.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>

#include "ouro/core/error.hpp"

namespace ouro::io {

namespace detail {
// Temporary names carry this marker, the writer's pid and a per-process counter, so two writers
// (threads or processes) never share one, and remove_stale_temporaries can recognise leftovers.
inline constexpr std::string_view temporary_marker = ".ouro-tmp-";

inline std::filesystem::path temporary_name(const std::filesystem::path& target) {
    static std::atomic<unsigned long> counter{0};
    std::filesystem::path tmp = target;
    tmp += std::string(temporary_marker) + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    return tmp;
}

// fsync of a folder, so that a rename inside it survives a power cut. Some file systems refuse
// fsync on a folder (EINVAL); that is not an error of ours.
inline void sync_folder(const std::filesystem::path& folder, const std::string& what) {
    const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    if (rc != 0 && saved != EINVAL && saved != EROFS)
        fail(what, ": syncing folder ", folder.string(), " failed: ", std::strerror(saved));
}
// Fault injection for the kill-and-resume tests, compiled in only with OURO_FAULT_INJECTION (a
// test build of an example; never the library's users). OURO_FAULT_KILL="<substring>#<n>@<stage>"
// kills the process with SIGKILL at the n-th write of this process whose target path contains
// <substring>, at one of the stages a power cut or an OOM kill could hit:
//   partial  – half of the bytes in the temporary file, not synced;
//   unmoved  – the temporary complete and closed, the target not yet replaced;
//   moved    – the target replaced, its folder not yet synced.
// OURO_FAULT_TRACE=1 prints "ouro-fault: write <count> <path>" to stderr for every write, so a
// test can see which writes a run makes.
enum class fault_stage { partial, unmoved, moved };
#if defined(OURO_FAULT_INJECTION)
inline void maybe_inject_fault(const std::filesystem::path& target, fault_stage stage) {
    static std::atomic<long> writes{0}, matches{0};
    if (stage == fault_stage::partial) {
        const long n = ++writes;
        if (const char* trace = std::getenv("OURO_FAULT_TRACE"); trace && *trace == '1')
            std::fprintf(stderr, "ouro-fault: write %ld %s\n", n, target.c_str());
    }
    const char* spec = std::getenv("OURO_FAULT_KILL");
    if (!spec) return;
    const std::string s(spec);
    const auto hash = s.rfind('#'), at = s.rfind('@');
    if (hash == std::string::npos || at == std::string::npos || at < hash) return;
    const std::string substring = s.substr(0, hash), stage_name = s.substr(at + 1);
    const long wanted = std::atol(s.substr(hash + 1, at - hash - 1).c_str());
    if (target.string().find(substring) == std::string::npos) return;
    static constexpr const char* names[] = {"partial", "unmoved", "moved"};
    if (stage == fault_stage::partial && ++matches != wanted) return;
    if (stage != fault_stage::partial && matches != wanted) return;
    if (stage_name != names[static_cast<int>(stage)]) return;
    std::fprintf(stderr, "ouro-fault: SIGKILL at %s of write %ld of '%s' (%s)\n", names[static_cast<int>(stage)],
                 wanted, substring.c_str(), target.c_str());
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
}
#else
inline void maybe_inject_fault(const std::filesystem::path&, fault_stage) {}
#endif
}  // namespace detail

// Writes the concatenation of `pieces` to `target` atomically: a fresh temporary file beside it,
// written, fsync'd and closed with every error checked, renamed over `target`, then the folder
// fsync'd. On any failure the temporary is removed, `target` keeps its previous content, and an
// ouro::error names the target and the cause ("disk full?" for ENOSPC/EFBIG). Pieces let a writer
// send a large file from where its data already lives (a pool, a model's weights) instead of
// assembling a copy of the whole file in memory first (#13: no step holds its pool twice).
inline void write_file_atomically(const std::filesystem::path& target, std::span<const std::string_view> pieces) {
    namespace fs = std::filesystem;
    const std::string what = target.string();
    std::size_t total = 0;
    for (const std::string_view piece : pieces) total += piece.size();
    if (target.has_parent_path()) {
        std::error_code ec;
        fs::create_directories(target.parent_path(), ec);
        if (ec) fail(what, ": cannot create folder ", target.parent_path().string(), ": ", ec.message());
    }
    const fs::path tmp = detail::temporary_name(target);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail(what, ": cannot create temporary file ", tmp.string(), ": ", std::strerror(errno));
    auto give_up = [&](const char* step, int err) {
        ::close(fd);  // may fail again; the first error is the one to report
        ::unlink(tmp.c_str());
        const bool full = err == ENOSPC || err == EFBIG || err == EDQUOT;
        fail(what, ": ", step, " ", total, " bytes failed: ", std::strerror(err), full ? " (disk full?)" : "");
    };
    // Bytes [done, end) of the whole, piece by piece, each write retried on EINTR.
    std::size_t done = 0;
    auto write_up_to = [&](std::size_t end) {
        std::size_t piece_begin = 0;
        for (const std::string_view piece : pieces) {
            const std::size_t piece_end = piece_begin + piece.size();
            while (done < end && done < piece_end) {
                const std::size_t want = std::min(end, piece_end) - done;
                const ::ssize_t n = ::write(fd, piece.data() + (done - piece_begin), want);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    give_up("writing", errno);
                }
                done += static_cast<std::size_t>(n);
            }
            piece_begin = piece_end;
        }
    };
#if defined(OURO_FAULT_INJECTION)
    write_up_to(total / 2);  // the "partial" stage: half of the bytes written, then the fault
    detail::maybe_inject_fault(target, detail::fault_stage::partial);
#endif
    write_up_to(total);
    if (::fsync(fd) != 0 && errno != EINVAL) give_up("syncing", errno);
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail(what, ": closing the temporary file after ", total, " bytes failed: ", std::strerror(err));
    }
    detail::maybe_inject_fault(target, detail::fault_stage::unmoved);
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail(what, ": cannot move the temporary file into place: ", std::strerror(err));
    }
    detail::maybe_inject_fault(target, detail::fault_stage::moved);
    detail::sync_folder(target.parent_path(), what);
}

// Writes `bytes` to `target` atomically (as above, in one piece).
inline void write_file_atomically(const std::filesystem::path& target, std::string_view bytes) {
    write_file_atomically(target, std::span<const std::string_view>(&bytes, 1));
}

// Removes temporaries that write_file_atomically left in `folder` (not recursively) when its
// process died mid-write. Call it only while holding the folder's run_directory_lock, so that no
// live writer's temporary is among them. Returns how many were removed.
inline int remove_stale_temporaries(const std::filesystem::path& folder) {
    namespace fs = std::filesystem;
    int removed = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
        if (it->is_symlink()) {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_regular_file() &&
            it->path().filename().string().find(detail::temporary_marker) != std::string::npos) {
            std::error_code rm;
            if (fs::remove(it->path(), rm)) ++removed;
        }
    }
    return removed;
}

// An exclusive lock on a run directory (flock on <dir>/.lock), held for the object's lifetime.
// A second process that asks for it gets an ouro::error at once instead of two runs writing the
// same files. The OS drops the lock when the holder exits, even by SIGKILL, so a killed run never
// leaves the directory locked.
class run_directory_lock {
public:
    explicit run_directory_lock(const std::filesystem::path& dir) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) fail(dir.string(), ": cannot create the run directory: ", ec.message());
        const auto file = dir / ".lock";
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail(file.string(), ": cannot open the run directory's lock file: ", std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            std::string holder(32, '\0');
            const ::ssize_t n = ::pread(fd_, holder.data(), holder.size(), 0);
            holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
            ::close(fd_);
            if (err == EWOULDBLOCK)
                fail(dir.string(), ": another run is using this run directory",
                     holder.empty() ? std::string() : " (process " + holder + ")",
                     "; wait for it to finish, or choose another --out");
            fail(file.string(), ": cannot lock the run directory: ", std::strerror(err));
        }
        const std::string pid = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
    }
    run_directory_lock(const run_directory_lock&) = delete;
    run_directory_lock& operator=(const run_directory_lock&) = delete;
    ~run_directory_lock() {
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }

private:
    int fd_ = -1;
};

// The whole of a (small) file as a string, or an ouro::error naming the file.
inline std::string read_text_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file.string(), ": cannot open for reading");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail(file.string(), ": read error");
    return text;
}

}  // namespace ouro::io
