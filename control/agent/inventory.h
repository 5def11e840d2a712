// What a PC is made of, read from sysfs and procfs under a root directory ("/" on a PC, a
// fake tree in tests): CPU, memory, disks (size, model, serial, transport, removable),
// NICs (MAC, speed, driver) and the DMI identity. Reading never fails for one missing
// file: what the kernel does not say stays empty (-1 for unknown numbers).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace shoal::agent {

struct disk_info {
    std::string name;       // sda, nvme0n1, vda
    std::string dev_path;   // /dev/sda (under the dev root the caller gave)
    std::uint64_t size_bytes = 0;
    std::string model;
    std::string serial;
    std::string transport;  // nvme, sata, usb, virtio, scsi, mmc, unknown
    bool removable = false;
    bool read_only = false;
    bool rotational = false;
};

struct nic_info {
    std::string name;  // eth0, enp1s0
    std::string mac;   // 52:54:00:12:34:56, lower case
    std::int64_t speed_mbps = -1;
    std::string driver;  // virtio_net, e1000e; empty for virtual interfaces
    bool up = false;     // operstate "up"
};

struct inventory {
    std::string cpu_model;
    std::uint32_t cpu_count = 0;  // logical CPUs (processor entries)
    std::uint64_t memory_bytes = 0;
    std::vector<disk_info> disks;  // sorted by name
    std::vector<nic_info> nics;    // sorted by name
    std::map<std::string, std::string> dmi;  // sys_vendor, product_name, product_serial, ...
};

// Reads the inventory under `root` (its sys/ and proc/); dev_root prefixes the disks'
// device paths. Errors only when root itself cannot be read (errc::not_found).
result<inventory> read_inventory(const std::string& root, const std::string& dev_root = "/dev");

// The JSON shoald stores as the host's inventory:
// {"cpu": {"model", "count"}, "memory_bytes", "disks": [{name, path, size_bytes, model,
//  serial, transport, removable, read_only, rotational}], "nics": [{name, mac, speed_mbps,
//  driver, up}], "dmi": {...}}
nlohmann::json to_json(const inventory& inv);

// "512.1 GB" style, for messages.
std::string human_size(std::uint64_t bytes);

}  // namespace shoal::agent
