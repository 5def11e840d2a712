#include "image/restore.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include <liburing.h>
#include <zstd.h>

#include "common/log.h"
#include "image/capture.h"
#include "image/resize.h"
#include "image/table.h"

namespace shoal::image {

namespace {

// Runs `work` on `threads` threads (this one among them) and, if set, `progress` every
// 200 ms on one more until they are all done.
void run_on_threads(unsigned threads, const std::function<void()>& work,
                    const std::function<void()>& progress) {
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
        pool.emplace_back(work);
    }
    std::atomic<bool> finished{false};
    std::thread reporter;
    if (progress) {
        reporter = std::thread([&] {
            while (!finished.load()) {
                progress();
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
        });
    }
    work();
    for (auto& t : pool) {
        t.join();
    }
    finished = true;
    if (reporter.joinable()) {
        reporter.join();
    }
}

constexpr std::size_t direct_alignment = 4096;
constexpr unsigned ring_depth = 32;  // writes of one chunk in flight
constexpr std::size_t problems_kept_max = 20;
constexpr std::uint64_t mib = 1u << 20;

struct fd_pair {
    int buffered = -1;
    int direct = -1;
    ~fd_pair() {
        if (buffered >= 0) {
            ::close(buffered);
        }
        if (direct >= 0) {
            ::close(direct);
        }
    }
};

// Where each region goes on the target.
struct region_plan {
    const region* r = nullptr;
    std::uint64_t offset = 0;          // on the target
    std::uint64_t partition_size = 0;  // on the target
    std::optional<region_map> map;
};

struct disk_plan {
    const disk* d = nullptr;
    std::string target;
    std::uint64_t target_size = 0;
    bool exact_table = true;
    partition_table table;  // what is written
    std::vector<region_plan> regions;
};

std::uint64_t gpt_reserve(const partition_table& t) {
    // The backup GPT (entries + header) and libfdisk's 1 MiB grain at the end.
    return t.kind == table_kind::gpt ? mib : 0;
}

const region* region_of(const disk& d, std::uint32_t number) {
    for (const auto& r : d.regions) {
        if (r.partition_number == number) {
            return &r;
        }
    }
    return nullptr;
}

result<disk_plan> plan_disk(const manifest& m, const disk& d, const std::string& target,
                            std::uint64_t target_size) {
    disk_plan p;
    p.d = &d;
    p.target = target;
    p.target_size = target_size;
    p.table = d.table;
    const bool resizable = m.kind == image_kind::single_disk_resizable;
    const std::uint64_t need = minimum_disk_size(m, d);
    if (target_size < need) {
        return error::format(
            errc::no_space, 0,
            "target {} holds {} bytes, the image's disk {} needs at least {} (use a larger "
            "disk{})",
            target, target_size, d.index, need, resizable ? "" : ", or capture a resizable image");
    }
    p.exact_table = target_size == d.size_bytes;
    if (d.table.kind != table_kind::none && !p.exact_table) {
        // The last partition takes what the disk has, when the image is resizable;
        // otherwise the layout stays and only the GPT's backup moves to the new end.
        const table_entry* last = nullptr;
        for (const auto& e : d.table.entries) {
            if (!e.container && (last == nullptr || e.start_bytes > last->start_bytes)) {
                last = &e;
            }
        }
        if (resizable && last != nullptr) {
            for (auto& e : p.table.entries) {
                if (e.number == last->number ||
                    (e.container && e.start_bytes <= last->start_bytes &&
                     e.start_bytes + e.size_bytes >= last->start_bytes + last->size_bytes)) {
                    e.size_bytes = 0;  // to the end of the usable area
                }
            }
        }
    }
    std::uint64_t end_of_previous = 0;
    for (const auto& r : d.regions) {
        region_plan rp;
        rp.r = &r;
        rp.offset = r.offset_bytes;
        rp.partition_size = r.size_bytes;
        rp.map.emplace(r);
        end_of_previous = std::max(end_of_previous, rp.offset);
        p.regions.push_back(std::move(rp));
    }
    return p;
}

status open_target(const std::string& path, std::uint64_t new_size, fd_pair& fds,
                   std::uint64_t& size) {
    struct stat st {};
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists && !S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
        return error::format(errc::invalid_argument, 0,
                             "target {} is neither a block device nor a file", path);
    }
    const bool block = exists && S_ISBLK(st.st_mode);
    fds.buffered = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (block ? O_EXCL : O_CREAT), 0644);
    if (fds.buffered < 0) {
        const int e = errno;
        return e == EBUSY ? error::format(errc::io, e,
                                          "target {} is in use (mounted?): unmount it first", path)
                          : error::format(errc::io, e, "opening target {}", path);
    }
    if (!block && (!exists || st.st_size == 0)) {
        if (ftruncate(fds.buffered, static_cast<off_t>(new_size)) != 0) {
            return error::format(errno == ENOSPC || errno == EFBIG ? errc::no_space : errc::io,
                                 errno, "making target file {} of {} bytes", path, new_size);
        }
    }
    auto s = disk_size_of(fds.buffered, path);
    if (!s) {
        return s.err();
    }
    size = *s;
    fds.direct = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_DIRECT);  // -1 where unsupported
    return ok();
}

status pwrite_all(int fd, const void* data, std::size_t size, std::uint64_t offset,
                  const std::string& name) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::pwrite(fd, static_cast<const char*>(data) + done, size - done,
                                   static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return error::format(n < 0 && errno == ENOSPC ? errc::no_space : errc::io,
                                 n < 0 ? errno : ENOSPC, "writing {} bytes at {} of {}",
                                 size - done, offset + done, name);
        }
        done += static_cast<std::size_t>(n);
    }
    return ok();
}

// One chunk's pieces on the target: offsets from the disk's start.
void pieces_of(const region_plan& rp, std::size_t chunk, std::vector<piece>& out) {
    rp.map->pieces(chunk, out);
    for (piece& p : out) {
        p.offset_bytes += rp.offset;
    }
}

struct chunk_job {
    const region_plan* rp;
    std::size_t chunk;
};

// Writes (or verifies in place) a list of chunks with `threads` workers.
class chunk_writer {
public:
    chunk_writer(const chunk_source& store, const fd_pair& fds, std::string target, bool resume,
                 std::atomic<std::uint64_t>& done, restore_summary& summary, std::mutex& summary_mu)
        : _store(store),
          _fds(fds),
          _target(std::move(target)),
          _resume(resume),
          _done(done),
          _summary(summary),
          _summary_mu(summary_mu) {}

    status run(const std::vector<chunk_job>& jobs, unsigned threads,
               const std::function<void()>& progress) {
        std::atomic<std::size_t> next{0};
        std::atomic<bool> failed{false};
        std::optional<error> failure;
        std::mutex mu;
        auto work = [&] {
            worker_state w;
            if (auto st = w.init(); !st) {
                std::lock_guard lock(mu);
                failure = st.err();
                failed = true;
                return;
            }
            for (std::size_t i; !failed.load() && (i = next.fetch_add(1)) < jobs.size();) {
                if (auto st = one(w, jobs[i]); !st) {
                    std::lock_guard lock(mu);
                    if (!failure) {
                        failure = st.err();
                    }
                    failed = true;
                }
            }
        };
        run_on_threads(threads, work, progress);
        if (failure) {
            return *failure;
        }
        return ok();
    }

private:
    struct worker_state {
        std::vector<std::byte> frame;
        std::byte* raw = nullptr;
        std::byte* ondisk = nullptr;
        ZSTD_DCtx* dctx = nullptr;
        io_uring ring{};
        bool ring_ready = false;
        std::vector<piece> pieces;
        status init() {
            raw = static_cast<std::byte*>(std::aligned_alloc(direct_alignment, chunk_raw_size_max));
            ondisk =
                static_cast<std::byte*>(std::aligned_alloc(direct_alignment, chunk_raw_size_max));
            dctx = ZSTD_createDCtx();
            if (raw == nullptr || ondisk == nullptr || dctx == nullptr) {
                return error(errc::no_space, "out of memory for restore buffers");
            }
            if (const int rc = io_uring_queue_init(ring_depth, &ring, 0); rc < 0) {
                return sys_error(rc, "setting up io_uring for the target's writes");
            }
            ring_ready = true;
            return ok();
        }
        ~worker_state() {
            if (ring_ready) {
                io_uring_queue_exit(&ring);
            }
            std::free(raw);
            std::free(ondisk);
            ZSTD_freeDCtx(dctx);
        }
    };

    // The pieces' writes, ring_depth at a time; short writes and EINTR go again.
    status write_pieces(worker_state& w) {
        std::size_t next = 0;
        unsigned in_flight = 0;
        std::vector<std::size_t> done(w.pieces.size(), 0);
        auto submit = [&](std::size_t i) {
            const piece& p = w.pieces[i];
            const std::byte* data = w.raw + p.raw_offset + done[i];
            const std::uint64_t off = p.offset_bytes + done[i];
            const std::size_t n = p.size - done[i];
            const bool aligned = _fds.direct >= 0 && off % direct_alignment == 0 &&
                                 n % direct_alignment == 0 &&
                                 reinterpret_cast<std::uintptr_t>(data) % direct_alignment == 0;
            io_uring_sqe* sqe = io_uring_get_sqe(&w.ring);
            SHOAL_ASSERT(sqe != nullptr);
            io_uring_prep_write(sqe, aligned ? _fds.direct : _fds.buffered, data,
                                static_cast<unsigned>(n), off);
            io_uring_sqe_set_data64(sqe, i);
            ++in_flight;
        };
        while (next < w.pieces.size() || in_flight > 0) {
            bool submitted = false;
            while (next < w.pieces.size() && in_flight < ring_depth) {
                submit(next++);
                submitted = true;
            }
            if (submitted) {
                io_uring_submit(&w.ring);
            }
            io_uring_cqe* cqe = nullptr;
            const int rc = io_uring_wait_cqe(&w.ring, &cqe);
            if (rc == -EINTR) {
                continue;
            }
            if (rc < 0) {
                return sys_error(rc, "io_uring wait");
            }
            const auto i = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
            const int res = cqe->res;
            io_uring_cqe_seen(&w.ring, cqe);
            --in_flight;
            if (res == -EINTR || res == -EAGAIN) {
                submit(i);
                io_uring_submit(&w.ring);
                continue;
            }
            if (res <= 0) {
                // Drain what is still in flight before the buffers are reused.
                while (in_flight > 0 && io_uring_wait_cqe(&w.ring, &cqe) == 0) {
                    io_uring_cqe_seen(&w.ring, cqe);
                    --in_flight;
                }
                const int e = res < 0 ? -res : ENOSPC;
                return error::format(e == ENOSPC ? errc::no_space : errc::io, e,
                                     "writing {} bytes at {} of {}", w.pieces[i].size,
                                     w.pieces[i].offset_bytes, _target);
            }
            done[i] += static_cast<std::size_t>(res);
            if (done[i] < w.pieces[i].size) {
                submit(i);
                io_uring_submit(&w.ring);
            }
        }
        return ok();
    }

    // Is the chunk's raw content already at its place on the target?
    bool in_place(worker_state& w, const chunk_ref& c) {
        for (const piece& p : w.pieces) {
            std::size_t got = 0;
            while (got < p.size) {
                const ssize_t n = ::pread(_fds.buffered, w.ondisk + p.raw_offset + got,
                                          p.size - got, static_cast<off_t>(p.offset_bytes + got));
                if (n <= 0) {
                    return false;
                }
                got += static_cast<std::size_t>(n);
            }
        }
        return sha256_of({w.ondisk, c.raw_size}) == c.raw_sha256;
    }

    status one(worker_state& w, const chunk_job& job) {
        const region& r = *job.rp->r;
        const chunk_ref& c = r.chunks[job.chunk];
        pieces_of(*job.rp, job.chunk, w.pieces);
        if (_resume && in_place(w, c)) {
            _done.fetch_add(c.raw_size);
            std::lock_guard lock(_summary_mu);
            _summary.skipped_bytes += c.raw_size;
            ++_summary.chunks_skipped;
            return ok();
        }
        SHOAL_RETURN_IF_ERROR(_store.read_chunk(c, w.frame));  // stored SHA-256 checked here
        const std::size_t n =
            ZSTD_decompressDCtx(w.dctx, w.raw, chunk_raw_size_max, w.frame.data(), w.frame.size());
        if (ZSTD_isError(n) || n != c.raw_size) {
            return error::format(errc::corrupt, 0,
                                 "chunk {}: does not decompress to its {} bytes ({})",
                                 _store.chunk_name(c.stored_sha256), c.raw_size,
                                 ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
        }
        if (sha256_of({w.raw, n}) != c.raw_sha256) {
            return error::format(errc::corrupt, 0,
                                 "chunk {}: decompressed bytes do not match their SHA-256",
                                 _store.chunk_name(c.stored_sha256));
        }
        SHOAL_RETURN_IF_ERROR(write_pieces(w));
        _done.fetch_add(c.raw_size);
        std::lock_guard lock(_summary_mu);
        _summary.written_bytes += c.raw_size;
        ++_summary.chunks_written;
        return ok();
    }

    const chunk_source& _store;
    const fd_pair& _fds;
    std::string _target;
    bool _resume;
    std::atomic<std::uint64_t>& _done;
    restore_summary& _summary;
    std::mutex& _summary_mu;
};

// Zeroes the table's signatures (MBR sector, GPT headers) so that a disk whose restore
// does not finish shows no partitions.
status invalidate_table(int fd, std::uint64_t size, const std::string& name) {
    std::vector<std::byte> zero(4096, std::byte{0});
    SHOAL_RETURN_IF_ERROR(
        pwrite_all(fd, zero.data(), std::min<std::uint64_t>(zero.size(), size), 0, name));
    if (size >= 8192) {
        SHOAL_RETURN_IF_ERROR(pwrite_all(fd, zero.data(), 4096, size - 4096, name));
    }
    return ok();
}

}  // namespace

std::uint64_t minimum_disk_size(const manifest& m, const disk& d) {
    if (d.table.kind == table_kind::none) {
        std::uint64_t need = 0;
        for (const auto& r : d.regions) {
            need = std::max(
                need,
                r.offset_bytes + (m.kind == image_kind::raw ? r.size_bytes : r.minimum_size_bytes));
        }
        return need;
    }
    if (m.kind != image_kind::single_disk_resizable) {
        std::uint64_t need = 0;
        for (const auto& e : d.table.entries) {
            need = std::max(need, e.start_bytes + e.size_bytes);
        }
        return need + gpt_reserve(d.table);
    }
    // Resizable: every partition as it was, but the last only as large as its minimum.
    std::uint64_t need = 0;
    const table_entry* last = nullptr;
    for (const auto& e : d.table.entries) {
        if (!e.container && (last == nullptr || e.start_bytes > last->start_bytes)) {
            last = &e;
        }
    }
    for (const auto& e : d.table.entries) {
        if (e.container) {
            continue;
        }
        std::uint64_t size = e.size_bytes;
        if (&e == last) {
            const region* r = region_of(d, e.number);
            size = r != nullptr ? r->minimum_size_bytes : mib;
            size = (size + mib - 1) / mib * mib;
        }
        need = std::max(need, e.start_bytes + size);
    }
    return need + gpt_reserve(d.table);
}

region_map::region_map(const region& r) : _r(&r) {
    std::uint64_t s = 0;
    _extent_start.reserve(r.used.size());
    for (const auto& e : r.used) {
        _extent_start.push_back(s);
        s += e.size_bytes;
    }
    s = 0;
    _chunk_start.reserve(r.chunks.size());
    for (const auto& c : r.chunks) {
        _chunk_start.push_back(s);
        s += c.raw_size;
    }
}

void region_map::pieces(std::size_t chunk, std::vector<piece>& out) const {
    out.clear();
    const region& r = *_r;
    std::uint64_t at = _chunk_start[chunk];
    std::uint64_t left = r.chunks[chunk].raw_size;
    // The manifest's decoder checked that the chunks add up to the used bytes, so every
    // chunk lies inside the extents.
    auto it = std::upper_bound(_extent_start.begin(), _extent_start.end(), at);
    SHOAL_ASSERT(it != _extent_start.begin());
    std::size_t e = static_cast<std::size_t>(it - _extent_start.begin()) - 1;
    std::size_t raw_offset = 0;
    while (left > 0) {
        SHOAL_ASSERT(e < r.used.size());
        const extent& x = r.used[e];
        const std::uint64_t in = at - _extent_start[e];
        const std::uint64_t n = std::min(left, x.size_bytes - in);
        out.push_back({x.offset_bytes + in, raw_offset, static_cast<std::size_t>(n)});
        raw_offset += n;
        at += n;
        left -= n;
        ++e;
    }
}

struct disk_restore::state {
    const manifest* m = nullptr;
    fd_pair fds;
    disk_plan plan;
    bool resume = false;
};

disk_restore::disk_restore(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
disk_restore::~disk_restore() = default;
int disk_restore::fd() const noexcept { return _s->fds.buffered; }
int disk_restore::direct_fd() const noexcept { return _s->fds.direct; }
std::uint64_t disk_restore::target_size() const noexcept { return _s->plan.target_size; }
const std::string& disk_restore::target() const noexcept { return _s->plan.target; }
std::uint64_t disk_restore::region_offset(std::size_t region_index) const noexcept {
    return _s->plan.regions[region_index].offset;
}

result<std::unique_ptr<disk_restore>> disk_restore::open(const manifest& m, const disk& d,
                                                         const std::string& target,
                                                         std::uint64_t new_file_size_bytes,
                                                         bool resume) {
    auto s = std::make_unique<state>();
    s->m = &m;
    std::uint64_t size = 0;
    SHOAL_RETURN_IF_ERROR(open_target(target,
                                      new_file_size_bytes != 0 ? new_file_size_bytes : d.size_bytes,
                                      s->fds, size));
    auto p = plan_disk(m, d, target, size);
    if (!p) {
        return p.err();
    }
    s->plan = std::move(*p);
    s->resume = resume;
    return std::unique_ptr<disk_restore>(new disk_restore(std::move(s)));
}

status disk_restore::begin() {
    if (_s->plan.d->table.kind != table_kind::none && !_s->resume) {
        return invalidate_table(_s->fds.buffered, _s->plan.target_size, _s->plan.target);
    }
    return ok();
}

status disk_restore::finish() {
    const manifest& m = *_s->m;
    disk_plan& p = _s->plan;
    const fd_pair& f = _s->fds;
    if (fdatasync(f.buffered) != 0 && errno != EINVAL) {
        return error::format(errc::io, errno, "flushing target {}", p.target);
    }
    SHOAL_RETURN_IF_ERROR(
        write_partition_table(f.buffered, p.table, p.target_size, p.exact_table, p.target));
    if (fdatasync(f.buffered) != 0 && errno != EINVAL) {
        return error::format(errc::io, errno, "flushing target {}", p.target);
    }
    // The partitions' sizes as written (libfdisk aligns a grown partition's end).
    std::vector<table_entry> written = p.table.entries;
    if (p.d->table.kind != table_kind::none) {
        auto t = read_partition_table(f.buffered, p.target);
        if (!t) {
            return t.err();
        }
        written = t->entries;
        struct stat st {};
        if (fstat(f.buffered, &st) == 0 && S_ISBLK(st.st_mode)) {
            ioctl(f.buffered, BLKRRPART);  // best effort: the kernel learns the new partitions
        }
    }
    // Filesystems of a resizable image fill their partitions.
    if (m.kind == image_kind::single_disk_resizable) {
        for (const auto& rp : p.regions) {
            const region& r = *rp.r;
            if (!fs_can_resize(r.fs)) {
                continue;
            }
            std::uint64_t part_size = p.d->table.kind == table_kind::none ? p.target_size : 0;
            std::uint64_t part_start = 0;
            for (const auto& e : written) {
                if (e.number == r.partition_number) {
                    part_size = e.size_bytes;
                    part_start = e.start_bytes;
                }
            }
            const std::uint64_t new_fs = part_size;
            if (new_fs > r.fs_size_bytes + mib) {
                log::info("{}: growing partition {} ({}) from {} to {} bytes", p.target,
                          r.partition_number, fs_name(r.fs), r.fs_size_bytes, new_fs);
                SHOAL_RETURN_IF_ERROR(resize_fs(p.target, r.fs, part_start, part_size, new_fs));
            }
        }
        if (fdatasync(f.buffered) != 0 && errno != EINVAL) {
            return error::format(errc::io, errno, "flushing target {}", p.target);
        }
    }
    return ok();
}

result<restore_summary> restore_image(const chunk_source& store, const manifest& m,
                                      const restore_options& options) {
    if (options.targets.size() != m.disks.size()) {
        return error::format(errc::invalid_argument, 0,
                             "image {} has {} disk(s), {} target(s) given", m.name, m.disks.size(),
                             options.targets.size());
    }
    // Every chunk must be in the store before a byte is written.
    for (const auto& d : m.disks) {
        for (const auto& r : d.regions) {
            for (const auto& c : r.chunks) {
                if (!store.has_chunk(c.stored_sha256)) {
                    return error::format(errc::not_found, 0,
                                         "chunk {} missing from the store: nothing "
                                         "written (shoal image verify {})",
                                         store.chunk_name(c.stored_sha256), m.name);
                }
            }
        }
    }
    const unsigned threads =
        options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
    restore_summary summary;
    std::mutex summary_mu;
    std::atomic<std::uint64_t> done{0};
    const std::uint64_t total = m.used_bytes();
    auto progress = [&] {
        if (options.on_progress) {
            options.on_progress(done.load(), total);
        }
    };
    // Plan every disk before writing to any: a target too small stops it all untouched.
    std::vector<std::unique_ptr<disk_restore>> disks;
    for (std::size_t i = 0; i < m.disks.size(); ++i) {
        auto dr = disk_restore::open(m, m.disks[i], options.targets[i],
                                     options.new_file_size_bytes, options.resume);
        if (!dr) {
            return dr.err();
        }
        disks.push_back(std::move(*dr));
    }
    for (auto& dr : disks) {
        SHOAL_RETURN_IF_ERROR(dr->begin());
        const disk_plan& p = dr->_s->plan;
        const fd_pair& f = dr->_s->fds;
        // Partitions first, then the disk's head (which holds the old table's bytes), then the
        // table.
        std::vector<chunk_job> body;
        std::vector<chunk_job> head;
        for (const auto& rp : p.regions) {
            for (std::size_t c = 0; c < rp.r->chunks.size(); ++c) {
                (rp.r->partition_number == 0 && p.d->table.kind != table_kind::none ? head : body)
                    .push_back({&rp, c});
            }
        }
        chunk_writer w(store, f, p.target, options.resume, done, summary, summary_mu);
        SHOAL_RETURN_IF_ERROR(
            w.run(body, threads, options.on_progress ? std::function<void()>(progress) : nullptr));
        SHOAL_RETURN_IF_ERROR(w.run(head, threads, nullptr));
        SHOAL_RETURN_IF_ERROR(dr->finish());
    }
    progress();
    return summary;
}

result<verify_report> verify_image(
    const chunk_source& store, const manifest& m, unsigned threads,
    const std::function<void(std::uint64_t, std::uint64_t)>& on_progress) {
    std::vector<const chunk_ref*> refs;
    for (const auto& d : m.disks) {
        for (const auto& r : d.regions) {
            for (const auto& c : r.chunks) {
                refs.push_back(&c);
            }
        }
    }
    if (threads == 0) {
        threads = std::max(1u, std::thread::hardware_concurrency());
    }
    verify_report report;
    report.chunks = refs.size();
    std::mutex mu;
    std::atomic<std::size_t> next{0};
    std::atomic<std::uint64_t> done{0};
    const std::uint64_t total = m.used_bytes();
    auto problem = [&](const std::string& text) {
        std::lock_guard lock(mu);
        ++report.bad_chunks;
        if (report.problems.size() < problems_kept_max) {
            report.problems.push_back(text);
        }
    };
    auto work = [&] {
        std::vector<std::byte> frame;
        std::vector<std::byte> raw(chunk_raw_size_max);
        ZSTD_DCtx* dctx = ZSTD_createDCtx();
        for (std::size_t i; (i = next.fetch_add(1)) < refs.size();) {
            const chunk_ref& c = *refs[i];
            if (auto st = store.read_chunk(c, frame); !st) {
                problem(st.err().describe());
            } else {
                const std::size_t n =
                    ZSTD_decompressDCtx(dctx, raw.data(), raw.size(), frame.data(), frame.size());
                if (ZSTD_isError(n) || n != c.raw_size ||
                    sha256_of({raw.data(), n}) != c.raw_sha256) {
                    problem(
                        fmt::format("chunk {}: its content does not decompress to the raw bytes "
                                    "the manifest names",
                                    store.chunk_name(c.stored_sha256)));
                }
            }
            done.fetch_add(c.raw_size);
        }
        ZSTD_freeDCtx(dctx);
    };
    std::function<void()> report_progress;
    if (on_progress) {
        report_progress = [&] { on_progress(done.load(), total); };
    }
    run_on_threads(threads, work, report_progress);
    if (on_progress) {
        on_progress(done.load(), total);
    }
    return report;
}

}  // namespace shoal::image
