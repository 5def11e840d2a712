#include "session/writer.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <liburing.h>
#include <zstd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pool.h"
#include "common/ring.h"
#include "session/chunks.h"

namespace shoal::session {

namespace {
constexpr std::size_t queue_capacity = 1024;  // more than any receiver has buffers
constexpr unsigned writes_in_flight_max = 4;   // decompressed chunks being written at once
constexpr std::size_t direct_alignment = 4096;

struct job {
    std::uint32_t chunk;
    const std::byte* data;
    std::size_t size;
};

// A decompressed chunk on its way to the disk.
struct write_slot {
    std::byte* data = nullptr;        // this slot's own buffer, for decompressed chunks
    const std::byte* source = nullptr;  // what is written: data, or a raw chunk's wire bytes
    std::uint32_t chunk = 0;
    std::size_t size = 0;
    std::size_t done = 0;   // bytes already written
    bool busy = false;
};
}  // namespace

struct writer::state {
    int fd = -1;
    std::unique_ptr<target_placement> placement;  // set: chunks go through it, not fd
    std::string path;
    bool resume = false;
    std::vector<std::uint8_t> chunk_on_disk;  // written or found present, per chunk
    std::size_t on_disk_count = 0;
    bool discard = false;
    bool direct = false;
    wire::session_manifest manifest;
    double throttle_Bps = 0;
    spsc_ring<job> jobs{queue_capacity};
    std::atomic<std::uint32_t> jobs_posted{0};  // bumped per submit: the writer sleeps on it
    spsc_ring<write_done> done{queue_capacity};
    std::atomic<bool> stop{false};
    std::atomic<bool> failed{false};
    std::optional<error> failure;
    std::thread thread;
    std::optional<buffer_pool> buffers;
    io_uring ring{};
    bool ring_ready = false;
    write_slot slots[writes_in_flight_max];
    unsigned in_flight = 0;

    void post(const write_done& d) {
        while (!done.enqueue(d) && !stop.load(std::memory_order_acquire)) {
            time::sleep_for_ns(50'000);
        }
    }

    void fail(const error& e) {
        failure = e;
        failed.store(true, std::memory_order_release);
    }

    // Queues the rest of slot i's bytes as one write.
    void submit_write(unsigned i) {
        write_slot& w = slots[i];
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        SHOAL_ASSERT(sqe != nullptr);  // the ring has an entry per slot
        const auto& entry = manifest.chunks[w.chunk];
        io_uring_prep_write(sqe, fd, w.source + w.done, static_cast<unsigned>(w.size - w.done),
                            entry.target_offset + w.done);
        io_uring_sqe_set_data64(sqe, i);
        io_uring_submit(&ring);
    }

    // A chunk is on disk: after the last one, flush before saying so.
    bool finish_chunk(unsigned i) {
        write_slot& w = slots[i];
        w.busy = false;
        --in_flight;
        const write_done d{w.chunk, true, w.size, false};
        if (!chunk_on_disk[w.chunk]) {
            chunk_on_disk[w.chunk] = 1;
            if (++on_disk_count == manifest.chunks.size() && !finish_target()) {
                return false;
            }
        }
        post(d);
        return true;
    }

    // Every chunk is on the target: flush (and for a placement, write what it held back
    // and grow filesystems) before the last chunk is reported, so "complete" means done.
    bool finish_target() {
        if (placement) {
            if (auto st = placement->finish(); !st) {
                fail(st.err());
                return false;
            }
            return true;
        }
        if (!discard && fdatasync(fd) != 0 && errno != EINVAL) {
            fail(error(errc::io, errno, "flushing the target"));
            return false;
        }
        return true;
    }

    // Resume: each chunk whose extent of the target already holds its bytes is reported
    // present. Reads through the page cache with its own descriptor; stops early on stop.
    bool scan_present() {
        const int rfd = placement ? -1 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (rfd < 0 && !placement) {
            log::warn("resume: cannot read target {} ({}); receiving everything", path,
                      std::strerror(errno));
            return true;
        }
        std::byte* buffer = slots[0].data;
        std::uint32_t found = 0;
        std::uint64_t found_bytes = 0;
        std::vector<std::uint32_t> present;
        for (std::uint32_t i = 0; i < manifest.chunks.size() && !stop.load(std::memory_order_acquire); ++i) {
            const auto& entry = manifest.chunks[i];
            if (placement) {
                if (!placement->read_chunk(i, {buffer, entry.raw_size}) ||
                    sha256_of({buffer, entry.raw_size}) != entry.raw_sha256) {
                    continue;
                }
                chunk_on_disk[i] = 1;
                ++on_disk_count;
                ++found;
                found_bytes += entry.raw_size;
                present.push_back(i);
                continue;
            }
            std::size_t got = 0;
            while (got < entry.raw_size) {
                const ssize_t n = pread(rfd, buffer + got, entry.raw_size - got,
                                        static_cast<off_t>(entry.target_offset + got));
                if (n <= 0) {
                    if (n < 0 && errno == EINTR) {
                        continue;
                    }
                    break;
                }
                got += static_cast<std::size_t>(n);
            }
            if (got != entry.raw_size || sha256_of({buffer, got}) != entry.raw_sha256) {
                continue;
            }
            chunk_on_disk[i] = 1;
            ++on_disk_count;
            ++found;
            found_bytes += entry.raw_size;
            present.push_back(i);
        }
        if (rfd >= 0) {
            close(rfd);
        }
        log::info("resume: {} of {} chunks ({} bytes) already on {}", found, manifest.chunks.size(),
                  found_bytes, path);
        // All there: finish the target before the receiver hears of the last one.
        if (on_disk_count == manifest.chunks.size() && !manifest.chunks.empty() && !finish_target()) {
            return false;
        }
        for (const std::uint32_t i : present) {
            post({i, true, manifest.chunks[i].raw_size, true});
        }
        return true;
    }

    bool reap(bool wait) {
        io_uring_cqe* cqe = nullptr;
        if (wait) {
            __kernel_timespec ts{0, 1'000'000};
            if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) != 0) {
                return true;
            }
        }
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            const auto i = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
            const int res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            write_slot& w = slots[i];
            const auto& entry = manifest.chunks[w.chunk];
            if (res == -EINTR || res == -EAGAIN) {
                submit_write(i);
                continue;
            }
            if (res <= 0) {
                const int e = res < 0 ? -res : ENOSPC;
                fail(error::format(e == ENOSPC ? errc::no_space : errc::io, e,
                                   "writing {} bytes at offset {} of the target", w.size - w.done,
                                   entry.target_offset + w.done));
                return false;
            }
            w.done += static_cast<std::size_t>(res);
            if (w.done < w.size) {
                submit_write(i);  // a short write: the rest
            } else if (!finish_chunk(i)) {
                return false;
            }
        }
        return true;
    }

    void run() {
        if (resume && !discard && !scan_present()) {
            return;
        }
        ZSTD_DCtx* dctx = ZSTD_createDCtx();
        std::int64_t throttle_start_ns = time::monotonic_ns();
        std::uint64_t throttled_bytes = 0;
        while (!stop.load(std::memory_order_acquire) && !failed.load(std::memory_order_relaxed)) {
            if (in_flight > 0 && !reap(false)) {
                break;
            }
            unsigned free_slot = writes_in_flight_max;
            for (unsigned i = 0; i < writes_in_flight_max; ++i) {
                if (!slots[i].busy) {
                    free_slot = i;
                    break;
                }
            }
            job j;
            const std::uint32_t posted = jobs_posted.load(std::memory_order_acquire);
            if (free_slot == writes_in_flight_max || !jobs.dequeue(j)) {
                if (in_flight > 0) {
                    if (!reap(true)) {
                        break;
                    }
                } else {
                    // Nothing queued, nothing on its way to the disk: sleep until a submit
                    // (or the destructor) bumps the counter, instead of polling.
                    jobs_posted.wait(posted, std::memory_order_acquire);
                }
                continue;
            }
            const auto& entry = manifest.chunks[j.chunk];
            write_slot& w = slots[free_slot];
            // The hash is checked here, before a byte of this chunk can reach the target.
            // A raw chunk is written from the receiver's buffer as it is (it stays valid
            // until we report the chunk done); a compressed one is decoded into the slot.
            status st = ok();
            if (entry.codec == wire::chunk_codec::raw && j.size == entry.raw_size) {
                if (sha256_of({j.data, j.size}) != entry.sha256) {
                    st = error(errc::corrupt, "chunk does not match its SHA-256");
                }
                w.source = j.data;
            } else {
                st = verify_and_decode(entry, {j.data, j.size}, {w.data, entry.raw_size}, dctx);
                w.source = w.data;
            }
            if (st && placement && entry.codec != wire::chunk_codec::raw &&
                sha256_of({w.source, entry.raw_size}) != entry.raw_sha256) {
                // An image's frame that decodes to other bytes than the image recorded:
                // the same verdict as a bad hash (never written).
                st = error(errc::corrupt, "chunk decodes to bytes that do not match its raw SHA-256");
            }
            if (!st) {
                post({j.chunk, false, entry.raw_size});
                continue;
            }
            if (throttle_Bps > 0) {
                // A deliberately slow disk, for tests of the slow-receiver policy.
                throttled_bytes += entry.raw_size;
                time::sleep_until_ns(throttle_start_ns + static_cast<std::int64_t>(
                                                             static_cast<double>(throttled_bytes) / throttle_Bps * 1e9));
            }
            w.chunk = j.chunk;
            w.size = entry.raw_size;
            w.done = 0;
            w.busy = true;
            ++in_flight;
            if (placement) {
                if (auto ws = placement->write_chunk(j.chunk, {w.source, entry.raw_size}); !ws) {
                    fail(ws.err());
                    break;
                }
            }
            if (discard || placement) {
                if (!finish_chunk(free_slot)) {
                    break;
                }
                continue;
            }
            submit_write(free_slot);
        }
        // Writes still in flight finish before the buffers go away.
        while (in_flight > 0 && reap(true)) {
        }
        ZSTD_freeDCtx(dctx);
    }
};

writer::writer(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}

writer::~writer() {
    _s->stop.store(true, std::memory_order_release);
    _s->jobs_posted.fetch_add(1, std::memory_order_release);
    _s->jobs_posted.notify_one();
    if (_s->thread.joinable()) {
        _s->thread.join();
    }
    if (_s->ring_ready) {
        io_uring_queue_exit(&_s->ring);
    }
    if (_s->fd >= 0) {
        close(_s->fd);
    }
}

result<std::unique_ptr<writer>> writer::open(const std::string& path,
                                             const wire::session_manifest& manifest,
                                             double throttle_Bps, bool resume) {
    auto s = std::make_unique<state>();
    s->manifest = manifest;
    s->path = path;
    s->resume = resume;
    s->chunk_on_disk.assign(manifest.chunks.size(), 0);
    s->throttle_Bps = throttle_Bps;
    s->discard = path == "/dev/null";
    // O_DIRECT when every write is whole aligned blocks; the page cache otherwise.
    std::uint32_t raw_max = 0;
    bool aligned = true;
    for (const auto& c : manifest.chunks) {
        raw_max = std::max(raw_max, c.raw_size);
        aligned = aligned && c.target_offset % direct_alignment == 0 && c.raw_size % direct_alignment == 0;
    }
    if (!s->discard) {
        if (aligned) {
            s->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_DIRECT, 0644);
            s->direct = s->fd >= 0;
        }
        if (s->fd < 0) {
            s->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        }
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
    auto pool = buffer_pool::create(std::max<std::size_t>(raw_max, 1), writes_in_flight_max,
                                    direct_alignment);
    if (!pool) {
        return pool.err();
    }
    s->buffers.emplace(std::move(*pool));
    for (auto& w : s->slots) {
        w.data = s->buffers->get();
    }
    if (const int e = io_uring_queue_init(writes_in_flight_max * 2, &s->ring, 0); e < 0) {
        return sys_error(e, "setting up io_uring for the target's writes");
    }
    s->ring_ready = true;
    auto* raw = s.get();
    s->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<writer>(new writer(std::move(s)));
}

result<std::unique_ptr<writer>> writer::open(std::unique_ptr<target_placement> placement,
                                             const wire::session_manifest& manifest,
                                             double throttle_Bps, bool resume) {
    if (!placement) {
        return error(errc::invalid_argument, "writer::open: no placement");
    }
    auto s = std::make_unique<state>();
    s->manifest = manifest;
    s->path = "the image's targets";
    s->placement = std::move(placement);
    s->resume = resume;
    s->chunk_on_disk.assign(manifest.chunks.size(), 0);
    s->throttle_Bps = throttle_Bps;
    std::uint32_t raw_max = 1;
    for (const auto& c : manifest.chunks) {
        raw_max = std::max(raw_max, c.raw_size);
    }
    auto pool = buffer_pool::create(raw_max, writes_in_flight_max, direct_alignment);
    if (!pool) {
        return pool.err();
    }
    s->buffers.emplace(std::move(*pool));
    for (auto& w : s->slots) {
        w.data = s->buffers->get();
    }
    auto* raw = s.get();
    s->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<writer>(new writer(std::move(s)));
}

bool writer::submit(std::uint32_t chunk, std::span<const std::byte> wire) noexcept {
    if (!_s->jobs.enqueue(job{chunk, wire.data(), wire.size()})) {
        return false;
    }
    _s->jobs_posted.fetch_add(1, std::memory_order_release);
    _s->jobs_posted.notify_one();
    return true;
}

std::size_t writer::collect(write_done* out, std::size_t count) noexcept {
    return _s->done.dequeue_burst(out, count);
}

const error* writer::failure() const noexcept {
    return _s->failed.load(std::memory_order_acquire) ? &*_s->failure : nullptr;
}

}  // namespace shoal::session
