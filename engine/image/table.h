// Partition tables through libfdisk: reading one from a disk (parsed form plus the raw
// bytes of the table area), reading one from bytes that an importer holds (a saved MBR or
// sfdisk dump), and writing one, possibly with the layout recomputed for another disk size.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "image/manifest.h"

namespace shoal::image {

// Reads the table of the disk (block device or disk image file) open at fd; `name` is for
// messages. A disk without a table gives kind none. Errors: io, malformed.
result<partition_table> read_partition_table(int fd, std::string_view name);

// Parses a table from the first bytes of a disk (e.g. FOG's d1.mbr: the MBR, or the MBR
// and the GPT's primary header and entries) on a disk of disk_size_bytes.
result<partition_table> parse_partition_table(std::span<const std::byte> head,
                                              std::uint64_t disk_size_bytes, std::string_view name);

// Parses an `sfdisk --dump` script (e.g. FOG's d1.partitions) for a disk of disk_size_bytes.
// raw holds the table bytes libfdisk would write for it.
result<partition_table> parse_sfdisk_dump(std::string_view script, std::uint64_t disk_size_bytes,
                                          std::string_view name);

// Writes `table` to the disk at fd. With exact (same disk size, same layout) the raw bytes
// are written back as captured; otherwise libfdisk writes the parsed form (ids, types, GUIDs,
// names and attributes kept) for the disk's own size; an entry of size 0 then ends where
// the disk's usable area ends (a grown last partition). Errors: io, invalid_argument.
status write_partition_table(int fd, const partition_table& table, std::uint64_t disk_size_bytes,
                             bool exact, std::string_view name);

}  // namespace shoal::image
