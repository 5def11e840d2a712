#include "wire/manifest.h"

#include <cstring>

namespace shoal::wire {
namespace {

constexpr std::uint32_t manifest_magic = 0x53484d46;  // "SHMF"
constexpr std::uint16_t manifest_version = 3;

void put_u16(std::byte* p, std::uint16_t v) {
    p[0] = std::byte(v >> 8);
    p[1] = std::byte(v);
}
void put_u32(std::byte* p, std::uint32_t v) {
    put_u16(p, static_cast<std::uint16_t>(v >> 16));
    put_u16(p + 2, static_cast<std::uint16_t>(v));
}
void put_u64(std::byte* p, std::uint64_t v) {
    put_u32(p, static_cast<std::uint32_t>(v >> 32));
    put_u32(p + 4, static_cast<std::uint32_t>(v));
}
std::uint16_t get_u16(const std::byte* p) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                      std::to_integer<unsigned>(p[1]));
}
std::uint32_t get_u32(const std::byte* p) {
    return (std::uint32_t{get_u16(p)} << 16) | get_u16(p + 2);
}
std::uint64_t get_u64(const std::byte* p) {
    return (std::uint64_t{get_u32(p)} << 32) | get_u32(p + 4);
}

status check_entries(const session_manifest& m) {
    if (m.chunks.size() > manifest_chunk_count_max) {
        return error::format(errc::invalid_argument, 0, "manifest has {} chunks, at most {}",
                             m.chunks.size(), manifest_chunk_count_max);
    }
    if (m.image_manifest.size() > image_manifest_size_max) {
        return error::format(errc::invalid_argument, 0, "image manifest of {} bytes, at most {}",
                             m.image_manifest.size(), image_manifest_size_max);
    }
    std::uint64_t end_of_previous = 0;
    for (std::size_t i = 0; i < m.chunks.size(); ++i) {
        const chunk_entry& c = m.chunks[i];
        if (c.wire_size == 0 || c.wire_size > chunk_wire_size_max || c.raw_size == 0 ||
            c.raw_size > chunk_raw_size_max) {
            return error::format(errc::malformed, 0,
                                 "manifest chunk {}: wire size {} / raw size {} outside 1..{}", i,
                                 c.wire_size, c.raw_size, chunk_wire_size_max);
        }
        if (c.codec != chunk_codec::raw && c.codec != chunk_codec::zstd) {
            return error::format(errc::malformed, 0, "manifest chunk {}: unknown codec {}", i,
                                 static_cast<unsigned>(c.codec));
        }
        if (c.codec == chunk_codec::raw && c.wire_size != c.raw_size) {
            return error::format(errc::malformed, 0,
                                 "manifest chunk {}: raw chunk with wire size {} != raw size {}", i,
                                 c.wire_size, c.raw_size);
        }
        if (c.codec == chunk_codec::raw && c.raw_sha256 != c.sha256) {
            return error::format(errc::malformed, 0,
                                 "manifest chunk {}: raw chunk whose raw and wire hashes differ", i);
        }
        if (c.target_offset < end_of_previous) {
            return error::format(errc::malformed, 0,
                                 "manifest chunk {} at offset {} overlaps or precedes the one before",
                                 i, c.target_offset);
        }
        if (c.target_offset > m.target_size || m.target_size - c.target_offset < c.raw_size) {
            return error::format(errc::malformed, 0,
                                 "manifest chunk {} ends past the target size {}", i, m.target_size);
        }
        if (m.is_image() && c.target_offset != end_of_previous) {
            return error::format(errc::malformed, 0,
                                 "image session chunk {} at offset {}: chunks must follow each "
                                 "other from 0 (expected {})",
                                 i, c.target_offset, end_of_previous);
        }
        end_of_previous = c.target_offset + c.raw_size;
    }
    if (m.is_image() && end_of_previous != m.target_size) {
        return error::format(errc::malformed, 0,
                             "image session chunks cover {} bytes, the used streams hold {}",
                             end_of_previous, m.target_size);
    }
    return ok();
}

}  // namespace

result<std::vector<std::byte>> encode_manifest(const session_manifest& manifest) {
    if (auto s = check_entries(manifest); !s) {
        return error(errc::invalid_argument, s.err().context());
    }
    std::vector<std::byte> out(manifest_header_size + manifest.chunks.size() * manifest_entry_size +
                               manifest.image_manifest.size());
    std::byte* p = out.data();
    put_u32(p, manifest_magic);
    put_u16(p + 4, manifest_version);
    put_u16(p + 6, 0);
    put_u64(p + 8, manifest.target_size);
    put_u32(p + 16, static_cast<std::uint32_t>(manifest.chunks.size()));
    put_u32(p + 20, static_cast<std::uint32_t>(manifest.image_manifest.size()));
    p += manifest_header_size;
    for (const chunk_entry& c : manifest.chunks) {
        std::memcpy(p, c.sha256.data(), 32);
        put_u32(p + 32, c.wire_size);
        put_u32(p + 36, c.raw_size);
        put_u64(p + 40, c.target_offset);
        p[48] = std::byte(static_cast<std::uint8_t>(c.codec));
        std::memset(p + 49, 0, 7);
        std::memcpy(p + 56, c.raw_sha256.data(), 32);
        p += manifest_entry_size;
    }
    if (!manifest.image_manifest.empty()) {
        std::memcpy(p, manifest.image_manifest.data(), manifest.image_manifest.size());
    }
    return out;
}

result<session_manifest> decode_manifest(std::span<const std::byte> bytes) {
    if (bytes.size() < manifest_header_size) {
        return error::format(errc::truncated, 0, "manifest of {} bytes is shorter than its header",
                             bytes.size());
    }
    const std::byte* p = bytes.data();
    if (get_u32(p) != manifest_magic) {
        return error(errc::malformed, "not a session manifest (bad magic)");
    }
    if (get_u16(p + 4) != manifest_version) {
        return error::format(errc::version, 0, "manifest version {} (this build reads {})",
                             get_u16(p + 4), manifest_version);
    }
    // Flags and reserved bytes must be zero: a flag this build does not know would change
    // what the manifest means, and one manifest must have one encoding (its SHA-256 names it).
    if (get_u16(p + 6) != 0) {
        return error::format(errc::unsupported, 0, "manifest flags {:#06x} unknown to this build",
                             get_u16(p + 6));
    }
    const std::uint32_t image_size = get_u32(p + 20);
    if (image_size > image_manifest_size_max) {
        return error::format(errc::malformed, 0, "manifest claims an image manifest of {} bytes, at most {}",
                             image_size, image_manifest_size_max);
    }
    session_manifest m;
    m.target_size = get_u64(p + 8);
    const std::uint32_t count = get_u32(p + 16);
    if (count > manifest_chunk_count_max) {
        return error::format(errc::malformed, 0, "manifest claims {} chunks, at most {}", count,
                             manifest_chunk_count_max);
    }
    const std::size_t size =
        manifest_header_size + std::size_t{count} * manifest_entry_size + image_size;
    if (bytes.size() != size) {
        return error::format(bytes.size() < size ? errc::truncated : errc::malformed, 0,
                             "manifest of {} bytes, its {} chunks and {}-byte image manifest need {}",
                             bytes.size(), count, image_size, size);
    }
    m.chunks.resize(count);
    p += manifest_header_size;
    static constexpr std::byte zeros[7]{};
    for (chunk_entry& c : m.chunks) {
        if (std::memcmp(p + 49, zeros, sizeof zeros) != 0) {
            return error::format(errc::malformed, 0, "manifest chunk {}: reserved bytes not zero",
                                 &c - m.chunks.data());
        }
        std::memcpy(c.sha256.data(), p, 32);
        c.wire_size = get_u32(p + 32);
        c.raw_size = get_u32(p + 36);
        c.target_offset = get_u64(p + 40);
        c.codec = static_cast<chunk_codec>(std::to_integer<std::uint8_t>(p[48]));
        std::memcpy(c.raw_sha256.data(), p + 56, 32);
        p += manifest_entry_size;
    }
    m.image_manifest.assign(p, p + image_size);
    SHOAL_RETURN_IF_ERROR(check_entries(m));
    return m;
}

}  // namespace shoal::wire
