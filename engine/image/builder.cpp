#include "image/builder.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include <zstd.h>

namespace shoal::image {

namespace {
constexpr unsigned buffers_per_thread = 2;  // raw chunks read ahead per compressing thread
}

struct image_builder::state {
    chunk_sink* store = nullptr;
    build_options options;
    manifest m;
    bool published = false;
    std::uint64_t done_bytes = 0;  // in earlier regions
};

image_builder::image_builder(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
image_builder::~image_builder() = default;

const manifest& image_builder::current() const noexcept { return _s->m; }

result<std::unique_ptr<image_builder>> image_builder::create(chunk_sink& store, std::string name,
                                                             image_kind kind,
                                                             build_options options) {
    SHOAL_RETURN_IF_ERROR(check_image_name(name));
    if (options.chunk_size_bytes < (64u << 10) || options.chunk_size_bytes > chunk_raw_size_max) {
        return error::format(errc::invalid_argument, 0, "chunk size {} outside 64 KiB..{}",
                             options.chunk_size_bytes, chunk_raw_size_max);
    }
    if (options.threads == 0) {
        options.threads = std::max(1u, std::thread::hardware_concurrency());
    }
    auto s = std::make_unique<state>();
    s->store = &store;
    s->m.name = std::move(name);
    s->m.kind = kind;
    s->m.created_unix_s = static_cast<std::uint64_t>(std::time(nullptr));
    s->m.description = options.description;
    s->options = std::move(options);
    return std::unique_ptr<image_builder>(new image_builder(std::move(s)));
}

status image_builder::begin_disk(std::uint32_t index, std::uint64_t size_bytes,
                                 partition_table table, std::string source) {
    SHOAL_ASSERT(!_s->published);
    if (!_s->m.disks.empty() && index <= _s->m.disks.back().index) {
        return error::format(errc::invalid_argument, 0, "disk {} after disk {}", index,
                             _s->m.disks.back().index);
    }
    disk d;
    d.index = index;
    d.size_bytes = size_bytes;
    d.table = std::move(table);
    d.source = std::move(source);
    _s->m.disks.push_back(std::move(d));
    return ok();
}

status image_builder::add_region(std::uint32_t partition_number, std::uint64_t offset_bytes,
                                 partition_source& src) {
    SHOAL_ASSERT(!_s->published);
    if (_s->m.disks.empty()) {
        return error(errc::invalid_argument, "add_region before begin_disk");
    }
    disk& d = _s->m.disks.back();
    const source_info info = src.describe();
    region r;
    r.partition_number = partition_number;
    r.offset_bytes = offset_bytes;
    r.size_bytes = info.size_bytes;
    r.fs_size_bytes = info.fs_size_bytes != 0 ? info.fs_size_bytes : info.size_bytes;
    r.minimum_size_bytes = info.minimum_size_bytes != 0 ? info.minimum_size_bytes : r.fs_size_bytes;
    r.fs = info.fs;
    r.block_size_bytes = info.block_size_bytes;
    r.label = info.label;
    const auto ex = src.extents();
    r.used.assign(ex.begin(), ex.end());
    if (offset_bytes > d.size_bytes || r.size_bytes > d.size_bytes - offset_bytes ||
        (!d.regions.empty() &&
         offset_bytes < d.regions.back().offset_bytes + d.regions.back().size_bytes)) {
        return error::format(errc::invalid_argument, 0,
                             "disk {}: region at {} of {} bytes lies outside the disk or overlaps "
                             "the previous one",
                             d.index, offset_bytes, r.size_bytes);
    }
    const std::uint64_t total = r.used_bytes();
    const std::uint32_t chunk_size = _s->options.chunk_size_bytes;
    r.chunk_size_bytes = chunk_size;
    const std::size_t chunk_count = static_cast<std::size_t>((total + chunk_size - 1) / chunk_size);
    r.chunks.resize(chunk_count);

    // Reading here, compressing, hashing and storing on the pool: the reader fills free
    // buffers in stream order, workers take them in any order and put each result at its
    // index, so the chunk list comes out in stream order.
    const unsigned threads = _s->options.threads;
    const std::size_t buffer_count = static_cast<std::size_t>(threads) * buffers_per_thread;
    std::vector<std::vector<std::byte>> buffers(buffer_count);
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::size_t> free_buffers;
    for (std::size_t i = 0; i < buffer_count; ++i) {
        free_buffers.push_back(i);
    }
    struct job {
        std::size_t chunk;
        std::size_t buffer;
        std::size_t size;
    };
    std::deque<job> jobs;  // at most buffer_count long: bounded by the buffers
    bool no_more = false;
    std::optional<error> failure;
    std::uint64_t stored_bytes = 0;

    auto worker = [&] {
        ZSTD_CCtx* cctx = ZSTD_createCCtx();
        std::vector<std::byte> frame(ZSTD_compressBound(chunk_size));
        for (;;) {
            job j{};
            {
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return !jobs.empty() || no_more || failure; });
                if (failure || jobs.empty()) {
                    break;
                }
                j = jobs.front();
                jobs.pop_front();
            }
            const std::span<const std::byte> raw(buffers[j.buffer].data(), j.size);
            chunk_ref c;
            c.raw_size = static_cast<std::uint32_t>(j.size);
            c.raw_sha256 = sha256_of(raw);
            status st = ok();
            std::size_t n = 0;
            if (cctx != nullptr) {
                ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, _s->options.zstd_level);
                n = ZSTD_compress2(cctx, frame.data(), frame.size(), raw.data(), raw.size());
            }
            if (cctx == nullptr) {
                st = error(errc::io, "zstd: out of memory");
            } else if (ZSTD_isError(n)) {
                st = error::format(errc::io, 0, "zstd: {}", ZSTD_getErrorName(n));
            } else {
                const std::span<const std::byte> stored(frame.data(), n);
                c.stored_size = static_cast<std::uint32_t>(n);
                c.stored_sha256 = sha256_of(stored);
                st = _s->store->put_chunk(c.stored_sha256, stored);
            }
            std::lock_guard lock(mu);
            if (!st) {
                if (!failure) {
                    failure = st.err();
                }
            } else {
                r.chunks[j.chunk] = c;
                stored_bytes += j.size;
            }
            free_buffers.push_back(j.buffer);
            cv.notify_all();
        }
        ZSTD_freeCCtx(cctx);
    };
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back(worker);
    }

    std::uint64_t read_total = 0;
    status st = ok();
    for (std::size_t i = 0; i < chunk_count && st; ++i) {
        std::size_t b = 0;
        std::uint64_t progress_bytes = 0;
        {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return !free_buffers.empty() || failure; });
            if (failure) {
                break;
            }
            b = free_buffers.back();
            free_buffers.pop_back();
            progress_bytes = stored_bytes;
        }
        if (_s->options.on_progress) {
            _s->options.on_progress(_s->done_bytes + progress_bytes);
        }
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, total - read_total));
        auto& buf = buffers[b];
        buf.resize(want);
        std::size_t have = 0;
        while (have < want) {
            auto n = src.read({buf.data() + have, want - have});
            if (!n) {
                st = n.err();
                break;
            }
            if (*n == 0) {
                st = error::format(
                    errc::truncated, 0,
                    "disk {}: region at {}: the source ended after {} of {} used bytes", d.index,
                    offset_bytes, read_total + have, total);
                break;
            }
            have += *n;
        }
        read_total += have;
        std::lock_guard lock(mu);
        if (!st) {
            free_buffers.push_back(b);
            if (!failure) {
                failure = st.err();
            }
        } else {
            jobs.push_back({i, b, want});
        }
        cv.notify_all();
    }
    if (st) {
        // The source must end where its extents say.
        std::byte probe[1];
        auto n = src.read(probe);
        if (!n) {
            st = n.err();
        } else if (*n != 0) {
            st = error::format(errc::malformed, 0,
                               "disk {}: region at {}: the source has more than the {} used bytes "
                               "its map declares",
                               d.index, offset_bytes, total);
        }
    }
    {
        std::lock_guard lock(mu);
        no_more = true;
        if (!st && !failure) {
            failure = st.err();
        }
        cv.notify_all();
    }
    for (auto& t : pool) {
        t.join();
    }
    if (failure) {
        return *failure;
    }
    _s->done_bytes += total;
    if (_s->options.on_progress) {
        _s->options.on_progress(_s->done_bytes);
    }
    d.regions.push_back(std::move(r));
    return ok();
}

result<manifest> image_builder::publish() {
    SHOAL_ASSERT(!_s->published);
    _s->published = true;
    SHOAL_RETURN_IF_ERROR(_s->store->publish(_s->m));
    return _s->m;
}

}  // namespace shoal::image
