// The small text files FOG writes next to its partition images (see docs/fog-import.md):
//   dN.partitions, dN.minimum.partitions   `sfdisk -d` dumps (parsed with libfdisk)
//   dN.fixed_size_partitions                "1:3" — partitions a resize must not touch
//   dN.original.fstypes                     "/dev/sda2 ntfs" per resizable partition
//   dN.original.swapuuids                   "5 0a1b…" — swap partitions, recreated on deploy
//   dN.size                                 "1:500107862016" — the disk's size in bytes
// Each parser takes the file's bytes and its name (for errors) and checks what it reads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace shoal::fog {

// Sidecars are a few lines; anything bigger is not one.
inline constexpr std::size_t sidecar_size_bytes_max = 1u << 20;
inline constexpr std::size_t partition_count_max = 256;

struct partition_entry {
    std::uint32_t number = 0;  // 1-based, as in /dev/sda1 and FOG's dNpM
    std::uint64_t start_sector = 0;
    std::uint64_t size_sectors = 0;
    std::string type;       // dos: hex code "83", "7", "ef"; gpt: the type GUID, upper case
    std::string uuid;       // gpt partition GUID, if any
    std::string name;       // gpt partition name, if any
    std::string attrs;      // gpt attributes as sfdisk writes them, if any
    bool bootable = false;  // dos active flag
};

struct partition_table {
    std::string label;     // "dos" or "gpt"
    std::string label_id;  // dos disk id "0x1234abcd" or the gpt disk GUID
    std::string device;    // the disk it was dumped from, e.g. "/dev/sda" (informative)
    std::uint32_t sector_size_bytes = 512;
    std::uint64_t first_lba = 0;  // gpt only; 0 when the dump does not say
    std::uint64_t last_lba = 0;
    std::vector<partition_entry> partitions;  // sorted by number

    const partition_entry* find(std::uint32_t number) const;
};

// Parses a `sfdisk -d` dump through libfdisk's script reader. Errors name `name` and, when
// libfdisk says, the line. Checks: a dos or gpt label, unit sectors, a power-of-two
// sector size 512..4096, partitions with a start and a size that do not overlap and whose
// numbers are unique and at most partition_count_max.
result<partition_table> parse_sfdisk_dump(std::string_view text, std::string_view name);

// "1:3:4" (FOG also writes an empty file or a leading ':'); NULs are ignored as FOG does.
result<std::vector<std::uint32_t>> parse_fixed_size_partitions(std::string_view text,
                                                               std::string_view name);

struct fstype_entry {
    std::string device;        // "/dev/sda2"
    std::uint32_t number = 0;  // the trailing partition number of device
    std::string fstype;        // FOG's names: ntfs, extfs, fat, btrfs, xfs, hfsp, …
};
result<std::vector<fstype_entry>> parse_original_fstypes(std::string_view text,
                                                         std::string_view name);

struct swap_uuid_entry {
    std::uint32_t number = 0;
    std::string uuid;
};
result<std::vector<swap_uuid_entry>> parse_swap_uuids(std::string_view text, std::string_view name);

// "N:BYTES" as `echo -n "N:"; blockdev --getsize64` writes it; returns BYTES and checks N.
result<std::uint64_t> parse_disk_size(std::string_view text, std::uint32_t disk_number,
                                      std::string_view name);

}  // namespace shoal::fog
