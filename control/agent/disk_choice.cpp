#include "agent/disk_choice.h"

#include <fmt/format.h>

namespace shoal::agent {

namespace {

constexpr std::string_view transports[] = {"nvme", "sata", "virtio", "scsi", "usb", "mmc"};

bool is_transport(std::string_view rule) {
    for (auto t : transports) {
        if (rule == t) {
            return true;
        }
    }
    return false;
}

// A disk an image may go to without naming it: fixed, writable, not empty.
bool fixed(const disk_info& d) { return !d.removable && !d.read_only && d.size_bytes > 0; }

}  // namespace

std::string candidates(const std::vector<disk_info>& disks) {
    if (disks.empty()) {
        return "none (the kernel sees no disk: is its driver in the client OS?)";
    }
    std::string out;
    for (const auto& d : disks) {
        out += (out.empty() ? "" : "; ") + describe(d);
        if (d.removable) {
            out += " removable";
        }
        if (d.read_only) {
            out += " read-only";
        }
    }
    return out;
}

namespace {

error refuse(errc code, std::string_view rule, std::string_view why,
             const std::vector<disk_info>& disks) {
    (void)disks;  // listed by the caller (candidates()): an error's context is short
    return error::format(code, 0, "disk rule '{:.40}': {}; refusing to guess", rule, why);
}

result<disk_info> only_one(const std::vector<const disk_info*>& match, std::string_view rule,
                           std::string_view what, const std::vector<disk_info>& disks) {
    if (match.size() == 1) {
        return *match.front();
    }
    if (match.empty()) {
        return refuse(errc::not_found, rule, fmt::format("no {}", what), disks);
    }
    return refuse(errc::conflict, rule, fmt::format("{} {}", match.size(), what), disks);
}

}  // namespace

std::string describe(const disk_info& d) {
    return fmt::format("{} ({}, {}, {}, {})", d.dev_path, d.transport, human_size(d.size_bytes),
                       d.model.empty() ? "no model" : d.model,
                       d.serial.empty() ? "no serial" : d.serial);
}

status validate_disk_rule(std::string_view rule) {
    if (rule.empty() || rule == "auto" || rule == "largest" || rule == "smallest" ||
        is_transport(rule)) {
        return ok();
    }
    std::string_view name = rule;
    if (rule.starts_with("serial:")) {
        name = rule.substr(7);
    } else if (rule.starts_with("/dev/")) {
        name = rule.substr(5);
    }
    bool good = !name.empty() && name.size() <= 128;
    for (char c : name) {
        good = good && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
                        c == ':' || (c == '/' && rule.starts_with("/dev/")));
    }
    if (!good || name.find("..") != std::string_view::npos) {
        return error::format(errc::invalid_argument, 0,
                             "disk: '{:.60}' is not a disk rule (auto, nvme, sata, virtio, scsi, "
                             "usb, mmc, largest, smallest, serial:<serial>, /dev/<name>)",
                             rule);
    }
    return ok();
}

result<disk_info> choose_disk(const std::vector<disk_info>& disks, std::string_view rule) {
    SHOAL_RETURN_IF_ERROR(validate_disk_rule(rule));
    if (rule.empty()) {
        rule = "auto";
    }
    std::vector<const disk_info*> match;
    if (rule == "auto") {
        for (const auto& d : disks) {
            if (fixed(d)) {
                match.push_back(&d);
            }
        }
        return only_one(match, rule, "fixed disks", disks);
    }
    if (is_transport(rule)) {
        for (const auto& d : disks) {
            if (d.transport == rule && !d.read_only && d.size_bytes > 0 &&
                (rule == "usb" || !d.removable)) {
                match.push_back(&d);
            }
        }
        return only_one(match, rule, fmt::format("{} disks", rule), disks);
    }
    if (rule == "largest" || rule == "smallest") {
        const disk_info* best = nullptr;
        bool tie = false;
        for (const auto& d : disks) {
            if (!fixed(d)) {
                continue;
            }
            if (best == nullptr ||
                (rule == "largest" ? d.size_bytes > best->size_bytes
                                   : d.size_bytes < best->size_bytes)) {
                best = &d;
                tie = false;
            } else if (d.size_bytes == best->size_bytes) {
                tie = true;
            }
        }
        if (best == nullptr) {
            return refuse(errc::not_found, rule, "no fixed disks", disks);
        }
        if (tie) {
            return refuse(errc::conflict, rule,
                          fmt::format("several fixed disks of {}", human_size(best->size_bytes)),
                          disks);
        }
        return *best;
    }
    if (rule.starts_with("serial:")) {
        std::string_view serial = rule.substr(7);
        for (const auto& d : disks) {
            if (d.serial == serial) {
                match.push_back(&d);
            }
        }
        return only_one(match, rule, "disks with that serial", disks);
    }
    std::string_view name = rule.starts_with("/dev/") ? rule.substr(5) : rule;
    for (const auto& d : disks) {
        if (d.name == name) {
            match.push_back(&d);
        }
    }
    return only_one(match, rule, "disks of that name", disks);
}

}  // namespace shoal::agent
