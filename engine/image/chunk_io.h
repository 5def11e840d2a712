// Where chunks go to and come from, abstractly: a local chunk store (store.h) or a storage
// node over HTTP (control/agent/http_store.h). Capture and the builder write through a
// chunk_sink; restore and verify read through a chunk_source. Both check nothing for the
// caller but what they say: a source's read_chunk checks the stored SHA-256 and size
// against the reference before it returns the bytes, so no unverified frame reaches a disk.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"

namespace shoal::image {

class chunk_sink {
public:
    virtual ~chunk_sink() = default;

    // What to call this sink in messages: a store's directory, a server's URL.
    virtual std::string location() const = 0;
    // True when the sink already holds the chunk (the caller may then skip put_chunk).
    // A sink that cannot tell (an unreachable server) answers false.
    virtual bool has_chunk(const sha256_digest& stored_sha256) const noexcept = 0;
    // Stores a compressed frame under the SHA-256 the caller computed. A chunk already held
    // is kept. Must be thread-safe: the builder calls it from every compressing thread.
    virtual status put_chunk(const sha256_digest& stored_sha256,
                             std::span<const std::byte> frame) = 0;
    // Makes the image visible, whole or not at all, after every chunk it names is durable.
    virtual status publish(const manifest& m) = 0;
};

class chunk_source {
public:
    virtual ~chunk_source() = default;

    // What to call this source in messages.
    virtual std::string location() const = 0;
    // Reads and validates the manifest of image `name`.
    virtual result<manifest> load(std::string_view name) const = 0;
    virtual bool has_chunk(const sha256_digest& stored_sha256) const noexcept = 0;
    // Reads a chunk's stored frame into out (resized) and checks its size and SHA-256
    // against ref. Thread-safe. Errors: not_found, corrupt, truncated, io/peer_gone.
    virtual status read_chunk(const chunk_ref& ref, std::vector<std::byte>& out) const = 0;
    // How messages name a chunk of this source (a file path, a URL).
    virtual std::string chunk_name(const sha256_digest& stored_sha256) const = 0;
};

}  // namespace shoal::image
