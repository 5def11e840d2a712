#include "image/disk_source.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <liburing.h>

namespace shoal::image {

namespace {
constexpr std::uint32_t read_size_max = 1u << 20;  // one read
constexpr unsigned reads_in_flight_max = 8;        // 8 MiB ahead of the consumer
constexpr std::size_t buffer_alignment = 4096;
}  // namespace

struct disk_source::state {
    int fd = -1;
    std::string name;
    std::uint64_t base = 0;
    used_map map;
    io_uring ring{};
    bool ring_ready = false;
    std::byte* buffers = nullptr;
    struct slot {
        std::uint64_t offset = 0;  // partition-relative
        std::uint32_t size = 0;
        std::uint32_t filled = 0;
        std::uint32_t consumed = 0;
        bool pending = false;
    } slots[reads_in_flight_max];
    unsigned head = 0;    // the slot read() takes bytes from
    unsigned queued = 0;  // slots holding a piece (pending or filled)
    std::size_t next_extent = 0;
    std::uint64_t next_in_extent = 0;
    std::optional<error> failure;

    std::byte* buffer(unsigned i) const {
        return buffers + static_cast<std::size_t>(i) * read_size_max;
    }

    void submit(unsigned i) {
        slot& s = slots[i];
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        SHOAL_ASSERT(sqe != nullptr);  // one entry per slot
        io_uring_prep_read(sqe, fd, buffer(i) + s.filled, s.size - s.filled,
                           base + s.offset + s.filled);
        io_uring_sqe_set_data64(sqe, i);
        s.pending = true;
    }

    // Fills free slots with the next pieces of the used stream.
    void refill() {
        bool any = false;
        while (queued < reads_in_flight_max && next_extent < map.extents.size()) {
            const extent& e = map.extents[next_extent];
            const unsigned i = (head + queued) % reads_in_flight_max;
            slot& s = slots[i];
            s.offset = e.offset_bytes + next_in_extent;
            s.size = static_cast<std::uint32_t>(
                std::min<std::uint64_t>(read_size_max, e.size_bytes - next_in_extent));
            s.filled = 0;
            s.consumed = 0;
            next_in_extent += s.size;
            if (next_in_extent == e.size_bytes) {
                ++next_extent;
                next_in_extent = 0;
            }
            ++queued;
            submit(i);
            any = true;
        }
        if (any) {
            io_uring_submit(&ring);
        }
    }

    status wait_head() {
        while (slots[head].pending) {
            io_uring_cqe* cqe = nullptr;
            const int rc = io_uring_wait_cqe(&ring, &cqe);
            if (rc == -EINTR) {
                continue;
            }
            if (rc < 0) {
                return sys_error(rc, "io_uring wait");
            }
            const auto i = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
            const int res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            slot& s = slots[i];
            s.pending = false;
            if (res == -EINTR || res == -EAGAIN) {
                submit(i);
                io_uring_submit(&ring);
                continue;
            }
            if (res < 0) {
                return error::format(errc::io, -res, "{}: reading {} bytes at {}", name,
                                     s.size - s.filled, base + s.offset + s.filled);
            }
            if (res == 0) {
                return error::format(errc::truncated, 0,
                                     "{}: ends at {}, before the used block at {}", name,
                                     base + s.offset + s.filled, base + s.offset);
            }
            s.filled += static_cast<std::uint32_t>(res);
            if (s.filled < s.size) {
                submit(i);
                io_uring_submit(&ring);
            }
        }
        return ok();
    }
};

disk_source::disk_source(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}

disk_source::~disk_source() {
    if (_s->ring_ready) {
        // Reads still in flight land before their buffers go.
        while (true) {
            bool pending = false;
            for (const auto& s : _s->slots) {
                pending = pending || s.pending;
            }
            if (!pending) {
                break;
            }
            io_uring_cqe* cqe = nullptr;
            if (io_uring_wait_cqe(&_s->ring, &cqe) < 0) {
                break;
            }
            _s->slots[io_uring_cqe_get_data64(cqe)].pending = false;
            io_uring_cqe_seen(&_s->ring, cqe);
        }
        io_uring_queue_exit(&_s->ring);
    }
    std::free(_s->buffers);
}

result<std::unique_ptr<disk_source>> disk_source::create(int fd, std::string name,
                                                         std::uint64_t base_offset_bytes,
                                                         used_map map) {
    auto s = std::make_unique<state>();
    s->fd = fd;
    s->name = std::move(name);
    s->base = base_offset_bytes;
    s->map = std::move(map);
    s->buffers = static_cast<std::byte*>(
        std::aligned_alloc(buffer_alignment, std::size_t{read_size_max} * reads_in_flight_max));
    if (s->buffers == nullptr) {
        return error(errc::no_space, "out of memory for read buffers");
    }
    if (const int rc = io_uring_queue_init(reads_in_flight_max, &s->ring, 0); rc < 0) {
        std::free(s->buffers);
        return sys_error(rc, "setting up io_uring for the disk's reads");
    }
    s->ring_ready = true;
    return std::unique_ptr<disk_source>(new disk_source(std::move(s)));
}

source_info disk_source::describe() const { return _s->map.info; }
std::span<const extent> disk_source::extents() const { return _s->map.extents; }

result<std::size_t> disk_source::read(std::span<std::byte> out) {
    state& s = *_s;
    if (s.failure) {
        return *s.failure;
    }
    std::size_t done = 0;
    while (done < out.size()) {
        s.refill();
        if (s.queued == 0) {
            break;  // the end of the used stream
        }
        if (auto st = s.wait_head(); !st) {
            s.failure = st.err();
            return st.err();
        }
        state::slot& h = s.slots[s.head];
        if (h.filled < h.size) {
            continue;  // a short read's rest is on its way
        }
        const std::size_t n = std::min<std::size_t>(out.size() - done, h.size - h.consumed);
        std::memcpy(out.data() + done, s.buffer(s.head) + h.consumed, n);
        h.consumed += static_cast<std::uint32_t>(n);
        done += n;
        if (h.consumed == h.size) {
            s.head = (s.head + 1) % reads_in_flight_max;
            --s.queued;
        }
    }
    return done;
}

}  // namespace shoal::image
