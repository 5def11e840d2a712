// Multicast of an image from the chunk store, without recompressing.
//
// The store's chunks are already zstd frames named by their SHA-256, with the raw SHA-256
// in the image manifest, so a session sends them as they are: session chunk i is the
// image's chunk i (every region of every disk, in the manifest's order), its wire hash the
// frame's (stored) SHA-256, its raw hash the manifest's. The image manifest rides in the
// session manifest (wire/manifest.h, version 3), so the announce's authenticated SHA-256
// covers it; a session chunk's target_offset is its position in the concatenation of the
// used streams, which the receiver maps to disk extents with the image manifest
// (image::region_map) and writes as `shoal image restore` would (image::disk_restore):
// table invalidated first, partition table written last, filesystems grown.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"
#include "image/restore.h"
#include "image/store.h"
#include "session/chunks.h"
#include "session/writer.h"
#include "wire/manifest.h"

namespace shoal::deploy {

// Session chunk -> image chunk: which disk, which region, which chunk of it.
struct chunk_place {
    std::uint32_t disk = 0;    // index into manifest.disks
    std::uint32_t region = 0;  // index into that disk's regions
    std::uint32_t chunk = 0;   // index into that region's chunks
};

// The image's chunks in session order, with each one's place. Pure (no I/O).
// `m` must outlive the layout.
class image_layout {
public:
    explicit image_layout(const image::manifest& m);
    std::size_t chunk_count() const noexcept { return _places.size(); }
    const chunk_place& place(std::uint32_t chunk) const noexcept { return _places[chunk]; }
    const image::chunk_ref& ref(std::uint32_t chunk) const noexcept;
    // Chunk `chunk`'s pieces on its disk (offsets from the disk's start, regions at their
    // captured offsets, as a restore places them), into out (cleared).
    void pieces(std::uint32_t chunk, std::vector<image::piece>& out) const;
    // The session manifest's entries: wire = stored frame, offsets tile the used streams.
    wire::session_manifest session_manifest() const;

private:
    const image::manifest* _m;
    std::vector<chunk_place> _places;
    std::vector<std::vector<image::region_map>> _maps;  // per disk, per region
};

// The sender's side: loads image `name` from the store, checks that every chunk is there
// and matches its stored SHA-256 (a damaged store is an error before anything is sent:
// "chunk FILE: SHA-256 does not match; the store is damaged, run shoal image verify"),
// maps each distinct chunk file read-only, and builds the session manifest with the image
// manifest inside. Errors: not_found (no such image / chunk), corrupt, io.
result<session::prepared_session> prepare_image_session(const image::chunk_store& store,
                                                        std::string_view name,
                                                        unsigned threads = 0);

// The receiver's side: decodes the image manifest a session carries and checks that the
// session's chunks are exactly the image's (same hashes and sizes, in order). Errors:
// malformed / corrupt naming what disagrees.
result<image::manifest> image_of_session(const wire::session_manifest& session);

// Opens the targets (one per disk) for an image session as a restore would (size check
// first: nothing is written to a target too small; table invalidated unless resume) and
// returns the writer's placement for them.
result<std::unique_ptr<session::target_placement>> open_image_targets(
    const image::manifest& m, const std::vector<std::string>& targets,
    std::uint64_t new_file_size_bytes, bool resume);

}  // namespace shoal::deploy
