#include "fog/byte_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace shoal::fog {

result<std::size_t> read_full(byte_stream& stream, std::span<std::byte> out) {
    std::size_t done = 0;
    while (done < out.size()) {
        auto n = stream.read(out.subspan(done));
        if (!n) {
            return n.err();
        }
        if (*n == 0) {
            break;
        }
        done += *n;
    }
    return done;
}

// ---- memory_stream ----

result<std::size_t> memory_stream::read(std::span<std::byte> out) {
    const std::size_t n = std::min(out.size(), _bytes.size() - _offset);
    if (n > 0) {
        std::memcpy(out.data(), _bytes.data() + _offset, n);
    }
    _offset += n;
    return n;
}

std::string memory_stream::position() const { return position_of(_offset); }
std::string memory_stream::position_of(std::uint64_t offset) const {
    return fmt::format("{} byte {}", _name, offset);
}

// ---- piece_stream ----

result<std::unique_ptr<piece_stream>> piece_stream::open(std::vector<std::string> paths) {
    if (paths.empty()) {
        return error(errc::invalid_argument, "no pieces to read");
    }
    std::unique_ptr<piece_stream> s(new piece_stream(std::move(paths)));
    for (const std::string& p : s->_paths) {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) {
            return error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                                 "piece {} is missing", p);
        }
        if (!S_ISREG(st.st_mode)) {
            return error::format(errc::invalid_argument, 0, "piece {} is not a regular file", p);
        }
        s->_total_size_bytes += static_cast<std::uint64_t>(st.st_size);
        s->_sizes.push_back(static_cast<std::uint64_t>(st.st_size));
    }
    SHOAL_RETURN_IF_ERROR(s->open_piece(0));
    return s;
}

piece_stream::~piece_stream() {
    if (_fd >= 0) {
        ::close(_fd);
    }
}

status piece_stream::open_piece(std::size_t index) {
    if (_fd >= 0) {
        ::close(_fd);
        _fd = -1;
    }
    _piece = index;
    _piece_offset = 0;
    const std::string& p = _paths[index];
    _fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (_fd < 0) {
        return error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                             "opening piece {}", p);
    }
    ::posix_fadvise(_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return ok();
}

result<std::size_t> piece_stream::read(std::span<std::byte> out) {
    while (!out.empty()) {
        if (_fd < 0) {
            return std::size_t{0};  // every piece read
        }
        const ssize_t n = ::read(_fd, out.data(), out.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error::format(errc::io, errno, "reading piece {} at byte {}", _paths[_piece],
                                 _piece_offset);
        }
        if (n > 0) {
            _piece_offset += static_cast<std::uint64_t>(n);
            _read_bytes += static_cast<std::uint64_t>(n);
            return static_cast<std::size_t>(n);
        }
        if (_piece + 1 == _paths.size()) {
            ::close(_fd);
            _fd = -1;
            return std::size_t{0};
        }
        SHOAL_RETURN_IF_ERROR(open_piece(_piece + 1));
    }
    return std::size_t{0};
}

std::string piece_stream::position() const {
    return fmt::format("{} byte {}", _paths[_piece], _piece_offset);
}

std::string piece_stream::position_of(std::uint64_t offset) const {
    for (std::size_t i = 0; i < _paths.size(); ++i) {
        if (offset < _sizes[i] || i + 1 == _paths.size()) {
            return fmt::format("{} byte {}", _paths[i], offset);
        }
        offset -= _sizes[i];
    }
    return position();
}

// ---- decoded_stream ----

std::string_view compression_name(compression c) noexcept {
    switch (c) {
    case compression::none: return "uncompressed";
    case compression::gzip: return "gzip";
    case compression::zstd: return "zstd";
    }
    return "unknown";
}

namespace {

constexpr std::uint8_t gzip_magic[2] = {0x1f, 0x8b};
constexpr std::uint32_t zstd_frame_magic = 0xFD2FB528;
constexpr std::uint32_t zstd_skippable_magic = 0x184D2A50;  // low 4 bits are free

std::uint32_t le32(const std::byte* p) {
    return std::to_integer<std::uint32_t>(p[0]) | (std::to_integer<std::uint32_t>(p[1]) << 8) |
           (std::to_integer<std::uint32_t>(p[2]) << 16) |
           (std::to_integer<std::uint32_t>(p[3]) << 24);
}

z_stream* zs(void* p) { return static_cast<z_stream*>(p); }
ZSTD_DStream* zd(void* p) { return static_cast<ZSTD_DStream*>(p); }

}  // namespace

decoded_stream::decoded_stream(std::unique_ptr<byte_stream> inner)
    : _inner(std::move(inner)), _in(input_buffer_size_bytes) {}

decoded_stream::~decoded_stream() {
    if (_zlib != nullptr) {
        inflateEnd(zs(_zlib));
        delete zs(_zlib);
    }
    if (_zstd != nullptr) {
        ZSTD_freeDStream(zd(_zstd));
    }
}

status decoded_stream::refill() {
    if (_in_begin < _in_end || _inner_done) {
        return ok();
    }
    auto n = _inner->read(_in);
    if (!n) {
        return n.err();
    }
    _in_begin = 0;
    _in_end = *n;
    if (*n == 0) {
        _inner_done = true;
    }
    return ok();
}

result<std::unique_ptr<decoded_stream>> decoded_stream::open(std::unique_ptr<byte_stream> inner) {
    std::unique_ptr<decoded_stream> s(new decoded_stream(std::move(inner)));
    // Gather the first 4 bytes (a read may return fewer).
    while (s->_in_end < 4 && !s->_inner_done) {
        auto n = s->_inner->read(std::span(s->_in).subspan(s->_in_end));
        if (!n) {
            return n.err();
        }
        if (*n == 0) {
            s->_inner_done = true;
        }
        s->_in_end += *n;
    }
    const std::byte* p = s->_in.data();
    if (s->_in_end >= 2 && std::to_integer<std::uint8_t>(p[0]) == gzip_magic[0] &&
        std::to_integer<std::uint8_t>(p[1]) == gzip_magic[1]) {
        s->_kind = compression::gzip;
        auto* z = new z_stream{};
        if (inflateInit2(z, 15 + 16) != Z_OK) {  // 15-bit window, gzip wrapper only
            delete z;
            return error(errc::exhausted, "zlib: inflateInit2 failed (out of memory?)");
        }
        s->_zlib = z;
    } else if (s->_in_end >= 4 &&
               (le32(p) == zstd_frame_magic || (le32(p) & 0xFFFFFFF0u) == zstd_skippable_magic)) {
        s->_kind = compression::zstd;
        ZSTD_DStream* d = ZSTD_createDStream();
        if (d == nullptr) {
            return error(errc::exhausted, "zstd: cannot create a decompression stream");
        }
        s->_zstd = d;
        ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, zstd_window_log_max);
    } else {
        s->_kind = compression::none;
    }
    return s;
}

result<std::size_t> decoded_stream::read(std::span<std::byte> out) {
    if (out.empty() || _done) {
        return std::size_t{0};
    }
    result<std::size_t> n = std::size_t{0};
    switch (_kind) {
    case compression::none:
        if (_in_begin < _in_end) {  // the bytes read to detect the format come first
            const std::size_t k = std::min(out.size(), _in_end - _in_begin);
            std::memcpy(out.data(), _in.data() + _in_begin, k);
            _in_begin += k;
            n = k;
        } else {
            n = _inner->read(out);
        }
        break;
    case compression::gzip: n = read_gzip(out); break;
    case compression::zstd: n = read_zstd(out); break;
    }
    if (!n) {
        return n;
    }
    if (*n == 0) {
        _done = true;
    }
    _decoded_bytes += *n;
    return n;
}

result<std::size_t> decoded_stream::read_gzip(std::span<std::byte> out) {
    z_stream* z = zs(_zlib);
    z->next_out = reinterpret_cast<Bytef*>(out.data());
    // zlib counts in uInt; a read never needs more than 1 GiB at once.
    z->avail_out = static_cast<uInt>(std::min<std::size_t>(out.size(), 1u << 30));
    while (z->avail_out > 0) {
        SHOAL_RETURN_IF_ERROR(refill());
        if (_in_begin == _in_end) {  // the input has ended
            if (_in_member) {
                return error::format(errc::truncated, 0,
                                     "{}: the gzip stream ends inside a member: truncated "
                                     "(a piece missing or cut short?)",
                                     _inner->position());
            }
            break;
        }
        if (!_in_member) {
            // Between members: only another member may follow (pigz and cat a.gz b.gz).
            if (_in_end - _in_begin >= 2 || _inner_done) {
                const std::byte* p = _in.data() + _in_begin;
                if (_in_end - _in_begin < 2 ||
                    std::to_integer<std::uint8_t>(p[0]) != gzip_magic[0] ||
                    std::to_integer<std::uint8_t>(p[1]) != gzip_magic[1]) {
                    return error::format(errc::malformed, 0,
                                         "{}: data after the last gzip member is not gzip",
                                         _inner->position());
                }
            }
            if (inflateReset(z) != Z_OK) {
                return error(errc::malformed, "zlib: inflateReset failed");
            }
            _in_member = true;
            start_member();
        }
        z->next_in = reinterpret_cast<Bytef*>(_in.data() + _in_begin);
        z->avail_in = static_cast<uInt>(_in_end - _in_begin);
        const int rc = inflate(z, Z_NO_FLUSH);
        _in_begin = _in_end - z->avail_in;
        if (rc == Z_STREAM_END) {
            _in_member = false;
            continue;
        }
        if (rc == Z_BUF_ERROR) {
            continue;  // needs more input; refill() brings it or reports the end
        }
        if (rc != Z_OK) {
            return corrupt("gzip member", z->msg != nullptr ? z->msg : "inflate error");
        }
    }
    return out.size() - z->avail_out;
}

result<std::size_t> decoded_stream::read_zstd(std::span<std::byte> out) {
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    while (ob.pos < ob.size) {
        SHOAL_RETURN_IF_ERROR(refill());
        if (_in_begin == _in_end) {
            if (_in_member) {
                return error::format(errc::truncated, 0,
                                     "{}: the zstd stream ends inside a frame: truncated "
                                     "(a piece missing or cut short?)",
                                     _inner->position());
            }
            break;
        }
        if (!_in_member) {
            start_member();
        }
        ZSTD_inBuffer ib{_in.data(), _in_end, _in_begin};
        const std::size_t rc = ZSTD_decompressStream(zd(_zstd), &ob, &ib);
        _in_begin = ib.pos;
        if (ZSTD_isError(rc)) {
            return corrupt("zstd frame", ZSTD_getErrorName(rc));
        }
        // 0 means a frame ended exactly here; anything else, that more is owed.
        _in_member = rc != 0;
    }
    return ob.pos;
}

std::string decoded_stream::position() const { return _inner->position(); }

std::string decoded_stream::position_of(std::uint64_t offset) const {
    return fmt::format("decompressed byte {}", offset);
}

// A checksum fails where a member or frame ends, often pieces after the damage: name
// where the damaged member began too, which is where a person should look.
error decoded_stream::corrupt(std::string_view codec, std::string_view why) const {
    const std::string here = _inner->position();
    const std::string start = _inner->position_of(_member_start);
    const std::size_t slash = here.rfind('/');
    return error::format(errc::corrupt, 0, "{}: the {} starting here is corrupt ({}; found at {})",
                         start, codec, why,
                         slash == std::string::npos ? here : here.substr(slash + 1));
}

}  // namespace shoal::fog
