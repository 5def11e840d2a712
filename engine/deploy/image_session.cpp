#include "deploy/image_session.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/log.h"

namespace shoal::deploy {

namespace {

// Each distinct chunk file is one mapping; the kernel's default vm.max_map_count is 65530.
constexpr std::size_t mapped_chunks_max = 60000;
// The first 4 KiB of a disk hold its table's signatures (the MBR sector, the GPT header):
// what a restore invalidates first and writes last. A receiver holds these bytes back.
constexpr std::uint64_t held_back_bytes = 4096;

struct mappings {
    std::vector<std::pair<void*, std::size_t>> maps;
    ~mappings() {
        for (auto [p, n] : maps) {
            munmap(p, n);
        }
    }
};

status pwrite_all(int fd, const std::byte* data, std::size_t size, std::uint64_t offset,
                  const std::string& name) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int e = n < 0 ? errno : ENOSPC;
            return error::format(e == ENOSPC ? errc::no_space : errc::io, e,
                                 "writing {} bytes at {} of {}", size - done, offset + done, name);
        }
        done += static_cast<std::size_t>(n);
    }
    return ok();
}

// The receiver's placement: chunks to their extents on each disk, through the same
// disk_restore steps as `shoal image restore`.
class image_placement final : public session::target_placement {
public:
    image_placement(std::unique_ptr<image::manifest> m,
                    std::vector<std::unique_ptr<image::disk_restore>> disks)
        : _m(std::move(m)), _layout(*_m), _disks(std::move(disks)), _held(_disks.size()) {}

    status write_chunk(std::uint32_t chunk, std::span<const std::byte> raw) override {
        const chunk_place& at = _layout.place(chunk);
        image::disk_restore& d = *_disks[at.disk];
        const bool has_table = _m->disks[at.disk].table.kind != image::table_kind::none;
        _layout.pieces(chunk, _pieces);
        for (const image::piece& p : _pieces) {
            std::uint64_t off = p.offset_bytes;
            std::size_t raw_off = p.raw_offset;
            std::size_t size = p.size;
            SHOAL_ASSERT(raw_off + size <= raw.size());
            if (has_table && off < held_back_bytes) {
                // Kept in memory until every chunk is on the disk: until then the target
                // shows no partition table (see finish).
                const std::size_t n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(size, held_back_bytes - off));
                held& h = _held[at.disk];
                std::memcpy(h.bytes.data() + off, raw.data() + raw_off, n);
                std::fill(h.mask.begin() + static_cast<std::ptrdiff_t>(off),
                          h.mask.begin() + static_cast<std::ptrdiff_t>(off + n), true);
                off += n;
                raw_off += n;
                size -= n;
            }
            if (size > 0) {
                SHOAL_RETURN_IF_ERROR(
                    pwrite_all(d.fd(), raw.data() + raw_off, size, off, d.target()));
            }
        }
        return ok();
    }

    bool read_chunk(std::uint32_t chunk, std::span<std::byte> out) override {
        const chunk_place& at = _layout.place(chunk);
        const image::disk_restore& d = *_disks[at.disk];
        _layout.pieces(chunk, _pieces);
        for (const image::piece& p : _pieces) {
            if (p.raw_offset + p.size > out.size()) {
                return false;
            }
            std::size_t got = 0;
            while (got < p.size) {
                const ssize_t n = ::pread(d.fd(), out.data() + p.raw_offset + got, p.size - got,
                                          static_cast<off_t>(p.offset_bytes + got));
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    return false;
                }
                got += static_cast<std::size_t>(n);
            }
        }
        return true;
    }

    status finish() override {
        for (std::size_t i = 0; i < _disks.size(); ++i) {
            image::disk_restore& d = *_disks[i];
            const held& h = _held[i];
            // The held-back head bytes, in runs, then the table (disk_restore::finish).
            for (std::size_t a = 0; a < held_back_bytes;) {
                if (!h.mask[a]) {
                    ++a;
                    continue;
                }
                std::size_t b = a;
                while (b < held_back_bytes && h.mask[b]) {
                    ++b;
                }
                SHOAL_RETURN_IF_ERROR(pwrite_all(d.fd(), h.bytes.data() + a, b - a, a, d.target()));
                a = b;
            }
            SHOAL_RETURN_IF_ERROR(d.finish());
            log::info("{}: image {} disk {} written, table written, verified chunk by chunk",
                      d.target(), _m->name, _m->disks[i].index);
        }
        return ok();
    }

private:
    struct held {
        std::array<std::byte, held_back_bytes> bytes{};
        std::vector<bool> mask = std::vector<bool>(held_back_bytes, false);
    };
    std::unique_ptr<image::manifest> _m;  // the layout points into it
    image_layout _layout;
    std::vector<std::unique_ptr<image::disk_restore>> _disks;
    std::vector<held> _held;
    std::vector<image::piece> _pieces;
};

}  // namespace

image_layout::image_layout(const image::manifest& m) : _m(&m) {
    _maps.resize(m.disks.size());
    for (std::uint32_t d = 0; d < m.disks.size(); ++d) {
        const auto& regions = m.disks[d].regions;
        _maps[d].reserve(regions.size());
        for (std::uint32_t r = 0; r < regions.size(); ++r) {
            _maps[d].emplace_back(regions[r]);
            for (std::uint32_t c = 0; c < regions[r].chunks.size(); ++c) {
                _places.push_back({d, r, c});
            }
        }
    }
}

const image::chunk_ref& image_layout::ref(std::uint32_t chunk) const noexcept {
    const chunk_place& p = _places[chunk];
    return _m->disks[p.disk].regions[p.region].chunks[p.chunk];
}

void image_layout::pieces(std::uint32_t chunk, std::vector<image::piece>& out) const {
    const chunk_place& p = _places[chunk];
    _maps[p.disk][p.region].pieces(p.chunk, out);
    const std::uint64_t base = _m->disks[p.disk].regions[p.region].offset_bytes;
    for (auto& piece : out) {
        piece.offset_bytes += base;
    }
}

wire::session_manifest image_layout::session_manifest() const {
    wire::session_manifest s;
    s.chunks.resize(_places.size());
    std::uint64_t at = 0;
    for (std::uint32_t i = 0; i < _places.size(); ++i) {
        const image::chunk_ref& c = ref(i);
        wire::chunk_entry& e = s.chunks[i];
        e.sha256 = c.stored_sha256;
        e.wire_size = c.stored_size;
        e.raw_size = c.raw_size;
        e.target_offset = at;
        e.codec = wire::chunk_codec::zstd;
        e.raw_sha256 = c.raw_sha256;
        at += c.raw_size;
    }
    s.target_size = at;
    return s;
}

result<session::prepared_session> prepare_image_session(const image::chunk_store& store,
                                                        std::string_view name, unsigned threads) {
    auto m = store.load(name);
    if (!m) {
        return m.err();
    }
    const image_layout layout(*m);
    if (layout.chunk_count() == 0) {
        return error::format(errc::invalid_argument, 0, "image {} holds no data: nothing to send",
                             name);
    }
    session::prepared_session p;
    p.manifest = layout.session_manifest();
    auto image_bytes = image::encode_manifest(*m);
    if (!image_bytes) {
        return image_bytes.err();
    }
    p.manifest.image_manifest = std::move(*image_bytes);

    // Each distinct chunk once: images repeat chunks (zeroed runs), the store holds them once.
    std::map<image::sha256_digest, std::size_t> index;  // stored hash -> distinct number
    std::vector<const image::chunk_ref*> distinct;
    std::vector<std::size_t> of_chunk(layout.chunk_count());
    for (std::uint32_t i = 0; i < layout.chunk_count(); ++i) {
        const auto& ref = layout.ref(i);
        auto [it, fresh] = index.try_emplace(ref.stored_sha256, distinct.size());
        if (fresh) {
            distinct.push_back(&ref);
        }
        of_chunk[i] = it->second;
    }
    if (distinct.size() > mapped_chunks_max) {
        return error::format(errc::unsupported, 0,
                             "image {} has {} distinct chunks; a session maps at most {} (about "
                             "{} GiB at 4 MiB chunks)",
                             name, distinct.size(), mapped_chunks_max,
                             mapped_chunks_max * 4 / 1024);
    }
    auto maps = std::make_shared<mappings>();
    maps->maps.resize(distinct.size(), {nullptr, 0});
    std::vector<std::span<const std::byte>> spans(distinct.size());
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::optional<error> failure;
    std::mutex mu;
    // Map and check every chunk before a packet is sent: a damaged store is the sender's
    // error, not a session whose receivers reject a chunk forever.
    auto work = [&] {
        for (std::size_t i; !failed.load() && (i = next.fetch_add(1)) < distinct.size();) {
            const image::chunk_ref& ref = *distinct[i];
            const std::string path = store.chunk_path(ref.stored_sha256);
            auto fail = [&](error e) {
                std::lock_guard lock(mu);
                if (!failure) {
                    failure = std::move(e);
                }
                failed = true;
            };
            const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                fail(error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                                   "chunk {}: cannot open it; nothing sent (shoal image verify {})",
                                   path, name));
                continue;
            }
            struct stat st {};
            if (fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != ref.stored_size) {
                ::close(fd);
                fail(error::format(errc::corrupt, 0,
                                   "chunk {}: {} bytes, the manifest says {}; nothing sent "
                                   "(shoal image verify {})",
                                   path, st.st_size, ref.stored_size, name));
                continue;
            }
            void* a = mmap(nullptr, ref.stored_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
            ::close(fd);
            if (a == MAP_FAILED) {
                fail(error::format(errc::io, errno, "mapping chunk {}", path));
                continue;
            }
            maps->maps[i] = {a, ref.stored_size};
            spans[i] = {static_cast<const std::byte*>(a), ref.stored_size};
            if (session::sha256_of(spans[i]) != ref.stored_sha256) {
                fail(error::format(errc::corrupt, 0,
                                   "chunk {}: SHA-256 does not match; nothing sent (the store "
                                   "is damaged: shoal image verify {})",
                                   path, name));
            }
        }
    };
    const unsigned n = std::max(
        1u, std::min<unsigned>(threads != 0 ? threads : std::thread::hardware_concurrency(),
                               static_cast<unsigned>(distinct.size())));
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < n; ++t) {
        pool.emplace_back(work);
    }
    work();
    for (auto& t : pool) {
        t.join();
    }
    if (failure) {
        return *failure;
    }
    p.chunk_wire.resize(layout.chunk_count());
    p.chunk_frames.resize(layout.chunk_count());
    for (std::size_t i = 0; i < of_chunk.size(); ++i) {
        p.chunk_wire[i] = spans[of_chunk[i]];
    }
    p.storage = maps;
    auto bytes = wire::encode_manifest(p.manifest);
    if (!bytes) {
        return bytes.err();
    }
    p.manifest_bytes = std::move(*bytes);
    p.manifest_sha256 = session::sha256_of(p.manifest_bytes);
    log::info("image {}: {} chunks ({} distinct), {} used bytes, session manifest {} bytes", name,
              layout.chunk_count(), distinct.size(), p.manifest.target_size,
              p.manifest_bytes.size());
    return p;
}

result<image::manifest> image_of_session(const wire::session_manifest& session) {
    if (!session.is_image()) {
        return error(errc::invalid_argument, "the session carries no image (a plain file session)");
    }
    auto m = image::decode_manifest(session.image_manifest, "the session's image manifest");
    if (!m) {
        return m.err();
    }
    const image_layout layout(*m);
    const wire::session_manifest want = layout.session_manifest();
    if (want.chunks.size() != session.chunks.size() || want.target_size != session.target_size) {
        return error::format(errc::malformed, 0,
                             "session of {} chunks ({} bytes) does not carry image {} ({} chunks, "
                             "{} bytes)",
                             session.chunks.size(), session.target_size, m->name,
                             want.chunks.size(), want.target_size);
    }
    for (std::size_t i = 0; i < want.chunks.size(); ++i) {
        const auto& a = want.chunks[i];
        const auto& b = session.chunks[i];
        if (a.sha256 != b.sha256 || a.raw_sha256 != b.raw_sha256 || a.wire_size != b.wire_size ||
            a.raw_size != b.raw_size || a.target_offset != b.target_offset || a.codec != b.codec) {
            return error::format(errc::malformed, 0,
                                 "session chunk {} is not image {}'s chunk {} (hash, size or place "
                                 "differs)",
                                 i, m->name, i);
        }
    }
    return m;
}

result<std::unique_ptr<session::target_placement>> open_image_targets(
    const image::manifest& m, const std::vector<std::string>& targets,
    std::uint64_t new_file_size_bytes, bool resume) {
    if (targets.size() != m.disks.size()) {
        return error::format(errc::invalid_argument, 0,
                             "image {} has {} disk(s): give as many targets ({} given)", m.name,
                             m.disks.size(), targets.size());
    }
    auto owned = std::make_unique<image::manifest>(m);
    std::vector<std::unique_ptr<image::disk_restore>> disks;
    // Every disk planned (and its size checked) before any is touched.
    for (std::size_t i = 0; i < owned->disks.size(); ++i) {
        if (targets[i] == "/dev/null") {
            return error(errc::invalid_argument,
                         "an image session writes disks: /dev/null cannot hold one");
        }
        auto d = image::disk_restore::open(*owned, owned->disks[i], targets[i], new_file_size_bytes,
                                           resume);
        if (!d) {
            return d.err();
        }
        disks.push_back(std::move(*d));
    }
    for (auto& d : disks) {
        SHOAL_RETURN_IF_ERROR(d->begin());
    }
    return std::unique_ptr<session::target_placement>(
        new image_placement(std::move(owned), std::move(disks)));
}

}  // namespace shoal::deploy
