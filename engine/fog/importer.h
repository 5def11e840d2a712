// Converts a FOG image directory into a shoal image: each dNpM.img partclone stream
// becomes a partition region holding exactly the blocks partclone saved, dN.partitions the
// disk's table, dN.mbr (or dN.grub.mbr) the disk's head. See docs/fog-import.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "fog/byte_stream.h"
#include "fog/fog_dir.h"
#include "fog/partclone.h"
#include "image/builder.h"
#include "image/source.h"
#include "image/store.h"

namespace shoal::fog {

// The filesystem a partclone stream holds, as the image format names it. partclone's
// "EXTFS" is told apart as ext2/3/4 from the superblock's features, FAT from its size
// ("FAT12", "FAT16", "FAT32"); a filesystem the image format does not know (btrfs, xfs,
// exfat, hfs+, …) is kept as `raw` with partclone's used blocks, restored as they are.
image::fs_type fs_type_of(const partclone_header& h, std::span<const std::byte> first_blocks);

// A partition source over one partclone stream (the pieces of a dNpM.img).
class partclone_source final : public image::partition_source {
public:
    // Opens the stream, reads and checks the header and bitmap, and the first blocks (to
    // tell the filesystem). partition_size_bytes is the partition's size in the table
    // (0: the stream's device size); minimum_size_bytes 0 when unknown.
    static result<std::unique_ptr<partclone_source>> open(const fog_stream& stream,
                                                          std::string name,
                                                          std::uint64_t partition_size_bytes,
                                                          std::uint64_t minimum_size_bytes);

    image::source_info describe() const override { return _info; }
    std::span<const image::extent> extents() const override { return _extents; }
    result<std::size_t> read(std::span<std::byte> out) override;

    const partclone_header& header() const { return _reader->header(); }
    std::uint64_t used_bytes() const { return _reader->used_bytes() + _tail.size(); }
    compression kind() const { return _decoded->kind(); }
    // Before the first read(): the first verified bytes of the stream, and whether they
    // start at the partition's byte 0 (its first block is used).
    std::span<const std::byte> first_bytes() const { return _pending; }
    bool first_bytes_at_zero() const {
        return _reader->bitmap().block_count() > 0 && _reader->bitmap().test(0);
    }

private:
    partclone_source() = default;

    std::unique_ptr<decoded_stream> _decoded;
    std::optional<partclone_reader> _reader;  // reads from *_decoded
    std::vector<image::extent> _extents;
    image::source_info _info;
    std::span<const std::byte> _pending;  // verified bytes not yet handed out
    // Bytes after partclone's blocks: NTFS's backup boot sector, which lies past the last
    // whole cluster where partclone's bitmap does not reach (see open()).
    std::vector<std::byte> _tail;
    std::size_t _tail_done = 0;
};

// What an import will do with each region, known before any chunk is written.
struct import_region {
    std::uint32_t disk = 0;
    std::uint32_t partition = 0;  // 0: the disk's head or a raw disk
    std::uint64_t offset_bytes = 0;
    std::uint64_t size_bytes = 0;
    std::string what;  // "d1p2.img (NTFS, zstd, 3 pieces)", "d1.mbr", "swap", …
    std::uint64_t used_bytes = 0;
};

struct import_plan {
    image::image_kind kind = image::image_kind::multi_partition_single_disk;
    std::vector<import_region> regions;
    std::vector<std::string> notes;  // what is not carried over, and why
    std::uint64_t used_bytes = 0;    // what the import reads and stores
};

// Reads every sidecar and every stream's header and bitmap (not the data), and says what
// an import would store. Errors: anything read_fog_image or a partclone header refuses,
// and streams that do not fit their partition.
result<import_plan> plan_fog_import(const fog_image& fog);

// Imports into `store` as image `name`; publishes only when every stream has been read to
// its end and every checksum passed. options.on_progress sees used bytes done.
result<image::manifest> import_fog_image(image::chunk_store& store, const fog_image& fog,
                                         std::string name, image::build_options options);

}  // namespace shoal::fog
