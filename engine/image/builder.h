// Builds an image in a store from partition sources: reads each source's used stream,
// cuts it into chunks, compresses and hashes them on all cores, stores each new chunk,
// and publishes the manifest last (see store.h). Until publish() returns, the store's
// previous image of the same name is untouched; chunks of an abandoned build stay in the
// store unreferenced until the next `shoal image rm` sweeps them.
//
//   auto b = image_builder::create(store, "win10-lab", image_kind::single_disk_resizable, {});
//   b->begin_disk(1, disk_size, table, "/dev/sda");
//   b->add_region(0, 0, head_source);           // the bytes before the first partition
//   b->add_region(1, start_of_p1, p1_source);   // partition 1 …
//   auto m = b->publish();
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "image/manifest.h"
#include "image/source.h"
#include "image/store.h"

namespace shoal::image {

// 4 MiB: see docs/images.md for the benchmark behind it.
inline constexpr std::uint32_t chunk_size_default = 4u << 20;
inline constexpr int zstd_level_default = 3;

struct build_options {
    std::uint32_t chunk_size_bytes = chunk_size_default;  // 64 KiB..chunk_raw_size_max
    int zstd_level = zstd_level_default;
    unsigned threads = 0;  // 0: every core
    std::string description;
    // Called from the building thread after each chunk is stored with the used bytes done
    // in this build so far (for progress output).
    std::function<void(std::uint64_t done_bytes)> on_progress;
};

class image_builder {
public:
    // The store must stay open (holding its shared lock) until publish() or destruction.
    static result<std::unique_ptr<image_builder>> create(chunk_sink& store, std::string name,
                                                         image_kind kind, build_options options);
    ~image_builder();

    // Starts disk `index` (1-based, increasing). Its regions follow through add_region.
    status begin_disk(std::uint32_t index, std::uint64_t size_bytes, partition_table table,
                      std::string source);
    // Reads `src` to its end into the current disk as a region at offset_bytes on the
    // captured disk (partition_number 0 for non-partition regions). Errors: the source's,
    // the store's, or invalid_argument (region outside the disk, overlapping another,
    // source delivering more or fewer bytes than its extents say).
    status add_region(std::uint32_t partition_number, std::uint64_t offset_bytes,
                      partition_source& src);
    // Publishes the manifest (validated by encode first). The builder is spent afterwards.
    result<manifest> publish();

    const manifest& current() const noexcept;

private:
    struct state;
    explicit image_builder(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::image
