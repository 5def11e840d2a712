#include "fog/partclone.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace shoal::fog {
namespace {

constexpr char image_magic[] = "partclone-image";  // 15 bytes, then NUL in format 0002
constexpr std::size_t image_magic_size = 15;
constexpr char bitmap_magic_v1[] = "BiTmAgIc";
constexpr std::size_t bitmap_magic_v1_size = 8;
constexpr std::uint16_t endian_magic = 0xC0DE;
constexpr std::uint8_t bitmap_mode_bit = 0x01;
constexpr std::size_t options_v2_size = 18;
// partimage's volume magic: FOG's format 1 (gzip of partimage), which is not partclone.
constexpr char partimage_magic[] = "PaRtImAgE-VoLuMe";

std::uint16_t le16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) |
                                      (std::to_integer<unsigned>(p[1]) << 8));
}
std::uint32_t le32(const std::byte* p) {
    return std::uint32_t{le16(p)} | (std::uint32_t{le16(p + 2)} << 16);
}
std::uint64_t le64(const std::byte* p) {
    return std::uint64_t{le32(p)} | (std::uint64_t{le32(p + 4)} << 32);
}

// A fixed-size text field: up to its first NUL, printable ASCII only (else it is cut there).
std::string text_field(const std::byte* p, std::size_t size) {
    std::string s;
    for (std::size_t i = 0; i < size; ++i) {
        const auto c = std::to_integer<unsigned char>(p[i]);
        if (c == 0 || c < 0x20 || c > 0x7e) {
            break;
        }
        s.push_back(static_cast<char>(c));
    }
    return s;
}

// Format 0001's CRC32: the table-driven update of partclone's crc32_0001(), which feeds
// the first byte of the buffer `size` times (the missing "++" partclone keeps for
// compatibility). Only format 0001 images use it.
struct crc_table {
    std::uint32_t v[256];
    constexpr crc_table() : v{} {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int j = 0; j < 8; ++j) {
                c = (c & 1u) != 0 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
            }
            v[i] = c;
        }
    }
};
constexpr crc_table crc_tab;

std::uint32_t crc32_v1(std::uint32_t state, std::span<const std::byte> block) {
    if (block.empty()) {
        return state;
    }
    const auto b = std::to_integer<std::uint32_t>(block[0]);
    for (std::size_t i = 0; i < block.size(); ++i) {
        state = (state >> 8) ^ crc_tab.v[(state ^ b) & 0xffu];
    }
    return state;
}

}  // namespace

std::uint32_t partclone_crc32(std::uint32_t state, std::span<const std::byte> bytes) noexcept {
    // zlib's crc32 inverts on the way in and out; partclone's does neither.
    const auto z =
        crc32_z(~state & 0xFFFFFFFFul, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size());
    return ~static_cast<std::uint32_t>(z);
}

// ---- block_bitmap ----

block_bitmap::block_bitmap(std::vector<std::uint8_t> bits, std::uint64_t block_count)
    : _bits(std::move(bits)), _block_count(block_count) {
    SHOAL_ASSERT(_bits.size() == (block_count + 7) / 8);
    // Bits past the last block mean nothing: clear them, so that counting and searching
    // need no special case for the last byte.
    if ((block_count & 7) != 0) {
        _bits.back() &= static_cast<std::uint8_t>((1u << (block_count & 7)) - 1);
    }
    for (std::uint8_t b : _bits) {
        _used_count += static_cast<std::uint64_t>(std::popcount(b));
    }
}

std::uint64_t block_bitmap::find(std::uint64_t from, bool used) const {
    std::uint64_t i = from;
    while (i < _block_count) {
        if ((i & 7) == 0) {
            // Skip whole bytes that are all free (or all used) at once.
            const std::uint8_t skip = used ? 0x00 : 0xFF;
            std::uint64_t byte = i >> 3;
            while (byte < _bits.size() && _bits[byte] == skip) {
                ++byte;
            }
            i = byte << 3;
            if (i >= _block_count) {
                break;
            }
        }
        if (test(i) == used) {
            return i;
        }
        ++i;
    }
    return _block_count;
}

block_bitmap::run block_bitmap::next_run(std::uint64_t from) const {
    const std::uint64_t first = find(from, true);
    if (first >= _block_count) {
        return {_block_count, 0};
    }
    const std::uint64_t end = find(first, false);
    return {first, end - first};
}

// ---- partclone_reader ----

error partclone_reader::fail(errc code, std::string_view what) const {
    return error::format(code, 0, "{}: partclone stream byte {}: {}", _name, _offset, what);
}

status partclone_reader::read_exact(std::span<std::byte> out, std::string_view what) {
    auto n = read_full(*_in, out);
    if (!n) {
        return n.err();
    }
    if (*n != out.size()) {
        _offset += *n;
        return error::format(errc::truncated, 0,
                             "{}: partclone stream ends at byte {} inside the {} (a piece "
                             "missing or cut short?)",
                             _name, _offset, what);
    }
    _offset += *n;
    return ok();
}

result<partclone_reader> partclone_reader::open(byte_stream& in, std::string name,
                                                std::uint64_t total_blocks_max) {
    partclone_reader r(in, std::move(name));
    SHOAL_RETURN_IF_ERROR(r.read_header(std::min(total_blocks_max, partclone_total_blocks_max)));
    if (r._header.image_version == 1) {
        SHOAL_RETURN_IF_ERROR(r.read_bitmap_bytes());
    } else {
        SHOAL_RETURN_IF_ERROR(r.read_bitmap_bits());
    }
    return r;
}

status partclone_reader::read_header(std::uint64_t total_blocks_max) {
    std::byte h[partclone_v2_header_size];
    SHOAL_RETURN_IF_ERROR(read_exact(h, "header"));
    if (std::memcmp(h, image_magic, image_magic_size) != 0) {
        if (std::memcmp(h, partimage_magic, sizeof partimage_magic - 1) == 0) {
            _offset = 0;
            return fail(errc::unsupported,
                        "a partimage image (FOG's oldest format 1), not partclone: not supported");
        }
        _offset = 0;
        return fail(errc::malformed, "no \"partclone-image\" magic: not a partclone image");
    }
    // Both formats keep the version at the same place: v2 at 30 (16 + 14), v1 at 30 (15 + 15).
    const std::string version = text_field(h + 30, 4);
    partclone_header& ph = _header;
    if (version == "0002") {
        ph.image_version = 2;
        ph.partclone_version = text_field(h + 16, 14);
        if (le16(h + 34) != endian_magic) {
            _offset = 34;
            return fail(errc::unsupported,
                        "written on a big-endian machine (endianness mark is not 0xC0DE)");
        }
        const std::uint32_t want = le32(h + 106);
        const std::uint32_t got =
            partclone_crc32(partclone_crc32_seed, std::span<const std::byte>(h, 106));
        if (want != got) {
            _offset = 106;
            return fail(errc::corrupt, fmt::format("header CRC32 {:08x} does not match the "
                                                   "header's bytes ({:08x})",
                                                   want, got));
        }
        const std::byte* fs = h + 36;
        ph.fs = text_field(fs, 16);
        ph.device_size_bytes = le64(fs + 16);
        ph.total_blocks = le64(fs + 24);
        ph.used_blocks_fs = le64(fs + 32);
        ph.block_size_bytes = le32(fs + 48);
        const std::byte* opt = h + 88;
        const std::uint32_t options_size = le32(opt);
        const std::uint16_t options_version = le16(opt + 4);
        ph.cpu_bits = le16(opt + 6);
        ph.checksum = static_cast<partclone_checksum>(le16(opt + 8));
        ph.checksum_size_bytes = le16(opt + 10);
        ph.blocks_per_checksum = le32(opt + 12);
        ph.reseed = std::to_integer<unsigned>(opt[16]) != 0;
        const auto bitmap_mode = std::to_integer<std::uint8_t>(opt[17]);
        _offset = 88;
        if (options_size != options_v2_size || options_version != 2) {
            return fail(errc::unsupported,
                        fmt::format("image options of {} bytes, version {}: only format 0002's "
                                    "18-byte options are known",
                                    options_size, options_version));
        }
        if (bitmap_mode != bitmap_mode_bit) {
            return fail(errc::unsupported,
                        fmt::format("bitmap mode {} (only 1, one bit per block, is written by "
                                    "partclone 0.3)",
                                    bitmap_mode));
        }
        switch (ph.checksum) {
        case partclone_checksum::none:
            if (ph.checksum_size_bytes != 0 || ph.blocks_per_checksum != 0) {
                return fail(errc::malformed, "no checksum, yet a checksum size or interval");
            }
            break;
        case partclone_checksum::crc32:
            if (ph.checksum_size_bytes != 4 || ph.blocks_per_checksum == 0) {
                return fail(errc::malformed,
                            fmt::format("CRC32 with checksum size {} every {} blocks",
                                        ph.checksum_size_bytes, ph.blocks_per_checksum));
            }
            break;
        case partclone_checksum::xxh64:
            return fail(errc::unsupported,
                        "XXH64 checksums (newer partclone) are not supported; FOG's partclone "
                        "writes CRC32 or none");
        default:
            return fail(errc::malformed, fmt::format("unknown checksum mode 0x{:x}",
                                                     static_cast<unsigned>(ph.checksum)));
        }
    } else if (version == "0001") {
        ph.image_version = 1;
        // head_v1: magic 15, fs 15, version 4, padding 2; fs_info_v1 at 36, packed:
        // block size (i32), device size, total blocks, used blocks (u64 each).
        ph.fs = text_field(h + 15, 15);
        ph.block_size_bytes = le32(h + 36);
        ph.device_size_bytes = le64(h + 40);
        ph.total_blocks = le64(h + 48);
        ph.used_blocks_fs = le64(h + 56);
        ph.checksum = partclone_checksum::crc32_v1;
        ph.checksum_size_bytes = 4;
        ph.blocks_per_checksum = 1;
        ph.reseed = false;
        // The rest of the 4096-byte options block carries nothing: read past it.
        std::vector<std::byte> rest(partclone_v1_header_size - partclone_v2_header_size);
        SHOAL_RETURN_IF_ERROR(read_exact(rest, "format 0001 header"));
        // partclone itself trusts total blocks × block size over the stored device size.
        if (ph.block_size_bytes != 0 && ph.total_blocks <= total_blocks_max) {
            ph.device_size_bytes = ph.total_blocks * ph.block_size_bytes;
        }
        _offset = 36;
    } else {
        _offset = 30;
        return fail(errc::version,
                    fmt::format("image format \"{}\": only 0001 and 0002 are known", version));
    }
    // Geometry: bounded, and consistent (total blocks × block size fit in the device).
    if (ph.block_size_bytes == 0 || ph.block_size_bytes > partclone_block_size_max) {
        return fail(errc::malformed, fmt::format("block size {} outside 1..{}", ph.block_size_bytes,
                                                 partclone_block_size_max));
    }
    if (ph.total_blocks > total_blocks_max) {
        return fail(errc::unsupported, fmt::format("{} blocks: more than the {} this build reads",
                                                   ph.total_blocks, total_blocks_max));
    }
    if (ph.total_blocks * ph.block_size_bytes > ph.device_size_bytes) {
        return fail(errc::malformed,
                    fmt::format("{} blocks of {} bytes do not fit the device size {}",
                                ph.total_blocks, ph.block_size_bytes, ph.device_size_bytes));
    }
    if (ph.blocks_per_checksum != 0 && std::uint64_t{ph.blocks_per_checksum} * ph.block_size_bytes >
                                           partclone_group_size_bytes_max) {
        return fail(errc::unsupported,
                    fmt::format("a checksum every {} blocks of {} bytes: more than the {} MiB "
                                "held for verification",
                                ph.blocks_per_checksum, ph.block_size_bytes,
                                partclone_group_size_bytes_max >> 20));
    }
    _offset = ph.image_version == 2 ? partclone_v2_header_size : partclone_v1_header_size;
    return ok();
}

status partclone_reader::read_bitmap_bits() {
    const std::uint64_t size = (_header.total_blocks + 7) / 8;
    // Grown as the bytes arrive, so that a header promising a huge bitmap over a short
    // stream costs no more memory than the stream holds.
    std::vector<std::uint8_t> bits;
    constexpr std::size_t step = 1u << 20;
    std::uint32_t crc = partclone_crc32_seed;
    const std::uint64_t bitmap_offset = _offset;
    while (bits.size() < size) {
        const std::size_t at = bits.size();
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(step, size - at));
        bits.resize(at + n);
        auto* p = reinterpret_cast<std::byte*>(bits.data() + at);
        SHOAL_RETURN_IF_ERROR(read_exact({p, n}, "bitmap"));
        crc = partclone_crc32(crc, {p, n});
    }
    std::byte tail[4];
    SHOAL_RETURN_IF_ERROR(read_exact(tail, "bitmap's CRC32"));
    if (le32(tail) != crc) {
        _offset = bitmap_offset;
        return fail(errc::corrupt,
                    fmt::format("bitmap CRC32 {:08x} does not match its {} bytes ({:08x})",
                                le32(tail), size, crc));
    }
    _bitmap = block_bitmap(std::move(bits), _header.total_blocks);
    return ok();
}

status partclone_reader::read_bitmap_bytes() {
    const std::uint64_t total = _header.total_blocks;
    std::vector<std::uint8_t> bits;
    std::vector<std::byte> buf(std::min<std::uint64_t>(total, 1u << 20));
    std::uint64_t block = 0;
    while (block < total) {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - block));
        const std::uint64_t at = _offset;
        SHOAL_RETURN_IF_ERROR(read_exact({buf.data(), n}, "bitmap"));
        bits.resize((block + n + 7) / 8);
        for (std::size_t i = 0; i < n; ++i, ++block) {
            const auto v = std::to_integer<unsigned>(buf[i]);
            if (v > 1) {
                _offset = at + i;
                return fail(errc::malformed,
                            fmt::format("format 0001 bitmap byte {} is not 0 or 1", v));
            }
            bits[block >> 3] = static_cast<std::uint8_t>(bits[block >> 3] | (v << (block & 7)));
        }
    }
    std::byte magic[bitmap_magic_v1_size];
    SHOAL_RETURN_IF_ERROR(read_exact(magic, "bitmap's end mark"));
    if (std::memcmp(magic, bitmap_magic_v1, bitmap_magic_v1_size) != 0) {
        _offset -= bitmap_magic_v1_size;
        return fail(errc::corrupt, "no \"BiTmAgIc\" mark after the format 0001 bitmap");
    }
    _bitmap = block_bitmap(std::move(bits), total);
    return ok();
}

result<std::span<const std::byte>> partclone_reader::next() {
    const std::uint64_t used = _bitmap.used_count();
    const std::uint32_t bs = _header.block_size_bytes;
    const std::size_t cs_size = _header.checksum_size_bytes;
    const std::uint64_t per_cs = _header.blocks_per_checksum;
    if (_blocks_done == used) {
        if (!_ended) {
            // After the last block (and its checksum) the stream must end.
            std::byte extra[1];
            auto n = read_full(*_in, extra);
            if (!n) {
                return n.err();
            }
            if (*n != 0) {
                return fail(errc::malformed,
                            "data after the last used block: not one partclone image, or a "
                            "bitmap that does not match the data");
            }
            _ended = true;
        }
        return std::span<const std::byte>{};
    }
    // Blocks in this span: up to the next checksum, or a fixed span without checksums.
    std::uint64_t blocks;
    if (per_cs != 0) {
        blocks = per_cs - _blocks_in_crc;
    } else {
        blocks = std::max<std::uint64_t>(1, partclone_span_size_bytes / bs);
    }
    blocks = std::min(blocks, used - _blocks_done);
    const std::size_t size = static_cast<std::size_t>(blocks * bs);
    if (_group.size() < size) {
        _group.resize(size);
    }
    const std::uint64_t group_offset = _offset;
    std::span<std::byte> data(_group.data(), size);
    SHOAL_RETURN_IF_ERROR(read_exact(data, "block data"));
    if (_header.checksum == partclone_checksum::none) {
        _blocks_done += blocks;
        return std::span<const std::byte>(data);
    }
    if (_header.checksum == partclone_checksum::crc32_v1) {
        _crc = crc32_v1(_crc, data);  // one block per checksum in format 0001
    } else {
        _crc = partclone_crc32(_crc, data);
    }
    _blocks_in_crc += blocks;
    const bool last = _blocks_done + blocks == used;
    if (_blocks_in_crc == per_cs || last) {
        std::byte cs[8];
        SHOAL_RETURN_IF_ERROR(read_exact({cs, cs_size}, "block checksum"));
        if (le32(cs) != _crc) {
            _offset = group_offset;
            std::string what = fmt::format(
                "CRC32 {:08x} of used blocks {}..{} does not match ({:08x}): corrupt data",
                le32(cs), _blocks_done, _blocks_done + blocks - 1, _crc);
            if (_header.image_version == 1 && _blocks_done == 0) {
                what += " (or a format 0001 image with the 64-bit CRC bug, not supported)";
            }
            return fail(errc::corrupt, what);
        }
        _blocks_in_crc = 0;
        if (_header.reseed) {
            _crc = partclone_crc32_seed;
        }
    }
    _blocks_done += blocks;
    return std::span<const std::byte>(data);
}

}  // namespace shoal::fog
