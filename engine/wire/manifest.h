// The session manifest: what a multicast session carries and where each piece lands.
// It travels in-band as the session's first blocks; receivers accept it only if its
// SHA-256 matches the one in the authenticated announce packet.
//
// Encoding (network byte order):
//   u32 magic 'SHMF', u16 version (2), u16 flags (0), u64 target_size, u32 chunk_count,
//   u32 reserved, then chunk_count entries of 88 bytes:
//   u8[32] sha256 of the chunk's wire bytes, u32 wire_size, u32 raw_size,
//   u64 target_offset, u8 codec, u8[7] zero, u8[32] sha256 of the raw bytes.
// The raw hash lets a restarted receiver keep the chunks already on its target
// (version 2; version 1 had no raw hash).
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
inline constexpr std::uint32_t chunk_wire_size_max = 16u << 20;  // bounds receiver memory
inline constexpr std::uint32_t chunk_raw_size_max = 16u << 20;
inline constexpr std::uint32_t manifest_chunk_count_max = 4u << 20;  // 16 TiB of 4 MiB chunks

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
};

// Encodes into a new buffer. Errors: invalid_argument if the manifest breaks the rules
// decode_manifest checks (so a sender cannot emit what receivers would refuse).
result<std::vector<std::byte>> encode_manifest(const session_manifest& manifest);

// Decodes and validates: flags and reserved bytes zero, sizes within limits, extents inside
// target_size, sorted and not overlapping. Errors name the entry at fault.
result<session_manifest> decode_manifest(std::span<const std::byte> bytes);

}  // namespace shoal::wire
