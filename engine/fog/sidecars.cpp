#include "fog/sidecars.h"

#include <libfdisk/libfdisk.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

namespace shoal::fog {

const partition_entry* partition_table::find(std::uint32_t number) const {
    for (const partition_entry& p : partitions) {
        if (p.number == number) {
            return &p;
        }
    }
    return nullptr;
}

namespace {

// libfdisk reports script errors ("line 3: unsupported command") through its ask
// callback; keep the last one for our error instead of letting it go to stderr.
struct fdisk_messages {
    std::string last;
};

int on_fdisk_ask(struct fdisk_context*, struct fdisk_ask* ask, void* data) {
    auto* m = static_cast<fdisk_messages*>(data);
    switch (fdisk_ask_get_type(ask)) {
    case FDISK_ASKTYPE_INFO:
    case FDISK_ASKTYPE_WARN:
    case FDISK_ASKTYPE_WARNX:
        if (const char* s = fdisk_ask_print_get_mesg(ask); s != nullptr) {
            m->last = s;
        }
        return 0;
    default: return -1;  // nothing may be asked of a script read
    }
}

struct fdisk_deleter {
    void operator()(fdisk_context* c) const { fdisk_unref_context(c); }
    void operator()(fdisk_script* s) const { fdisk_unref_script(s); }
    void operator()(fdisk_iter* i) const { fdisk_free_iter(i); }
    void operator()(FILE* f) const { std::fclose(f); }
};

template <class T>
using fdisk_ptr = std::unique_ptr<T, fdisk_deleter>;

bool parse_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

bool parse_u32(std::string_view s, std::uint32_t& out) {
    std::uint64_t v = 0;
    if (!parse_u64(s, v) || v > UINT32_MAX) {
        return false;
    }
    out = static_cast<std::uint32_t>(v);
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\0')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                          s.back() == '\n' || s.back() == '\0')) {
        s.remove_suffix(1);
    }
    return s;
}

// Calls fn(line_number, line) for each line of text; stops at fn's first error.
template <class Fn>
status for_each_line(std::string_view text, Fn&& fn) {
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const std::size_t nl = text.find('\n');
        const std::string_view line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (line.empty()) {
            continue;
        }
        SHOAL_RETURN_IF_ERROR(fn(line_number, line));
    }
    return ok();
}

status check_size(std::string_view text, std::string_view name) {
    if (text.size() > sidecar_size_bytes_max) {
        return error::format(errc::malformed, 0, "{}: {} bytes, more than a FOG sidecar holds",
                             name, text.size());
    }
    return ok();
}

bool is_extended_type(const partition_table& t, const partition_entry& p) {
    return t.label == "dos" && (p.type == "5" || p.type == "f" || p.type == "85");
}

bool is_hex_or_guid(std::string_view s) {
    if (s.empty() || s.size() > 36) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
               c == '-' || c == 'x';
    });
}

}  // namespace

result<partition_table> parse_sfdisk_dump(std::string_view text, std::string_view name) {
    SHOAL_RETURN_IF_ERROR(check_size(text, name));
    // NUL bytes would end libfdisk's line buffers early and hide the rest of a line.
    if (text.find('\0') != std::string_view::npos) {
        return error::format(errc::malformed, 0, "{}: holds NUL bytes: not an sfdisk dump", name);
    }
    fdisk_ptr<fdisk_context> cxt(fdisk_new_context());
    if (!cxt) {
        return error(errc::exhausted, "libfdisk: cannot make a context");
    }
    fdisk_messages messages;
    fdisk_set_ask(cxt.get(), on_fdisk_ask, &messages);
    fdisk_ptr<fdisk_script> script(fdisk_new_script(cxt.get()));
    if (!script) {
        return error(errc::exhausted, "libfdisk: cannot make a script");
    }
    // fmemopen needs a mutable buffer of at least one byte.
    std::string copy(text);
    copy.push_back('\n');
    fdisk_ptr<FILE> f(fmemopen(copy.data(), copy.size(), "r"));
    if (!f) {
        return error(errc::exhausted, errno, "fmemopen");
    }
    if (int rc = fdisk_script_read_file(script.get(), f.get()); rc < 0) {
        return error::format(errc::malformed, -rc, "{}: not an sfdisk dump: {}", name,
                             messages.last.empty() ? "libfdisk refused it" : messages.last);
    }
    partition_table t;
    auto header = [&](const char* key) -> std::string_view {
        const char* v = fdisk_script_get_header(script.get(), key);
        return v != nullptr ? std::string_view(v) : std::string_view{};
    };
    t.label = header("label");
    if (t.label != "dos" && t.label != "gpt") {
        return error::format(errc::malformed, 0,
                             "{}: label \"{}\": only dos (MBR) and gpt dumps are known", name,
                             t.label.substr(0, 16));
    }
    t.label_id = header("label-id");
    t.device = header("device");
    if (const auto unit = header("unit"); !unit.empty() && unit != "sectors") {
        return error::format(errc::malformed, 0, "{}: unit \"{}\", sfdisk writes sectors", name,
                             unit.substr(0, 16));
    }
    if (const auto ss = header("sector-size"); !ss.empty()) {
        if (!parse_u32(ss, t.sector_size_bytes) || t.sector_size_bytes < 512 ||
            t.sector_size_bytes > 4096 || (t.sector_size_bytes & (t.sector_size_bytes - 1)) != 0) {
            return error::format(errc::malformed, 0, "{}: sector size \"{}\"", name,
                                 ss.substr(0, 16));
        }
    }
    if (const auto v = header("first-lba"); !v.empty() && !parse_u64(v, t.first_lba)) {
        return error::format(errc::malformed, 0, "{}: first-lba \"{}\"", name, v.substr(0, 24));
    }
    if (const auto v = header("last-lba"); !v.empty() && !parse_u64(v, t.last_lba)) {
        return error::format(errc::malformed, 0, "{}: last-lba \"{}\"", name, v.substr(0, 24));
    }
    fdisk_table* tb = fdisk_script_get_table(script.get());
    fdisk_ptr<fdisk_iter> it(fdisk_new_iter(FDISK_ITER_FORWARD));
    fdisk_partition* pa = nullptr;
    std::size_t index = 0;
    while (tb != nullptr && fdisk_table_next_partition(tb, it.get(), &pa) == 0) {
        ++index;
        if (index > partition_count_max) {
            return error::format(errc::malformed, 0, "{}: more than {} partitions", name,
                                 partition_count_max);
        }
        partition_entry e;
        e.number = fdisk_partition_has_partno(pa) != 0
                       ? static_cast<std::uint32_t>(
                             std::min<std::size_t>(fdisk_partition_get_partno(pa), 1u << 20) + 1)
                       : static_cast<std::uint32_t>(index);
        if (fdisk_partition_has_start(pa) == 0 || fdisk_partition_has_size(pa) == 0) {
            return error::format(errc::malformed, 0,
                                 "{}: partition {} has no start or no size; sfdisk -d writes both",
                                 name, e.number);
        }
        e.start_sector = fdisk_partition_get_start(pa);
        e.size_sectors = fdisk_partition_get_size(pa);
        if (e.size_sectors == 0 || e.start_sector > (UINT64_MAX >> 13) ||
            e.size_sectors > (UINT64_MAX >> 13) - e.start_sector) {
            return error::format(errc::malformed, 0, "{}: partition {}: start {} size {}", name,
                                 e.number, e.start_sector, e.size_sectors);
        }
        if (fdisk_parttype* type = fdisk_partition_get_type(pa); type != nullptr) {
            if (const char* s = fdisk_parttype_get_string(type); s != nullptr) {
                e.type = s;
            } else {
                e.type = fmt::format("{:x}", fdisk_parttype_get_code(type));
            }
        }
        if (!is_hex_or_guid(e.type)) {
            return error::format(errc::malformed, 0, "{}: partition {}: type \"{}\"", name,
                                 e.number, e.type.substr(0, 40));
        }
        if (const char* s = fdisk_partition_get_uuid(pa); s != nullptr) {
            e.uuid = s;
        }
        if (const char* s = fdisk_partition_get_name(pa); s != nullptr) {
            e.name = s;
        }
        if (const char* s = fdisk_partition_get_attrs(pa); s != nullptr) {
            e.attrs = s;
        }
        e.bootable = fdisk_partition_is_bootable(pa) != 0;
        if (t.find(e.number) != nullptr) {
            return error::format(errc::malformed, 0, "{}: partition {} appears twice", name,
                                 e.number);
        }
        t.partitions.push_back(std::move(e));
    }
    std::sort(
        t.partitions.begin(), t.partitions.end(),
        [](const partition_entry& a, const partition_entry& b) { return a.number < b.number; });
    // No two partitions may share a sector; a dos extended partition holds its logical
    // partitions, so it is left out of the check.
    std::vector<const partition_entry*> by_start;
    for (const partition_entry& p : t.partitions) {
        if (!is_extended_type(t, p)) {
            by_start.push_back(&p);
        }
    }
    std::sort(by_start.begin(), by_start.end(),
              [](const partition_entry* a, const partition_entry* b) {
                  return a->start_sector < b->start_sector;
              });
    for (std::size_t i = 1; i < by_start.size(); ++i) {
        const partition_entry& a = *by_start[i - 1];
        const partition_entry& b = *by_start[i];
        if (a.start_sector + a.size_sectors > b.start_sector) {
            return error::format(errc::malformed, 0, "{}: partitions {} and {} overlap", name,
                                 a.number, b.number);
        }
    }
    return t;
}

result<std::vector<std::uint32_t>> parse_fixed_size_partitions(std::string_view text,
                                                               std::string_view name) {
    SHOAL_RETURN_IF_ERROR(check_size(text, name));
    std::vector<std::uint32_t> out;
    const std::string_view all = trim(text);
    std::size_t at = 0;
    while (at <= all.size()) {
        std::size_t colon = all.find(':', at);
        if (colon == std::string_view::npos) {
            colon = all.size();
        }
        const std::string_view item = trim(all.substr(at, colon - at));
        at = colon + 1;
        if (item.empty()) {
            continue;  // FOG writes ":1:2" and empty files
        }
        std::uint32_t n = 0;
        if (!parse_u32(item, n) || n == 0 || n > partition_count_max) {
            return error::format(errc::malformed, 0, "{}: \"{}\" is not a partition number", name,
                                 item.substr(0, 20));
        }
        if (std::find(out.begin(), out.end(), n) == out.end()) {
            if (out.size() == partition_count_max) {
                return error::format(errc::malformed, 0, "{}: too many partitions", name);
            }
            out.push_back(n);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

namespace {

// The partition number at the end of a device name: /dev/sda2 -> 2, /dev/nvme0n1p3 -> 3.
bool trailing_number(std::string_view device, std::uint32_t& n) {
    std::size_t i = device.size();
    while (i > 0 && device[i - 1] >= '0' && device[i - 1] <= '9') {
        --i;
    }
    return i < device.size() && i > 0 && parse_u32(device.substr(i), n) && n > 0 &&
           n <= partition_count_max;
}

}  // namespace

result<std::vector<fstype_entry>> parse_original_fstypes(std::string_view text,
                                                         std::string_view name) {
    SHOAL_RETURN_IF_ERROR(check_size(text, name));
    std::vector<fstype_entry> out;
    SHOAL_RETURN_IF_ERROR(
        for_each_line(text, [&](std::size_t line_number, std::string_view line) -> status {
            const std::size_t sp = line.find_first_of(" \t");
            fstype_entry e;
            if (sp == std::string_view::npos || out.size() == partition_count_max) {
                return error::format(errc::malformed, 0, "{} line {}: not \"DEVICE FSTYPE\"", name,
                                     line_number);
            }
            e.device = line.substr(0, sp);
            e.fstype = trim(line.substr(sp + 1));
            if (!trailing_number(e.device, e.number) || e.fstype.empty() || e.fstype.size() > 16 ||
                e.fstype.find_first_of(" \t") != std::string::npos) {
                return error::format(errc::malformed, 0,
                                     "{} line {}: not \"DEVICE FSTYPE\" with a partition device",
                                     name, line_number);
            }
            out.push_back(std::move(e));
            return ok();
        }));
    return out;
}

result<std::vector<swap_uuid_entry>> parse_swap_uuids(std::string_view text,
                                                      std::string_view name) {
    SHOAL_RETURN_IF_ERROR(check_size(text, name));
    std::vector<swap_uuid_entry> out;
    SHOAL_RETURN_IF_ERROR(
        for_each_line(text, [&](std::size_t line_number, std::string_view line) -> status {
            const std::size_t sp = line.find_first_of(" \t");
            swap_uuid_entry e;
            if (sp == std::string_view::npos || !parse_u32(line.substr(0, sp), e.number) ||
                e.number == 0 || e.number > partition_count_max ||
                out.size() == partition_count_max) {
                return error::format(errc::malformed, 0, "{} line {}: not \"PARTITION UUID\"", name,
                                     line_number);
            }
            e.uuid = trim(line.substr(sp + 1));
            if (e.uuid.empty() || !is_hex_or_guid(e.uuid)) {
                return error::format(errc::malformed, 0, "{} line {}: \"{}\" is not a UUID", name,
                                     line_number, e.uuid.substr(0, 40));
            }
            out.push_back(std::move(e));
            return ok();
        }));
    return out;
}

result<std::uint64_t> parse_disk_size(std::string_view text, std::uint32_t disk_number,
                                      std::string_view name) {
    SHOAL_RETURN_IF_ERROR(check_size(text, name));
    const std::string_view s = trim(text);
    const std::size_t colon = s.find(':');
    std::uint32_t n = 0;
    std::uint64_t bytes = 0;
    if (colon == std::string_view::npos || !parse_u32(s.substr(0, colon), n) ||
        !parse_u64(s.substr(colon + 1), bytes)) {
        return error::format(errc::malformed, 0, "{}: not \"DISK:BYTES\"", name);
    }
    if (n != disk_number) {
        return error::format(errc::malformed, 0, "{}: names disk {}, not disk {}", name, n,
                             disk_number);
    }
    return bytes;
}

}  // namespace shoal::fog
