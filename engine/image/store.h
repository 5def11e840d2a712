// The chunk store: a directory tree holding every image's manifest and each chunk once,
// whatever number of images use it.
//
//   STORE/chunks/ab/cd/abcd…ef   one zstd frame, named by the SHA-256 (hex) of its bytes
//   STORE/images/NAME.manifest   the image's manifest (manifest.h encoding)
//   STORE/tmp/                   files being written; renamed into place when complete
//   STORE/lock                   flock: shared by writers (capture, import), exclusive by
//                                rm's sweep of unused chunks, so a sweep never deletes a
//                                chunk that a capture in progress has written but not yet
//                                referenced from a published manifest.
//
// Every file appears by rename(2) of a complete, flushed file, so a crash leaves either the
// old file or the new one, never a half-written one. Reads check the SHA-256 of every chunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/chunk_io.h"
#include "image/manifest.h"

namespace shoal::image {

// The store's directory: --store, else $SHOAL_STORE, else /var/lib/shoal/images.
std::string default_store_path();

class chunk_store final : public chunk_source, public chunk_sink {
public:
    enum class lock_mode { shared, exclusive };

    // Opens (creating with `create`) the store at path and takes its lock in `mode`
    // (waits for it). Errors: not_found (no store there and !create), io.
    static result<std::unique_ptr<chunk_store>> open(const std::string& path, bool create,
                                                     lock_mode mode = lock_mode::shared);
    ~chunk_store() override;
    chunk_store(const chunk_store&) = delete;
    chunk_store& operator=(const chunk_store&) = delete;

    const std::string& path() const noexcept { return _path; }
    std::string chunk_path(const sha256_digest& stored_sha256) const;
    std::string manifest_path(std::string_view name) const;
    // chunk_source/chunk_sink: the store's directory, and chunk_path.
    std::string location() const override { return _path; }
    std::string chunk_name(const sha256_digest& stored_sha256) const override {
        return chunk_path(stored_sha256);
    }

    bool has_chunk(const sha256_digest& stored_sha256) const noexcept override;
    // Stores a frame under the SHA-256 the caller computed; a chunk already present is
    // kept (and not rewritten). The file is flushed by sync() before any manifest names it.
    // Thread-safe. Errors: io, no_space.
    status put_chunk(const sha256_digest& stored_sha256, std::span<const std::byte> frame) override;
    // Reads a chunk into out (resized) and checks its size and SHA-256 against ref.
    // Errors: not_found, corrupt ("chunk FILE: SHA-256 does not match; the store is damaged,
    // run shoal image verify"), truncated.
    status read_chunk(const chunk_ref& ref, std::vector<std::byte>& out) const override;

    // Flushes every chunk written so far to stable storage (syncfs), then writes the
    // manifest to tmp/, flushes it, and renames it over images/NAME.manifest: the image
    // appears (or replaces its previous version) whole or not at all.
    status publish(const manifest& m) override;
    // Reads and validates images/NAME.manifest. Errors name the file.
    result<manifest> load(std::string_view name) const override;
    // Image names, sorted.
    result<std::vector<std::string>> list() const;
    // Removes the manifest, then with the exclusive lock deletes every chunk no remaining
    // manifest names. Returns the bytes freed. A manifest that cannot be read stops the
    // sweep (so its chunks are not deleted): errors name it. Needs lock_mode::exclusive.
    result<std::uint64_t> remove(std::string_view name);
    // Deletes chunks no manifest names and stale tmp/ files. Needs lock_mode::exclusive.
    result<std::uint64_t> sweep();

private:
    chunk_store(std::string path, int lock_fd, lock_mode mode) noexcept;
    std::string _path;
    int _lock_fd = -1;
    lock_mode _mode;
};

}  // namespace shoal::image
