// Which disk a task writes or reads, by a rule the task or the image names; never a guess.
//
// Rules:
//   auto        the only fixed (non-removable, writable) disk; several: refused
//   nvme, sata, virtio, scsi, usb, mmc
//               the only disk of that transport (usb allows removable ones)
//   largest, smallest
//               the fixed disk of that size; a tie is refused
//   serial:X    the disk whose serial is X
//   /dev/X, X   the disk of that name (sda, nvme0n1)
// A refusal is errc::conflict (or not_found when nothing matches) saying why; the caller
// shows candidates() with it and how to choose (the rules above).
#pragma once

#include <string_view>
#include <vector>

#include "agent/inventory.h"
#include "common/result.h"

namespace shoal::agent {

// Checks a rule's spelling (errc::invalid_argument naming it); the empty rule is auto.
status validate_disk_rule(std::string_view rule);

result<disk_info> choose_disk(const std::vector<disk_info>& disks, std::string_view rule);

// Every disk with its transport, size, model and serial (and removable, read-only), for
// the message that goes with a refusal.
std::string candidates(const std::vector<disk_info>& disks);

// "/dev/sda (sata, 500.1 GB, ST500DM002, Z3T1ABC)" for messages.
std::string describe(const disk_info& d);

}  // namespace shoal::agent
