// partclone's image stream: what `partclone.<fs> -c -s DEV -o -` writes and FOG stores
// (compressed) as each dNpM.img. Written from partclone's documentation and public source
// (src/partclone.h, partclone.c, checksum.c); see docs/fog-import.md.
//
// Image format 0002 (partclone >= 0.2.x, all little-endian, packed):
//   image_head_v2        36 bytes  magic "partclone-image\0", partclone version (14),
//                                  image version "0002", endianness 0xC0DE
//   file_system_info_v2  52 bytes  fs name (16), device size, total blocks, used blocks
//                                  (by the fs), used blocks (by the bitmap), block size (u32)
//   image_options_v2     18 bytes  options size (18), image version (2), cpu bits,
//                                  checksum mode, checksum size, blocks per checksum (u32),
//                                  reseed (u8), bitmap mode (u8)
//   crc32                 4 bytes  over the 106 bytes before it
//   bitmap                ceil(total blocks / 8) bytes, bit i of byte b = block 8b+i used
//   crc32                 4 bytes  over the bitmap
//   blocks                every used block in order; after every `blocks per checksum`
//                         blocks, and after the last, a checksum of those blocks
// Image format 0001 (partclone 0.1.x–0.2.x): a 4160-byte header (36 + 28 + 4096 bytes of
// options), one byte per block (1 = used), "BiTmAgIc", then each used block followed by a
// 4-byte checksum computed the old, buggy way (see partclone.cpp).
//
// partclone's CRC32 is the usual reflected 0xEDB88320 polynomial seeded with 0xFFFFFFFF
// and never inverted at the end: crc = ~zlib_crc32(~seed, bytes). With "reseed" (the
// default) each checksum covers its own blocks only; without, the state runs on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "fog/byte_stream.h"

namespace shoal::fog {

inline constexpr std::size_t partclone_v2_header_size = 110;
inline constexpr std::size_t partclone_v1_header_size = 4160;

// Limits on what a header may claim, so a hostile header cannot make us allocate or loop
// without bound. Real images are far inside them.
inline constexpr std::uint32_t partclone_block_size_max = 64u << 20;     // exFAT clusters: 32 MiB
inline constexpr std::uint64_t partclone_total_blocks_max = 1ull << 33;  // a 1 GiB bitmap
// The bytes between two checksums are held until their checksum passes.
inline constexpr std::uint64_t partclone_group_size_bytes_max = 64u << 20;
// Without checksums, verified spans are this long (rounded down to whole blocks).
inline constexpr std::uint64_t partclone_span_size_bytes = 1u << 20;

enum class partclone_checksum : std::uint16_t {
    none = 0x00,
    crc32 = 0x20,
    xxh64 = 0x30,     // newer partclone; not produced by 0.3.x, refused as unsupported
    crc32_v1 = 0xFF,  // format 0001's buggy CRC32 (our name, as partclone's CSM_CRC32_0001)
};

struct partclone_header {
    std::uint16_t image_version = 0;  // 1 or 2
    std::string partclone_version;    // "0.3.23"; empty for format 0001
    std::string fs;                   // "EXTFS", "NTFS", "FAT16", "raw", …
    std::uint64_t device_size_bytes = 0;
    std::uint64_t total_blocks = 0;
    std::uint64_t used_blocks_fs = 0;  // as the filesystem reported it
    std::uint32_t block_size_bytes = 0;
    partclone_checksum checksum = partclone_checksum::none;
    std::uint16_t checksum_size_bytes = 0;
    std::uint32_t blocks_per_checksum = 0;  // 0 with no checksum
    bool reseed = true;
    std::uint16_t cpu_bits = 0;
};

// The used-block bitmap, one bit per block, as partclone stores it (LSB first).
class block_bitmap {
public:
    block_bitmap() = default;
    block_bitmap(std::vector<std::uint8_t> bits, std::uint64_t block_count);

    std::uint64_t block_count() const { return _block_count; }
    std::uint64_t used_count() const { return _used_count; }
    bool test(std::uint64_t block) const { return ((_bits[block >> 3] >> (block & 7)) & 1u) != 0; }
    // The first run of used blocks at or after `from`: {first, count}; count 0 if none.
    struct run {
        std::uint64_t first = 0;
        std::uint64_t count = 0;
    };
    run next_run(std::uint64_t from) const;
    std::span<const std::uint8_t> bytes() const { return _bits; }

private:
    std::uint64_t find(std::uint64_t from, bool used) const;  // first block with that state

    std::vector<std::uint8_t> _bits;
    std::uint64_t _block_count = 0;
    std::uint64_t _used_count = 0;
};

// partclone's CRC32 update (see the top of this file).
std::uint32_t partclone_crc32(std::uint32_t state, std::span<const std::byte> bytes) noexcept;
inline constexpr std::uint32_t partclone_crc32_seed = 0xFFFFFFFFu;

// Reads one partclone stream: the header and bitmap when opened, then the bytes of the
// used blocks in block order, each span only after the checksum covering it has passed.
// Memory: the bitmap plus one checksum group (at most partclone_group_size_bytes_max).
class partclone_reader {
public:
    // Reads and checks the header and the bitmap from `in` (borrowed: it must outlive the
    // reader). `name` names the stream in errors, e.g. the image file. total_blocks_max
    // bounds the bitmap's memory (a fuzzer passes less than a real disk needs).
    static result<partclone_reader> open(
        byte_stream& in, std::string name,
        std::uint64_t total_blocks_max = partclone_total_blocks_max);

    const partclone_header& header() const { return _header; }
    const block_bitmap& bitmap() const { return _bitmap; }
    std::uint64_t used_bytes() const { return _bitmap.used_count() * _header.block_size_bytes; }

    // The next bytes of used blocks, in order, whole blocks, verified. Empty once every
    // used block has been returned, the last checksum has passed and the stream has ended
    // (trailing bytes are an error). The span stays valid until the next call.
    result<std::span<const std::byte>> next();

    // Used blocks returned so far.
    std::uint64_t blocks_read() const { return _blocks_done; }

    partclone_reader(partclone_reader&&) = default;
    partclone_reader& operator=(partclone_reader&&) = default;

private:
    partclone_reader(byte_stream& in, std::string name) : _in(&in), _name(std::move(name)) {}
    status read_header(std::uint64_t total_blocks_max);
    status read_bitmap_bits();
    status read_bitmap_bytes();  // format 0001
    status read_exact(std::span<std::byte> out, std::string_view what);
    error fail(errc code, std::string_view what) const;

    byte_stream* _in;
    std::string _name;
    std::uint64_t _offset = 0;  // bytes of the stream consumed
    partclone_header _header;
    block_bitmap _bitmap;
    std::vector<std::byte> _group;
    std::uint64_t _blocks_done = 0;
    std::uint32_t _crc = partclone_crc32_seed;
    std::uint64_t _blocks_in_crc = 0;  // blocks covered by _crc since the last checksum
    bool _ended = false;
};

}  // namespace shoal::fog
