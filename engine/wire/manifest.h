// The session manifest: what a multicast session carries and where each piece lands.
// It travels in-band as the session's first blocks; receivers accept it only if its
// SHA-256 matches the one in the authenticated announce packet.
//
// Encoding (network byte order):
//   u32 magic 'SHMF', u16 version (3), u16 flags (0), u64 target_size, u32 chunk_count,
//   u32 image_manifest_size, then chunk_count entries of 88 bytes:
//   u8[32] sha256 of the chunk's wire bytes, u32 wire_size, u32 raw_size,
//   u64 target_offset, u8 codec, u8[7] zero, u8[32] sha256 of the raw bytes;
//   then image_manifest_size bytes: an image manifest (image/manifest.h), or nothing.
// The raw hash lets a restarted receiver keep the chunks already on its target
// (version 2; version 1 had no raw hash).
//
// An *image session* (version 3) carries an image from a chunk store: the image's
// manifest rides along (so the announce's SHA-256 authenticates it too), and the target
// is not one flat range but the concatenation of the image's used streams (every region
// of every disk, in the image manifest's order): target_offset is a position in that
// virtual space, target_size its length, and the chunks must tile it exactly, in order.
// The receiver maps each chunk to disk extents with the image manifest (deploy/).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"

namespace shoal::wire {

enum class chunk_codec : std::uint8_t { raw = 0, zstd = 1 };

inline constexpr std::size_t manifest_header_size = 24;
inline constexpr std::size_t manifest_entry_size = 88;
// Bounds receiver memory; a store's chunk is a zstd frame of up to 16 MiB + 64 KiB.
inline constexpr std::uint32_t chunk_wire_size_max = (16u << 20) + (1u << 16);
inline constexpr std::uint32_t chunk_raw_size_max = 16u << 20;
inline constexpr std::uint32_t manifest_chunk_count_max = 4u << 20;  // 16 TiB of 4 MiB chunks
inline constexpr std::uint32_t image_manifest_size_max = 64u << 20;  // = a receiver's default

struct chunk_entry {
    std::array<std::uint8_t, 32> sha256{};  // of the wire bytes
    std::uint32_t wire_size = 0;            // bytes sent (compressed when codec is zstd)
    std::uint32_t raw_size = 0;             // bytes written to the target
    std::uint64_t target_offset = 0;
    chunk_codec codec = chunk_codec::raw;
    std::array<std::uint8_t, 32> raw_sha256{};  // of the bytes written to the target
};

struct session_manifest {
    std::uint64_t target_size = 0;   // the receiver's target must hold this many bytes
    std::vector<chunk_entry> chunks; // sorted by target_offset, not overlapping
    // An image session: the image manifest's encoded bytes (empty: a flat target). Then
    // target_size is the image's used bytes and the chunks tile [0, target_size) in order.
    std::vector<std::byte> image_manifest;

    bool is_image() const noexcept { return !image_manifest.empty(); }
};

// Encodes into a new buffer. Errors: invalid_argument if the manifest breaks the rules
// decode_manifest checks (so a sender cannot emit what receivers would refuse).
result<std::vector<std::byte>> encode_manifest(const session_manifest& manifest);

// Decodes and validates: flags and reserved bytes zero, sizes within limits, extents inside
// target_size, sorted and not overlapping (an image session's: tiling it). Errors name the
// entry at fault. The image manifest's own content is checked where it is used (deploy/).
result<session_manifest> decode_manifest(std::span<const std::byte> bytes);

}  // namespace shoal::wire
