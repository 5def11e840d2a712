// Chunks for a session from plain bytes, and the receiver's check of each chunk before
// it is written: the wire bytes must match the manifest's SHA-256, and must decode to
// exactly raw_size bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <zstd.h>

#include "common/result.h"
#include "wire/manifest.h"

namespace shoal::session {

struct prepared_session {
    wire::session_manifest manifest;
    std::vector<std::byte> manifest_bytes;
    std::array<std::uint8_t, 32> manifest_sha256{};
    // Chunk i's wire bytes: its compressed frame in chunk_frames[i], or for a raw chunk the
    // caller's input itself (which must then outlive the session; nothing is copied).
    std::vector<std::span<const std::byte>> chunk_wire;
    std::vector<std::vector<std::byte>> chunk_frames;
    // Whatever else chunk_wire points into (an image's chunk files, mapped): kept alive
    // as long as the prepared session is.
    std::shared_ptr<const void> storage;

    // objects[0] = manifest, objects[i+1] = chunk i: what sender::create takes.
    std::vector<std::span<const std::byte>> objects() const;
};

// Cuts `data` into chunks of chunk_size bytes and compresses each with zstd at `level`
// (level 0: send raw) on `threads` threads; a chunk zstd cannot shrink is sent raw, from
// `data` itself, which must stay valid as long as the prepared session is used.
result<prepared_session> prepare_session(std::span<const std::byte> data, std::size_t chunk_size,
                                         int level, unsigned threads);

// SHA-256 of bytes.
std::array<std::uint8_t, 32> sha256_of(std::span<const std::byte> bytes) noexcept;

// Checks wire bytes against their entry and decodes them into out (raw_size bytes).
// Errors: corrupt (hash or decoded size mismatch). Nothing is written to out unless the
// hash matched.
status verify_and_decode(const wire::chunk_entry& entry, std::span<const std::byte> wire,
                         std::span<std::byte> out, ZSTD_DCtx* dctx) noexcept;

}  // namespace shoal::session
