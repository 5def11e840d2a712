#include "image/manifest.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace shoal::image {

namespace {

constexpr std::byte magic[8] = {std::byte{'S'}, std::byte{'H'}, std::byte{'O'}, std::byte{'A'},
                                std::byte{'L'}, std::byte{'I'}, std::byte{'M'}, std::byte{'G'}};
constexpr std::size_t header_size = 8 + 4 + 4 + 8;
constexpr std::size_t trailer_size = 32;

class writer {
public:
    void u8(std::uint8_t v) { _out.push_back(std::byte{v}); }
    void u16(std::uint16_t v) { le(v, 2); }
    void u32(std::uint32_t v) { le(v, 4); }
    void u64(std::uint64_t v) { le(v, 8); }
    void bytes(std::span<const std::byte> b) { _out.insert(_out.end(), b.begin(), b.end()); }
    void str(std::string_view s) {
        u16(static_cast<std::uint16_t>(s.size()));
        bytes(std::as_bytes(std::span(s.data(), s.size())));
    }
    void digest(const sha256_digest& d) { bytes(std::as_bytes(std::span(d))); }
    std::vector<std::byte>& out() { return _out; }

private:
    void le(std::uint64_t v, int n) {
        for (int i = 0; i < n; ++i) {
            _out.push_back(std::byte(static_cast<std::uint8_t>(v >> (8 * i))));
        }
    }
    std::vector<std::byte> _out;
};

// Bounds-checked reading; the first failure sticks and names the field.
class reader {
public:
    explicit reader(std::span<const std::byte> in) : _in(in) {}
    bool failed() const { return _failed; }
    const char* failed_field() const { return _field; }
    std::size_t position() const { return _pos; }
    std::size_t remaining() const { return _in.size() - _pos; }

    bool take(std::size_t n, const char* field) {
        if (_failed || remaining() < n) {
            fail(field);
            return false;
        }
        return true;
    }
    void fail(const char* field) {
        if (!_failed) {
            _failed = true;
            _field = field;
        }
    }
    std::uint64_t le(int n, const char* field) {
        if (!take(static_cast<std::size_t>(n), field)) {
            return 0;
        }
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) {
            v |= static_cast<std::uint64_t>(
                     std::to_integer<std::uint8_t>(_in[_pos + static_cast<std::size_t>(i)]))
                 << (8 * i);
        }
        _pos += static_cast<std::size_t>(n);
        return v;
    }
    std::uint8_t u8(const char* f) { return static_cast<std::uint8_t>(le(1, f)); }
    std::uint16_t u16(const char* f) { return static_cast<std::uint16_t>(le(2, f)); }
    std::uint32_t u32(const char* f) { return static_cast<std::uint32_t>(le(4, f)); }
    std::uint64_t u64(const char* f) { return le(8, f); }
    std::string str(const char* f, std::size_t max) {
        const std::size_t n = u16(f);
        if (n > max) {
            fail(f);
            return {};
        }
        if (!take(n, f)) {
            return {};
        }
        std::string s(reinterpret_cast<const char*>(_in.data() + _pos), n);
        _pos += n;
        return s;
    }
    std::vector<std::byte> blob(const char* f, std::size_t max) {
        const std::size_t n = u32(f);
        if (n > max || !take(n, f)) {
            fail(f);
            return {};
        }
        std::vector<std::byte> b(_in.begin() + static_cast<std::ptrdiff_t>(_pos),
                                 _in.begin() + static_cast<std::ptrdiff_t>(_pos + n));
        _pos += n;
        return b;
    }
    sha256_digest digest(const char* f) {
        sha256_digest d{};
        if (take(32, f)) {
            std::memcpy(d.data(), _in.data() + _pos, 32);
            _pos += 32;
        }
        return d;
    }
    // A count of elements of at least min_size bytes each: refuses counts the remaining
    // bytes cannot hold, so a hostile count cannot make us allocate.
    std::uint32_t count(const char* f, std::uint32_t max, std::size_t min_size) {
        const std::uint32_t n = u32(f);
        if (n > max || static_cast<std::uint64_t>(n) * min_size > remaining()) {
            fail(f);
            return 0;
        }
        return n;
    }

private:
    std::span<const std::byte> _in;
    std::size_t _pos = 0;
    bool _failed = false;
    const char* _field = "";
};

bool valid_kind(std::uint8_t k) { return k >= 1 && k <= 4; }
bool valid_fs(std::uint8_t f) { return f <= 8; }
bool valid_table(std::uint8_t t) { return t <= 2; }

// The rules both encode and decode hold a manifest to. Returns the first broken one.
status check(const manifest& m, std::string_view what) {
    auto bad = [&](const std::string& text) {
        return error::format(errc::malformed, 0, "{}: {}", what, text);
    };
    if (!check_image_name(m.name)) {
        return bad(fmt::format("image name {:?} is not valid", m.name));
    }
    if (m.description.size() > text_size_max) {
        return bad(fmt::format("description longer than {} bytes", text_size_max));
    }
    if (m.disks.empty() || m.disks.size() > disk_count_max) {
        return bad(fmt::format("{} disks (1..{} allowed)", m.disks.size(), disk_count_max));
    }
    std::uint32_t previous_index = 0;
    for (const disk& d : m.disks) {
        if (d.index <= previous_index) {
            return bad(fmt::format("disk {} out of order", d.index));
        }
        previous_index = d.index;
        if (d.table.entries.size() > partition_count_max) {
            return bad(fmt::format("disk {}: {} partitions", d.index, d.table.entries.size()));
        }
        const std::uint32_t ss = d.table.sector_size_bytes;
        if (ss < 512 || ss > 65536 || (ss & (ss - 1)) != 0) {
            return bad(fmt::format("disk {}: sector size {}", d.index, ss));
        }
        std::size_t raw_total = 0;
        for (const raw_bytes& r : d.table.raw) {
            raw_total += r.bytes.size();
            if (r.offset_bytes > d.size_bytes || r.bytes.size() > d.size_bytes - r.offset_bytes) {
                return bad(fmt::format("disk {}: table bytes at {} outside the disk", d.index,
                                       r.offset_bytes));
            }
        }
        if (raw_total > table_bytes_max) {
            return bad(fmt::format("disk {}: {} bytes of table", d.index, raw_total));
        }
        std::uint64_t previous_start = 0;
        for (const table_entry& e : d.table.entries) {
            if (e.start_bytes < previous_start || e.start_bytes > d.size_bytes ||
                e.size_bytes > d.size_bytes - e.start_bytes) {
                return bad(fmt::format("disk {}: partition {} outside the disk or out of order",
                                       d.index, e.number));
            }
            previous_start = e.start_bytes;
            if (e.type.size() > text_size_max || e.uuid.size() > text_size_max ||
                e.name.size() > text_size_max) {
                return bad(fmt::format("disk {}: partition {}: text too long", d.index, e.number));
            }
        }
        if (d.table.id.size() > text_size_max || d.source.size() > text_size_max) {
            return bad(fmt::format("disk {}: text too long", d.index));
        }
        std::uint64_t end_of_previous = 0;
        for (const region& r : d.regions) {
            if (r.offset_bytes < end_of_previous || r.offset_bytes > d.size_bytes ||
                r.size_bytes > d.size_bytes - r.offset_bytes) {
                return bad(
                    fmt::format("disk {}: region at {} overlaps another or lies outside the disk",
                                d.index, r.offset_bytes));
            }
            end_of_previous = r.offset_bytes + r.size_bytes;
            if (r.fs_size_bytes > r.size_bytes || r.minimum_size_bytes > r.size_bytes) {
                return bad(fmt::format(
                    "disk {}: region at {}: filesystem or minimum larger than the partition",
                    d.index, r.offset_bytes));
            }
            if (r.label.size() > text_size_max) {
                return bad(
                    fmt::format("disk {}: region at {}: label too long", d.index, r.offset_bytes));
            }
            std::uint64_t end = 0;
            std::uint64_t used = 0;
            bool first = true;
            for (const extent& e : r.used) {
                if (e.size_bytes == 0 || (!first && e.offset_bytes <= end) ||
                    e.offset_bytes > r.fs_size_bytes ||
                    e.size_bytes > r.fs_size_bytes - e.offset_bytes) {
                    return bad(fmt::format(
                        "disk {}: region at {}: extent at {} empty, out of order or outside "
                        "the filesystem",
                        d.index, r.offset_bytes, e.offset_bytes));
                }
                first = false;
                end = e.offset_bytes + e.size_bytes;
                used += e.size_bytes;
            }
            if (r.minimum_size_bytes < end) {
                return bad(fmt::format(
                    "disk {}: region at {}: minimum size {} below the last used byte {}", d.index,
                    r.offset_bytes, r.minimum_size_bytes, end));
            }
            if (r.chunks.size() > chunk_count_max) {
                return bad(fmt::format("disk {}: region at {}: {} chunks", d.index, r.offset_bytes,
                                       r.chunks.size()));
            }
            if (!r.chunks.empty() &&
                (r.chunk_size_bytes == 0 || r.chunk_size_bytes > chunk_raw_size_max)) {
                return bad(fmt::format("disk {}: region at {}: chunk size {}", d.index,
                                       r.offset_bytes, r.chunk_size_bytes));
            }
            std::uint64_t chunked = 0;
            for (std::size_t i = 0; i < r.chunks.size(); ++i) {
                const chunk_ref& c = r.chunks[i];
                const bool last = i + 1 == r.chunks.size();
                if (c.raw_size == 0 || c.stored_size == 0 ||
                    c.stored_size > chunk_stored_size_max ||
                    (last ? c.raw_size > r.chunk_size_bytes : c.raw_size != r.chunk_size_bytes)) {
                    return bad(fmt::format("disk {}: region at {}: chunk {} has sizes {}/{}",
                                           d.index, r.offset_bytes, i, c.raw_size, c.stored_size));
                }
                chunked += c.raw_size;
            }
            if (chunked != used) {
                return bad(
                    fmt::format("disk {}: region at {}: chunks hold {} bytes, the used extents {}",
                                d.index, r.offset_bytes, chunked, used));
            }
        }
    }
    return ok();
}

}  // namespace

std::uint64_t region::used_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto& e : used) {
        n += e.size_bytes;
    }
    return n;
}

std::uint64_t manifest::used_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto& d : disks) {
        for (const auto& r : d.regions) {
            n += r.used_bytes();
        }
    }
    return n;
}

std::uint64_t manifest::stored_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto& d : disks) {
        for (const auto& r : d.regions) {
            for (const auto& c : r.chunks) {
                n += c.stored_size;
            }
        }
    }
    return n;
}

result<std::vector<std::byte>> encode_manifest(const manifest& m) {
    if (auto st = check(m, "manifest"); !st) {
        return error(errc::invalid_argument, st.err().context());
    }
    writer w;
    w.bytes(magic);
    w.u32(manifest_version);
    w.u32(0);
    w.u64(0);  // body size, patched below
    w.str(m.name);
    w.u8(static_cast<std::uint8_t>(m.kind));
    w.u64(m.created_unix_s);
    w.str(m.description);
    w.u32(static_cast<std::uint32_t>(m.disks.size()));
    for (const disk& d : m.disks) {
        w.u32(d.index);
        w.u64(d.size_bytes);
        w.str(d.source);
        w.u8(static_cast<std::uint8_t>(d.table.kind));
        w.str(d.table.id);
        w.u32(d.table.sector_size_bytes);
        w.u32(static_cast<std::uint32_t>(d.table.raw.size()));
        for (const raw_bytes& r : d.table.raw) {
            w.u64(r.offset_bytes);
            w.u32(static_cast<std::uint32_t>(r.bytes.size()));
            w.bytes(r.bytes);
        }
        w.u32(static_cast<std::uint32_t>(d.table.entries.size()));
        for (const table_entry& e : d.table.entries) {
            w.u32(e.number);
            w.u64(e.start_bytes);
            w.u64(e.size_bytes);
            w.str(e.type);
            w.str(e.uuid);
            w.str(e.name);
            w.u64(e.attributes);
            w.u8(e.bootable ? 1 : 0);
            w.u8(e.container ? 1 : 0);
        }
        w.u32(static_cast<std::uint32_t>(d.regions.size()));
        for (const region& r : d.regions) {
            w.u32(r.partition_number);
            w.u64(r.offset_bytes);
            w.u64(r.size_bytes);
            w.u64(r.fs_size_bytes);
            w.u64(r.minimum_size_bytes);
            w.u8(static_cast<std::uint8_t>(r.fs));
            w.u32(r.block_size_bytes);
            w.str(r.label);
            w.u32(static_cast<std::uint32_t>(r.used.size()));
            for (const extent& e : r.used) {
                w.u64(e.offset_bytes);
                w.u64(e.size_bytes);
            }
            w.u32(r.chunk_size_bytes);
            w.u32(static_cast<std::uint32_t>(r.chunks.size()));
            for (const chunk_ref& c : r.chunks) {
                w.digest(c.stored_sha256);
                w.digest(c.raw_sha256);
                w.u32(c.stored_size);
                w.u32(c.raw_size);
            }
        }
    }
    auto& out = w.out();
    const std::uint64_t body = out.size() - header_size;
    for (int i = 0; i < 8; ++i) {
        out[16 + static_cast<std::size_t>(i)] =
            std::byte(static_cast<std::uint8_t>(body >> (8 * i)));
    }
    const sha256_digest sum = sha256_of(out);
    w.digest(sum);
    if (out.size() > manifest_size_max) {
        return error::format(errc::invalid_argument, 0, "manifest of {} bytes is over the {} limit",
                             out.size(), manifest_size_max);
    }
    std::vector<std::byte> bytes = std::move(out);  // out is the writer's buffer
    return bytes;
}

result<manifest> decode_manifest(std::span<const std::byte> bytes, std::string_view what) {
    if (bytes.size() < header_size + trailer_size) {
        return error::format(errc::truncated, 0, "{}: {} bytes, shorter than a manifest's header",
                             what, bytes.size());
    }
    if (std::memcmp(bytes.data(), magic, sizeof magic) != 0) {
        return error::format(errc::malformed, 0, "{}: not a shoal image manifest (bad magic)",
                             what);
    }
    reader h(bytes.subspan(8, header_size - 8));
    const std::uint32_t version = h.u32("version");
    const std::uint32_t flags = h.u32("flags");
    const std::uint64_t body_size = h.u64("body size");
    if (version != manifest_version) {
        return error::format(errc::version, 0,
                             "{}: manifest version {}, this shoal reads version {}", what, version,
                             manifest_version);
    }
    if (flags != 0) {
        return error::format(errc::malformed, 0, "{}: unknown flags {:#x}", what, flags);
    }
    if (body_size > bytes.size() - header_size - trailer_size) {
        return error::format(errc::truncated, 0,
                             "{}: cut short: the header says {} bytes of body, {} are there", what,
                             body_size, bytes.size() - header_size - trailer_size);
    }
    if (body_size != bytes.size() - header_size - trailer_size) {
        return error::format(errc::malformed, 0, "{}: {} bytes of trailing garbage", what,
                             bytes.size() - header_size - trailer_size - body_size);
    }
    const auto covered = bytes.first(header_size + body_size);
    const sha256_digest sum = sha256_of(covered);
    if (std::memcmp(sum.data(), bytes.data() + covered.size(), 32) != 0) {
        return error::format(errc::corrupt, 0,
                             "{}: checksum does not match: the file is damaged (capture the image "
                             "again or restore the file from a storage node)",
                             what);
    }
    reader r(bytes.subspan(header_size, body_size));
    manifest m;
    m.name = r.str("name", name_size_max);
    const std::uint8_t kind = r.u8("kind");
    m.created_unix_s = r.u64("created");
    m.description = r.str("description", text_size_max);
    if (!valid_kind(kind)) {
        r.fail("kind");
    }
    m.kind = static_cast<image_kind>(kind);
    const std::uint32_t disk_count = r.count("disk count", disk_count_max, 40);
    m.disks.resize(disk_count);
    for (disk& d : m.disks) {
        if (r.failed()) {
            break;
        }
        d.index = r.u32("disk index");
        d.size_bytes = r.u64("disk size");
        d.source = r.str("disk source", text_size_max);
        const std::uint8_t tk = r.u8("table kind");
        if (!valid_table(tk)) {
            r.fail("table kind");
        }
        d.table.kind = static_cast<table_kind>(tk);
        d.table.id = r.str("table id", text_size_max);
        d.table.sector_size_bytes = r.u32("sector size");
        const std::uint32_t raw_count = r.count("table raw count", 1024, 12);
        d.table.raw.resize(raw_count);
        for (raw_bytes& rb : d.table.raw) {
            rb.offset_bytes = r.u64("table raw offset");
            rb.bytes = r.blob("table raw bytes", table_bytes_max);
        }
        const std::uint32_t entry_count = r.count("partition count", partition_count_max, 40);
        d.table.entries.resize(entry_count);
        for (table_entry& e : d.table.entries) {
            e.number = r.u32("partition number");
            e.start_bytes = r.u64("partition start");
            e.size_bytes = r.u64("partition size");
            e.type = r.str("partition type", text_size_max);
            e.uuid = r.str("partition uuid", text_size_max);
            e.name = r.str("partition name", text_size_max);
            e.attributes = r.u64("partition attributes");
            const std::uint8_t boot = r.u8("bootable");
            const std::uint8_t cont = r.u8("container");
            if (boot > 1 || cont > 1) {
                r.fail("partition flags");
            }
            e.bootable = boot == 1;
            e.container = cont == 1;
        }
        const std::uint32_t region_count = r.count("region count", partition_count_max + 1, 60);
        d.regions.resize(region_count);
        for (region& g : d.regions) {
            g.partition_number = r.u32("region partition");
            g.offset_bytes = r.u64("region offset");
            g.size_bytes = r.u64("region size");
            g.fs_size_bytes = r.u64("filesystem size");
            g.minimum_size_bytes = r.u64("minimum size");
            const std::uint8_t fs = r.u8("filesystem type");
            if (!valid_fs(fs)) {
                r.fail("filesystem type");
            }
            g.fs = static_cast<fs_type>(fs);
            g.block_size_bytes = r.u32("block size");
            g.label = r.str("label", text_size_max);
            const std::uint32_t extent_count = r.count("extent count", extent_count_max, 16);
            g.used.resize(extent_count);
            for (extent& e : g.used) {
                e.offset_bytes = r.u64("extent offset");
                e.size_bytes = r.u64("extent size");
            }
            g.chunk_size_bytes = r.u32("chunk size");
            const std::uint32_t chunk_count = r.count("chunk count", chunk_count_max, 72);
            g.chunks.resize(chunk_count);
            for (chunk_ref& c : g.chunks) {
                c.stored_sha256 = r.digest("chunk stored hash");
                c.raw_sha256 = r.digest("chunk raw hash");
                c.stored_size = r.u32("chunk stored size");
                c.raw_size = r.u32("chunk raw size");
            }
            if (r.failed()) {
                break;
            }
        }
    }
    if (r.failed()) {
        return error::format(errc::malformed, 0,
                             "{}: field '{}' at body byte {} is cut short or "
                             "out of range",
                             what, r.failed_field(), r.position());
    }
    if (r.remaining() != 0) {
        return error::format(errc::malformed, 0, "{}: {} unread bytes at the end of the body", what,
                             r.remaining());
    }
    SHOAL_RETURN_IF_ERROR(check(m, what));
    return m;
}

status check_image_name(std::string_view name) {
    if (name.empty() || name.size() > name_size_max || name[0] == '.' || name[0] == '-') {
        return error::format(errc::invalid_argument, 0,
                             "image name {:?}: use 1..{} letters, digits, '.', '_' or '-', not "
                             "starting with '.' or '-'",
                             name, name_size_max);
    }
    for (char c : name) {
        const bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!okc) {
            return error::format(errc::invalid_argument, 0,
                                 "image name {:?}: character {:?} not allowed (letters, digits, "
                                 "'.', '_', '-')",
                                 name, c);
        }
    }
    return ok();
}

std::string_view kind_name(image_kind k) noexcept {
    switch (k) {
    case image_kind::single_disk_resizable: return "resizable";
    case image_kind::multi_partition_single_disk: return "multipart";
    case image_kind::multi_partition_all_disks: return "all-disks";
    case image_kind::raw: return "raw";
    }
    return "unknown";
}

result<image_kind> parse_kind(std::string_view name) {
    for (auto k : {image_kind::single_disk_resizable, image_kind::multi_partition_single_disk,
                   image_kind::multi_partition_all_disks, image_kind::raw}) {
        if (kind_name(k) == name) {
            return k;
        }
    }
    return error::format(errc::invalid_argument, 0,
                         "image type {:?}: use resizable, multipart, all-disks or raw", name);
}

std::string_view fs_name(fs_type f) noexcept {
    switch (f) {
    case fs_type::raw: return "raw";
    case fs_type::ext2: return "ext2";
    case fs_type::ext3: return "ext3";
    case fs_type::ext4: return "ext4";
    case fs_type::ntfs: return "ntfs";
    case fs_type::fat12: return "fat12";
    case fs_type::fat16: return "fat16";
    case fs_type::fat32: return "fat32";
    case fs_type::swap: return "swap";
    }
    return "unknown";
}

bool fs_is_fat(fs_type f) noexcept {
    return f == fs_type::fat12 || f == fs_type::fat16 || f == fs_type::fat32;
}
bool fs_is_ext(fs_type f) noexcept {
    return f == fs_type::ext2 || f == fs_type::ext3 || f == fs_type::ext4;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (std::uint8_t b : bytes) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}

result<sha256_digest> digest_from_hex(std::string_view hex) {
    sha256_digest d{};
    if (hex.size() != 64) {
        return error::format(errc::invalid_argument, 0, "{:?} is not 64 hex digits", hex);
    }
    for (std::size_t i = 0; i < 64; ++i) {
        const char c = hex[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0) {
            return error::format(errc::invalid_argument, 0, "{:?} is not 64 hex digits", hex);
        }
        d[i / 2] = static_cast<std::uint8_t>(d[i / 2] | (i % 2 == 0 ? v << 4 : v));
    }
    return d;
}

sha256_digest sha256_of(std::span<const std::byte> bytes) noexcept {
    sha256_digest d{};
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
    return d;
}

}  // namespace shoal::image
