#include "agent/inventory.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace shoal::agent {

namespace fs = std::filesystem;

namespace {

// Small sysfs/procfs files only: at most this much of each is read.
constexpr std::size_t attribute_bytes_max = 64 * 1024;

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        return {};
    }
    std::string out(attribute_bytes_max, '\0');
    in.read(out.data(), static_cast<std::streamsize>(out.size()));
    out.resize(static_cast<std::size_t>(in.gcount()));
    return out;
}

// A printable, trimmed attribute (sysfs pads models with blanks).
std::string read_attr(const fs::path& p) {
    std::string s = read_text(p);
    std::string out;
    for (char c : s) {
        out += (c >= ' ' && c <= '~') ? c : ' ';
    }
    auto first = out.find_first_not_of(' ');
    if (first == std::string::npos) {
        return {};
    }
    auto last = out.find_last_not_of(' ');
    return out.substr(first, last - first + 1);
}

std::int64_t read_number(const fs::path& p, std::int64_t fallback) {
    std::string s = read_attr(p);
    if (s.empty()) {
        return fallback;
    }
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (end == s.c_str()) {
        return fallback;
    }
    return v;
}

// Where the device sits: /sys/block/X links to ../devices/<bus path>/block/X.
std::string device_path_text(const fs::path& block_entry) {
    std::error_code ec;
    fs::path target = fs::read_symlink(block_entry, ec);
    if (ec) {
        target = fs::canonical(block_entry, ec);
        if (ec) {
            return {};
        }
    }
    return target.generic_string();
}

std::string transport_of(const std::string& name, const std::string& where) {
    auto has = [&](std::string_view part) { return where.find(part) != std::string::npos; };
    if (name.starts_with("nvme")) {
        return "nvme";
    }
    if (name.starts_with("vd")) {
        return "virtio";
    }
    if (name.starts_with("mmcblk")) {
        return "mmc";
    }
    if (name.starts_with("sd") || name.starts_with("hd")) {
        if (has("/usb")) {
            return "usb";
        }
        if (has("/ata")) {
            return "sata";
        }
        return "scsi";
    }
    return "unknown";
}

// Devices that are no disk to image: loops, RAM disks, device-mapper, md, optical, floppy.
bool skipped_block(const std::string& name) {
    for (std::string_view p : {"loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"}) {
        if (name.starts_with(p)) {
            return true;
        }
    }
    return false;
}

// SCSI's unit serial number VPD page (0x80): 4 header bytes, then the serial.
std::string vpd80_serial(const fs::path& p) {
    std::string s = read_text(p);
    if (s.size() <= 4) {
        return {};
    }
    std::string out;
    for (std::size_t i = 4; i < s.size(); ++i) {
        char c = s[i];
        if (c > ' ' && c <= '~') {
            out += c;
        }
    }
    return out;
}

disk_info read_disk(const fs::path& entry, const std::string& dev_root) {
    disk_info d;
    d.name = entry.filename().string();
    d.dev_path = dev_root + "/" + d.name;
    // sysfs counts 512-byte sectors whatever the device's block size.
    std::int64_t sectors = read_number(entry / "size", 0);
    d.size_bytes = sectors > 0 ? static_cast<std::uint64_t>(sectors) * 512 : 0;
    d.removable = read_number(entry / "removable", 0) != 0;
    d.read_only = read_number(entry / "ro", 0) != 0;
    d.rotational = read_number(entry / "queue" / "rotational", 0) != 0;
    d.transport = transport_of(d.name, device_path_text(entry));
    d.model = read_attr(entry / "device" / "model");
    std::string vendor = read_attr(entry / "device" / "vendor");
    if (!vendor.empty() && vendor != "ATA" && d.model.find(vendor) == std::string::npos) {
        d.model = d.model.empty() ? vendor : vendor + " " + d.model;
    }
    d.serial = read_attr(entry / "device" / "serial");  // nvme
    if (d.serial.empty()) {
        d.serial = read_attr(entry / "serial");  // virtio-blk
    }
    if (d.serial.empty()) {
        d.serial = vpd80_serial(entry / "device" / "vpd_pg80");  // sata, scsi, usb
    }
    return d;
}

nic_info read_nic(const fs::path& entry) {
    nic_info n;
    n.name = entry.filename().string();
    n.mac = read_attr(entry / "address");
    std::transform(n.mac.begin(), n.mac.end(), n.mac.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    // Reading speed fails (EINVAL) on a link that is down: unknown.
    n.speed_mbps = read_number(entry / "speed", -1);
    if (n.speed_mbps < 0) {
        n.speed_mbps = -1;
    }
    std::error_code ec;
    fs::path drv = fs::read_symlink(entry / "device" / "driver", ec);
    if (!ec) {
        n.driver = drv.filename().string();
    }
    n.up = read_attr(entry / "operstate") == "up";
    return n;
}

void read_cpu(const fs::path& cpuinfo, inventory& inv) {
    std::istringstream lines(read_text(cpuinfo));
    std::string line;
    while (std::getline(lines, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) {
            continue;
        }
        std::string key = line.substr(0, colon);
        key.erase(key.find_last_not_of(" \t") + 1);
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        if (key == "processor") {
            ++inv.cpu_count;
        } else if (key == "model name" && inv.cpu_model.empty()) {
            inv.cpu_model = value;
        }
    }
}

std::uint64_t read_memory(const fs::path& meminfo) {
    std::istringstream lines(read_text(meminfo));
    std::string line;
    while (std::getline(lines, line)) {
        if (line.starts_with("MemTotal:")) {
            unsigned long long kib = std::strtoull(line.c_str() + 9, nullptr, 10);
            return kib * 1024;
        }
    }
    return 0;
}

}  // namespace

result<inventory> read_inventory(const std::string& root, const std::string& dev_root) {
    fs::path r(root.empty() ? "/" : root);
    std::error_code ec;
    if (!fs::is_directory(r / "sys", ec) && !fs::is_directory(r / "proc", ec)) {
        return error::format(errc::not_found, 0,
                             "{}: has neither sys/ nor proc/ to read the inventory from", root);
    }
    inventory inv;
    read_cpu(r / "proc" / "cpuinfo", inv);
    inv.memory_bytes = read_memory(r / "proc" / "meminfo");
    for (const auto& e : fs::directory_iterator(r / "sys" / "block", ec)) {
        std::string name = e.path().filename().string();
        if (skipped_block(name)) {
            continue;
        }
        inv.disks.push_back(read_disk(e.path(), dev_root));
    }
    std::sort(inv.disks.begin(), inv.disks.end(),
              [](const disk_info& a, const disk_info& b) { return a.name < b.name; });
    for (const auto& e : fs::directory_iterator(r / "sys" / "class" / "net", ec)) {
        std::string name = e.path().filename().string();
        if (name == "lo") {
            continue;
        }
        inv.nics.push_back(read_nic(e.path()));
    }
    std::sort(inv.nics.begin(), inv.nics.end(),
              [](const nic_info& a, const nic_info& b) { return a.name < b.name; });
    for (const char* key : {"sys_vendor", "product_name", "product_version", "product_serial",
                            "product_uuid", "board_vendor", "board_name", "board_serial",
                            "chassis_serial", "chassis_asset_tag", "bios_vendor",
                            "bios_version", "bios_date"}) {
        std::string v = read_attr(r / "sys" / "class" / "dmi" / "id" / key);
        if (!v.empty()) {
            inv.dmi[key] = v;
        }
    }
    return inv;
}

nlohmann::json to_json(const inventory& inv) {
    nlohmann::json disks = nlohmann::json::array();
    for (const auto& d : inv.disks) {
        disks.push_back({{"name", d.name},
                         {"path", d.dev_path},
                         {"size_bytes", d.size_bytes},
                         {"model", d.model},
                         {"serial", d.serial},
                         {"transport", d.transport},
                         {"removable", d.removable},
                         {"read_only", d.read_only},
                         {"rotational", d.rotational}});
    }
    nlohmann::json nics = nlohmann::json::array();
    for (const auto& n : inv.nics) {
        nics.push_back({{"name", n.name},
                        {"mac", n.mac},
                        {"speed_mbps", n.speed_mbps},
                        {"driver", n.driver},
                        {"up", n.up}});
    }
    nlohmann::json dmi = nlohmann::json::object();
    for (const auto& [k, v] : inv.dmi) {
        dmi[k] = v;
    }
    return {{"cpu", {{"model", inv.cpu_model}, {"count", inv.cpu_count}}},
            {"memory_bytes", inv.memory_bytes},
            {"disks", std::move(disks)},
            {"nics", std::move(nics)},
            {"dmi", std::move(dmi)}};
}

std::string human_size(std::uint64_t bytes) {
    if (bytes >= 1000ull * 1000 * 1000 * 1000) {
        return fmt::format("{:.1f} TB", static_cast<double>(bytes) / 1e12);
    }
    if (bytes >= 1000ull * 1000 * 1000) {
        return fmt::format("{:.1f} GB", static_cast<double>(bytes) / 1e9);
    }
    return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

}  // namespace shoal::agent
