// An image's manifest: what was captured (disks, their partition tables, and per partition
// the filesystem, sizes, used-extent map and the ordered chunks of its used data), in one
// versioned binary encoding that carries its own SHA-256.
//
// The data of a region (a partition, the disk's head before its first partition, or a
// whole raw disk) is the concatenation of its used extents' bytes in ascending order (the
// "used stream"). That stream is cut into chunks of chunk_size_bytes (the last one may be
// shorter); chunk i holds stream bytes [sum of raw sizes of chunks 0..i-1, + raw_size).
// Each chunk is one zstd frame in the store, named by the SHA-256 of the frame (stored
// bytes, what a store, a replication link and a multicast session check without
// decompressing); the SHA-256 of the raw bytes is recorded too, so that a resumed restore
// or a restarted receiver can tell a chunk already on disk without the frame.
//
// Encoding (little-endian), version 1:
//   u8[8] magic "SHOALIMG", u32 version, u32 flags (0), u64 body_size, body, u8[32] SHA-256
//   of everything before it. The body is the fields of `manifest` in declaration order:
//   strings as u16 length + bytes, byte strings as u32 length + bytes, vectors as u32
//   count + elements, enums as u8, bools as u8 (0/1). encode(decode(x)) == x byte for byte.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace shoal::image {

inline constexpr std::uint32_t manifest_version = 1;
inline constexpr std::size_t manifest_size_max = 1u << 30;      // refuse larger files
inline constexpr std::uint32_t chunk_raw_size_max = 16u << 20;  // = wire::chunk_raw_size_max
inline constexpr std::uint32_t chunk_stored_size_max = (16u << 20) + (1u << 16);  // zstd bound
inline constexpr std::uint32_t disk_count_max = 64;
inline constexpr std::uint32_t partition_count_max = 256;     // per disk
inline constexpr std::uint32_t extent_count_max = 64u << 20;  // per region
inline constexpr std::uint32_t chunk_count_max = 64u << 20;   // per region
inline constexpr std::size_t table_bytes_max = 4u << 20;      // raw table bytes per disk
inline constexpr std::size_t name_size_max = 100;             // image names
inline constexpr std::size_t text_size_max = 4096;            // other strings

using sha256_digest = std::array<std::uint8_t, 32>;

// How FOG users name image types.
enum class image_kind : std::uint8_t {
    single_disk_resizable = 1,        // one disk; partitions shrink/grow to the target disk
    multi_partition_single_disk = 2,  // one disk, layout restored as captured
    multi_partition_all_disks = 3,    // every disk, layout restored as captured
    raw = 4,                          // every byte of one disk, no filesystem knowledge
};

// The filesystem in a region: decides how used blocks were found and how it resizes.
enum class fs_type : std::uint8_t {
    raw = 0,  // unknown or not a filesystem: every byte is used
    ext2 = 1,
    ext3 = 2,
    ext4 = 3,
    ntfs = 4,
    fat12 = 5,
    fat16 = 6,
    fat32 = 7,
    swap = 8,  // Linux swap: only the header page is used
};

enum class table_kind : std::uint8_t { none = 0, mbr = 1, gpt = 2 };

// A byte range inside a region (partition-relative). Extents of a region are sorted,
// do not overlap or touch (coalesced) and lie inside the region.
struct extent {
    std::uint64_t offset_bytes = 0;
    std::uint64_t size_bytes = 0;
    friend bool operator==(const extent&, const extent&) = default;
};

struct chunk_ref {
    sha256_digest stored_sha256{};  // of the zstd frame: the chunk's name in the store
    sha256_digest raw_sha256{};     // of the decompressed bytes
    std::uint32_t stored_size = 0;  // 1..chunk_stored_size_max
    std::uint32_t raw_size = 0;     // 1..chunk_raw_size_max
    friend bool operator==(const chunk_ref&, const chunk_ref&) = default;
};

// Raw bytes of the partition table as read from the disk, at their byte offset:
// MBR: sector 0 (and each EBR of logical partitions); GPT: LBA 0..33 and the last 33 LBAs.
struct raw_bytes {
    std::uint64_t offset_bytes = 0;
    std::vector<std::byte> bytes;
    friend bool operator==(const raw_bytes&, const raw_bytes&) = default;
};

// One partition as the table describes it (parsed through libfdisk).
struct table_entry {
    std::uint32_t number = 0;  // as the OS names it: 1 for sda1; MBR logicals from 5
    std::uint64_t start_bytes = 0;
    std::uint64_t size_bytes = 0;
    std::string type;              // MBR: "83" (hex code); GPT: type GUID, upper case
    std::string uuid;              // GPT partition GUID; empty on MBR
    std::string name;              // GPT partition name; empty on MBR
    std::uint64_t attributes = 0;  // GPT attribute bits
    bool bootable = false;         // MBR active flag
    bool container = false;        // MBR extended partition (holds logicals, no data)
    friend bool operator==(const table_entry&, const table_entry&) = default;
};

struct partition_table {
    table_kind kind = table_kind::none;
    std::string id;  // MBR disk id "0x1234abcd", GPT disk GUID
    std::uint32_t sector_size_bytes = 512;
    std::vector<raw_bytes> raw;        // as read; restored as-is when the layout is kept
    std::vector<table_entry> entries;  // sorted by start_bytes
    friend bool operator==(const partition_table&, const partition_table&) = default;
};

// What a region of a disk holds: the unit that is captured, restored and resized.
struct region {
    std::uint32_t partition_number = 0;    // table_entry::number; 0 = not a partition (the
                                           // disk head before the first one, or a raw disk)
    std::uint64_t offset_bytes = 0;        // where it started on the captured disk
    std::uint64_t size_bytes = 0;          // original size (of the partition)
    std::uint64_t fs_size_bytes = 0;       // the filesystem's size in the image (<= size)
    std::uint64_t minimum_size_bytes = 0;  // smallest partition this region restores into
    fs_type fs = fs_type::raw;
    std::uint32_t block_size_bytes = 0;  // allocation unit the used map was read in
    std::string label;                   // filesystem label/UUID etc., for people
    std::vector<extent> used;            // inside [0, fs_size_bytes)
    std::uint32_t chunk_size_bytes = 0;  // every chunk but the last has this raw size
    std::vector<chunk_ref> chunks;       // cover the used stream, in order
    friend bool operator==(const region&, const region&) = default;

    std::uint64_t used_bytes() const noexcept;  // sum of used extents' sizes
};

struct disk {
    std::uint32_t index = 1;       // 1-based, as FOG's d1, d2
    std::uint64_t size_bytes = 0;  // of the captured disk
    std::string source;            // what it was captured from, e.g. "/dev/sda"
    partition_table table;
    std::vector<region> regions;  // sorted by offset_bytes, not overlapping
    friend bool operator==(const disk&, const disk&) = default;
};

struct manifest {
    std::string name;
    image_kind kind = image_kind::multi_partition_single_disk;
    std::uint64_t created_unix_s = 0;
    std::string description;  // free text: host, who captured, imported from
    std::vector<disk> disks;  // sorted by index
    friend bool operator==(const manifest&, const manifest&) = default;

    std::uint64_t used_bytes() const noexcept;    // of every region
    std::uint64_t stored_bytes() const noexcept;  // sum of chunks' stored sizes (before dedup)
};

// Encodes; checks the same rules decode does first. Errors: invalid_argument naming the
// field that breaks them.
result<std::vector<std::byte>> encode_manifest(const manifest& m);

// Decodes and validates everything: magic, version, checksum, limits, sorted and
// coalesced extents inside the region, chunk sizes adding up to the used bytes, regions
// inside the disk and not overlapping. Errors (truncated, corrupt, malformed, version)
// say what is wrong and where; `what` (e.g. the file name) starts the message.
result<manifest> decode_manifest(std::span<const std::byte> bytes,
                                 std::string_view what = "manifest");

// Names: 1..name_size_max of [A-Za-z0-9._-], not starting with '.' or '-'.
status check_image_name(std::string_view name);

std::string_view kind_name(image_kind k) noexcept;  // "resizable", "multipart", "all-disks", "raw"
result<image_kind> parse_kind(std::string_view name);
std::string_view fs_name(fs_type f) noexcept;  // "ext4", "ntfs", "fat32", "raw", ...
bool fs_is_fat(fs_type f) noexcept;
bool fs_is_ext(fs_type f) noexcept;

std::string to_hex(std::span<const std::uint8_t> bytes);
result<sha256_digest> digest_from_hex(std::string_view hex);
sha256_digest sha256_of(std::span<const std::byte> bytes) noexcept;

}  // namespace shoal::image
