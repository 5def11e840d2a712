// A FOG image directory (/images/<name> on a FOG server), as FOS's funcs.sh and
// fog.upload write it. See docs/fog-import.md for the files and what each holds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "fog/sidecars.h"

namespace shoal::fog {

// FOG's image types: resizable single disk (n), multiple partitions of one disk (mps),
// multiple partitions of all disks (mpa), and raw (dd: one partclone.imager stream of the
// whole disk). The directory does not record the type (FOG's database does): it is
// inferred from the files.
enum class fog_image_kind : std::uint8_t { resizable, multiple_partitions, all_disks, raw };
std::string_view fog_image_kind_name(fog_image_kind kind) noexcept;

// The pieces holding one stream, in order. FOG writes `X.000`, `.001`, … while it
// captures and then renames `X.000` to `X`: a finished capture is `X` alone, or `X`,
// `X.001`, `X.002`, … when it was split. Both layouts are read.
struct fog_stream {
    std::vector<std::string> pieces;  // full paths
    std::uint64_t size_bytes = 0;     // sum of the pieces' sizes
    bool empty() const { return pieces.empty(); }
};

// Finds the pieces of `base` (e.g. "d1p2.img") in `dir`: empty if there are none. Errors:
// a gap in the numbering (names the missing piece), both `X` and `X.000`, a piece that is
// not a regular file, or a piece other than the last that is shorter than the first
// (split writes equal pieces; a shorter one was cut short).
result<fog_stream> find_pieces(const std::string& dir, const std::string& base);

enum class fog_content : std::uint8_t {
    image,     // a partclone stream (dNpM.img)
    swap,      // not imaged; FOG recreates it with mkswap and the UUID it saved
    extended,  // a dos extended partition: its EBRs come back with the partition table
    none,      // FOG did not capture it (only some partitions were selected)
};
std::string_view fog_content_name(fog_content c) noexcept;

struct fog_partition {
    std::uint32_t number = 0;  // 1-based
    fog_content content = fog_content::none;
    fog_stream stream;        // content == image
    std::string swap_uuid;    // content == swap, if FOG saved one
    std::string fog_fstype;   // from dN.original.fstypes (resizable images), if listed
    bool fixed_size = false;  // listed in dN.fixed_size_partitions
    std::uint64_t minimum_size_sectors = 0;  // from dN.minimum.partitions; 0 if none
};

struct fog_disk {
    std::uint32_t number = 0;  // 1-based (dN)
    // dN.mbr: for dos disks the sectors before the first partition (boot code, the
    // table, GRUB's embedding area; 512 bytes to 1 MiB); for gpt disks an `sgdisk -b`
    // backup (protective MBR, GPT header, backup header, entries).
    std::vector<std::byte> mbr;
    bool mbr_is_sgdisk_backup = false;
    std::vector<std::byte> grub_mbr;          // dN.grub.mbr (gpt disks with GRUB), else empty
    partition_table table;                    // dN.partitions (the disk as it was)
    std::string table_text;                   // that file's text, for libfdisk to apply
    std::string table_file;                   // its name: "d1.partitions"
    std::optional<partition_table> minimum;   // dN.minimum.partitions (resizable images)
    std::optional<std::uint64_t> size_bytes;  // dN.size (all-disks images)
    std::vector<fog_partition> partitions;    // one per table entry, by number
};

struct fog_image {
    std::string dir;
    fog_image_kind kind = fog_image_kind::multiple_partitions;
    std::vector<fog_disk> disks;  // by number; empty for raw
    fog_stream raw;               // kind == raw: the whole-disk stream
    std::string raw_name;         // its file name
};

// Reads and checks every sidecar of a FOG image directory and finds every stream's
// pieces. Opens no stream: partclone headers are read by the import.
result<fog_image> read_fog_image(const std::string& dir);

}  // namespace shoal::fog
