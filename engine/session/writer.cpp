#include "session/writer.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>
#include <vector>

#include <zstd.h>

#include "common/clock.h"
#include "common/ring.h"
#include "session/chunks.h"

namespace shoal::session {

namespace {
constexpr std::size_t queue_capacity = 1024;  // more than any receiver has buffers

struct job {
    std::uint32_t chunk;
    const std::byte* data;
    std::size_t size;
};
}  // namespace

struct writer::state {
    int fd = -1;
    bool discard = false;
    wire::session_manifest manifest;
    double throttle_Bps = 0;
    spsc_ring<job> jobs{queue_capacity};
    spsc_ring<write_done> done{queue_capacity};
    std::atomic<bool> stop{false};
    std::atomic<bool> failed{false};
    std::optional<error> failure;
    std::thread thread;
    std::size_t written_count = 0;

    void run() {
        ZSTD_DCtx* dctx = ZSTD_createDCtx();
        std::vector<std::byte> raw(wire::chunk_raw_size_max);
        std::int64_t throttle_start_ns = time::monotonic_ns();
        std::uint64_t throttled_bytes = 0;
        while (!stop.load(std::memory_order_acquire)) {
            job j;
            if (!jobs.dequeue(j)) {
                time::sleep_for_ns(50'000);
                continue;
            }
            const auto& entry = manifest.chunks[j.chunk];
            write_done result{j.chunk, false, entry.raw_size};
            auto st = verify_and_decode(entry, {j.data, j.size}, {raw.data(), entry.raw_size}, dctx);
            if (st && !discard) {
                std::size_t at = 0;
                while (at < entry.raw_size) {
                    const ssize_t n = pwrite(fd, raw.data() + at, entry.raw_size - at,
                                             static_cast<off_t>(entry.target_offset + at));
                    if (n < 0 && errno == EINTR) {
                        continue;
                    }
                    if (n <= 0) {
                        const int e = n < 0 ? errno : ENOSPC;
                        failure = error::format(e == ENOSPC ? errc::no_space : errc::io, e,
                                                "writing {} bytes at offset {} of the target",
                                                entry.raw_size, entry.target_offset + at);
                        failed.store(true, std::memory_order_release);
                        ZSTD_freeDCtx(dctx);
                        return;
                    }
                    at += static_cast<std::size_t>(n);
                }
            }
            result.written = st.has_value();
            if (result.written && ++written_count == manifest.chunks.size() && !discard &&
                fdatasync(fd) != 0 && errno != EINVAL) {
                failure = error(errc::io, errno, "flushing the target");
                failed.store(true, std::memory_order_release);
                break;
            }
            if (throttle_Bps > 0) {
                // A deliberately slow disk, for tests of the slow-receiver policy.
                throttled_bytes += entry.raw_size;
                const auto due = throttle_start_ns +
                                 static_cast<std::int64_t>(static_cast<double>(throttled_bytes) / throttle_Bps * 1e9);
                time::sleep_until_ns(due);
            }
            while (!done.enqueue(result) && !stop.load(std::memory_order_acquire)) {
                time::sleep_for_ns(50'000);
            }
        }
        ZSTD_freeDCtx(dctx);
    }
};

writer::writer(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}

writer::~writer() {
    _s->stop.store(true, std::memory_order_release);
    if (_s->thread.joinable()) {
        _s->thread.join();
    }
    if (_s->fd >= 0) {
        close(_s->fd);
    }
}

result<std::unique_ptr<writer>> writer::open(const std::string& path,
                                             const wire::session_manifest& manifest,
                                             double throttle_Bps) {
    auto s = std::make_unique<state>();
    s->manifest = manifest;
    s->throttle_Bps = throttle_Bps;
    s->discard = path == "/dev/null";
    if (!s->discard) {
        s->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            return error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                                 "opening target {}", path);
        }
        struct stat st{};
        if (fstat(s->fd, &st) != 0) {
            return error::format(errc::io, errno, "stat of target {}", path);
        }
        if (S_ISBLK(st.st_mode)) {
            std::uint64_t size = 0;
            if (ioctl(s->fd, BLKGETSIZE64, &size) != 0) {
                return error::format(errc::io, errno, "size of block device {}", path);
            }
            if (size < manifest.target_size) {
                return error::format(errc::no_space, 0,
                                     "target {} holds {} bytes, the image needs {}", path, size,
                                     manifest.target_size);
            }
        } else if (S_ISREG(st.st_mode)) {
            // Claim the space now: a full disk is found before any data moves.
            const int e = posix_fallocate(s->fd, 0, static_cast<off_t>(manifest.target_size));
            if (e != 0 && e != EOPNOTSUPP) {
                return error::format(e == ENOSPC ? errc::no_space : errc::io, e,
                                     "reserving {} bytes for target {}", manifest.target_size, path);
            }
        } else {
            return error::format(errc::invalid_argument, 0,
                                 "target {} is neither a file nor a block device", path);
        }
    }
    auto* raw = s.get();
    s->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<writer>(new writer(std::move(s)));
}

bool writer::submit(std::uint32_t chunk, std::span<const std::byte> wire) noexcept {
    return _s->jobs.enqueue(job{chunk, wire.data(), wire.size()});
}

std::size_t writer::collect(write_done* out, std::size_t count) noexcept {
    return _s->done.dequeue_burst(out, count);
}

const error* writer::failure() const noexcept {
    return _s->failed.load(std::memory_order_acquire) ? &*_s->failure : nullptr;
}

}  // namespace shoal::session
