#include "store/model.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <utility>

#include <nlohmann/json.hpp>

#include "ipxe/mac.h"

namespace shoal::store {

namespace {

// One table per enum: the names in enumerator order.
constexpr std::array<std::string_view, 4> image_kind_names = {
    "single_disk_resizable", "multi_partition_single_disk", "multi_partition_all_disks", "raw"};
constexpr std::array<std::string_view, 10> task_kind_names = {
    "capture",   "deploy",    "multicast", "wipe_fast", "wipe_normal",
    "wipe_full", "disk_test", "inventory", "wol",       "debug"};
constexpr std::array<std::string_view, 6> task_state_names = {"queued",   "active", "in_progress",
                                                              "complete", "failed", "cancelled"};
constexpr std::array<std::string_view, 5> session_state_names = {"waiting", "running", "complete",
                                                                 "failed", "cancelled"};
constexpr std::array<std::string_view, 2> schedule_kind_names = {"once", "cron"};
constexpr std::array<std::string_view, 3> user_role_names = {"admin", "operator", "viewer"};
constexpr std::array<std::string_view, 3> shutdown_action_names = {"none", "reboot", "poweroff"};

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::string_view, N>& names, E v) noexcept {
    const auto i = static_cast<std::size_t>(v);
    return i < N ? names[i] : std::string_view("?");
}

template <class E, std::size_t N>
result<E> parse_enum(const std::array<std::string_view, N>& names, std::string_view text,
                     std::string_view field) {
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == text) {
            return static_cast<E>(i);
        }
    }
    std::string choices;
    for (std::size_t i = 0; i < N; ++i) {
        choices += i == 0 ? "" : ", ";
        choices += names[i];
    }
    return error::format(errc::invalid_argument, 0, "{}: '{:.40}' is not one of {}", field, text,
                         choices);
}

status field_error(std::string_view field, std::string_view what) {
    return error::format(errc::invalid_argument, 0, "{}: {}", field, what);
}

bool is_identifier_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '[' || c == ']';
}

status check_json(std::string_view text, bool want_object, std::string_view field) {
    if (text.size() > 1 << 20) {
        return field_error(field, "is larger than 1 MiB");
    }
    auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        return field_error(field, "is not valid JSON");
    }
    if (want_object && !doc.is_object()) {
        return field_error(field, "must be a JSON object");
    }
    if (!want_object && !doc.is_array()) {
        return field_error(field, "must be a JSON array");
    }
    return ok();
}

status check_text(std::string_view text, std::size_t size_max, std::string_view field) {
    if (text.size() > size_max) {
        return error::format(errc::invalid_argument, 0, "{}: is longer than {} bytes", field,
                             size_max);
    }
    for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') {
            return field_error(field, "holds a control character");
        }
    }
    return ok();
}

constexpr std::size_t description_size_max = 4096;

bool parse_int(std::string_view s, int& out) {
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// One cron field: a list of '*' or 'a' or 'a-b', each with an optional '/step'.
bool cron_field_ok(std::string_view f, int low, int high) {
    if (f.empty()) {
        return false;
    }
    while (!f.empty()) {
        const auto comma = f.find(',');
        std::string_view item = f.substr(0, comma);
        f = comma == std::string_view::npos ? std::string_view() : f.substr(comma + 1);
        if (comma != std::string_view::npos && f.empty()) {
            return false;  // trailing comma
        }
        std::string_view range = item;
        if (const auto slash = item.find('/'); slash != std::string_view::npos) {
            int step = 0;
            if (!parse_int(item.substr(slash + 1), step) || step < 1 || step > high) {
                return false;
            }
            range = item.substr(0, slash);
        }
        if (range == "*") {
            continue;
        }
        const auto dash = range.find('-');
        int a = 0;
        int b = 0;
        if (dash == std::string_view::npos) {
            if (!parse_int(range, a)) {
                return false;
            }
            b = a;
        } else if (!parse_int(range.substr(0, dash), a) || !parse_int(range.substr(dash + 1), b)) {
            return false;
        }
        if (a < low || b > high || a > b) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::string_view to_string(image_kind v) noexcept { return name_of(image_kind_names, v); }
std::string_view to_string(task_kind v) noexcept { return name_of(task_kind_names, v); }
std::string_view to_string(task_state v) noexcept { return name_of(task_state_names, v); }
std::string_view to_string(session_state v) noexcept { return name_of(session_state_names, v); }
std::string_view to_string(schedule_kind v) noexcept { return name_of(schedule_kind_names, v); }
std::string_view to_string(user_role v) noexcept { return name_of(user_role_names, v); }
std::string_view to_string(shutdown_action v) noexcept { return name_of(shutdown_action_names, v); }

result<image_kind> image_kind_from_string(std::string_view text, std::string_view field) {
    return parse_enum<image_kind>(image_kind_names, text, field);
}
result<task_kind> task_kind_from_string(std::string_view text, std::string_view field) {
    return parse_enum<task_kind>(task_kind_names, text, field);
}
result<task_state> task_state_from_string(std::string_view text, std::string_view field) {
    return parse_enum<task_state>(task_state_names, text, field);
}
result<session_state> session_state_from_string(std::string_view text, std::string_view field) {
    return parse_enum<session_state>(session_state_names, text, field);
}
result<schedule_kind> schedule_kind_from_string(std::string_view text, std::string_view field) {
    return parse_enum<schedule_kind>(schedule_kind_names, text, field);
}
result<user_role> user_role_from_string(std::string_view text, std::string_view field) {
    return parse_enum<user_role>(user_role_names, text, field);
}
result<shutdown_action> shutdown_action_from_string(std::string_view text, std::string_view field) {
    return parse_enum<shutdown_action>(shutdown_action_names, text, field);
}

bool is_final(task_state s) noexcept {
    return s == task_state::complete || s == task_state::failed || s == task_state::cancelled;
}
bool is_final(session_state s) noexcept {
    return s == session_state::complete || s == session_state::failed ||
           s == session_state::cancelled;
}

// The states are declared in their order of progress, so "forward" is "greater".
bool task_transition_allowed(task_state from, task_state to) noexcept {
    return !is_final(from) && static_cast<int>(to) > static_cast<int>(from);
}
bool session_transition_allowed(session_state from, session_state to) noexcept {
    return !is_final(from) && static_cast<int>(to) > static_cast<int>(from);
}

bool task_needs_image(task_kind k) noexcept {
    return k == task_kind::capture || k == task_kind::deploy || k == task_kind::multicast;
}

std::string_view error_field(const error& e) noexcept {
    if (e.code() != errc::invalid_argument && e.code() != errc::conflict) {
        return {};
    }
    const std::string_view c = e.context();
    const auto colon = c.find(": ");
    if (colon == std::string_view::npos || colon == 0) {
        return {};
    }
    for (std::size_t i = 0; i < colon; ++i) {
        if (!is_identifier_char(c[i])) {
            return {};
        }
    }
    return c.substr(0, colon);
}

result<std::string> normalize_mac(std::string_view text, std::string_view field) {
    auto mac = ipxe::parse_mac(text);
    if (!mac) {
        return error::format(errc::invalid_argument, 0,
                             "{}: '{:.40}' is not a usable MAC address (write it as "
                             "00:12:3F:C4:57:0C)",
                             field, text);
    }
    return mac->to_string();
}

status validate_name(std::string_view name, std::string_view field) {
    if (name.empty() || name.size() > 63) {
        return field_error(field, "must be 1 to 63 characters of A-Z a-z 0-9 . _ -");
    }
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return error::format(errc::invalid_argument, 0,
                                 "{}: '{:.63}' has a character other than A-Z a-z 0-9 . _ -", field,
                                 name);
        }
    }
    return ok();
}

status validate(host& h) {
    auto mac = normalize_mac(h.mac);
    if (!mac) {
        return mac.err();
    }
    h.mac = std::move(*mac);
    SHOAL_RETURN_IF_ERROR(validate_name(h.name));
    SHOAL_RETURN_IF_ERROR(check_text(h.description, description_size_max, "description"));
    SHOAL_RETURN_IF_ERROR(check_json(h.inventory, true, "inventory"));
    return ok();
}

status validate(const host_group& g) {
    SHOAL_RETURN_IF_ERROR(validate_name(g.name));
    return check_text(g.description, description_size_max, "description");
}

status validate(const image& i) {
    // The name is a file name in the chunk store (images/NAME.manifest).
    SHOAL_RETURN_IF_ERROR(validate_name(i.name));
    if (i.name.front() == '.') {
        return field_error("name", "must not start with '.'");
    }
    SHOAL_RETURN_IF_ERROR(check_text(i.description, description_size_max, "description"));
    if (i.size_bytes < 0) {
        return field_error("size_bytes", "must not be negative");
    }
    if (static_cast<std::size_t>(i.kind) >= image_kind_names.size()) {
        return field_error("kind", "is not a known image kind");
    }
    return check_json(i.disks, false, "disks");
}

status validate(const storage_node& n) {
    SHOAL_RETURN_IF_ERROR(validate_name(n.name));
    const std::string_view url = n.url;
    if (!(url.starts_with("http://") || url.starts_with("https://")) || url.size() > 2048) {
        return field_error("url", "must be an http:// or https:// URL");
    }
    SHOAL_RETURN_IF_ERROR(check_text(n.url, 2048, "url"));
    if (n.path.empty() || n.path.front() != '/' || n.path.size() > 4096) {
        return field_error("path", "must be an absolute path");
    }
    return check_text(n.path, 4096, "path");
}

status validate(const storage_group& g) {
    SHOAL_RETURN_IF_ERROR(validate_name(g.name));
    return check_text(g.description, description_size_max, "description");
}

status validate(const task_progress& p) {
    if (!(p.percent >= 0 && p.percent <= 100)) {  // NaN fails too
        return field_error("percent", "must be from 0 to 100");
    }
    if (p.bytes_done < 0) {
        return field_error("bytes_done", "must not be negative");
    }
    if (p.bytes_total < 0) {
        return field_error("bytes_total", "must not be negative");
    }
    if (p.rate_Bps < 0) {
        return field_error("rate_Bps", "must not be negative");
    }
    return check_text(p.message, 1024, "message");
}

status validate(const task& t) {
    if (static_cast<std::size_t>(t.kind) >= task_kind_names.size()) {
        return field_error("kind", "is not a known task kind");
    }
    if (t.host_id <= 0) {
        return field_error("host_id", "is required");
    }
    if (task_needs_image(t.kind) && !t.image_id) {
        return error::format(errc::invalid_argument, 0, "image_id: a {} task needs an image",
                             to_string(t.kind));
    }
    // The rule reaches a kernel command line unquoted: the agent's spelling only
    // (auto, nvme, largest, serial:X, /dev/X ...), checked in full by the agent.
    bool disk_ok = t.disk.size() <= 128 && t.disk.find("..") == std::string::npos;
    for (char c : t.disk) {
        disk_ok = disk_ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
                              c == ':' || c == '/');
    }
    if (!disk_ok) {
        return field_error("disk",
                           "is not a disk rule (auto, nvme, sata, virtio, scsi, usb, largest, "
                           "smallest, serial:<serial>, /dev/<name>)");
    }
    return validate(t.progress);
}

status validate(const session& s) {
    if (s.image_id <= 0) {
        return field_error("image_id", "is required");
    }
    if (!s.group.empty()) {
        unsigned char addr[16];
        if (inet_pton(AF_INET, s.group.c_str(), addr) == 1) {
            if ((addr[0] & 0xf0) != 0xe0) {
                return field_error("group", "must be a multicast address (224.0.0.0/4)");
            }
        } else if (inet_pton(AF_INET6, s.group.c_str(), addr) == 1) {
            if (addr[0] != 0xff) {
                return field_error("group", "must be a multicast address (ff00::/8)");
            }
        } else {
            return field_error("group", "is not an IPv4 or IPv6 address");
        }
    }
    if (s.receivers_min < 1 || s.receivers_min > 100000) {
        return field_error("receivers_min", "must be from 1 to 100000");
    }
    if (s.wait_max_s < 0 || s.wait_max_s > 7 * 24 * 3600) {
        return field_error("wait_max_s", "must be from 0 to a week (604800)");
    }
    if (s.rate_bps < 0) {
        return field_error("rate_bps", "must not be negative");
    }
    return ok();
}

status validate_cron(std::string_view cron, std::string_view field) {
    constexpr std::array<std::pair<int, int>, 5> ranges = {
        {{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}};
    std::size_t count = 0;
    std::size_t i = 0;
    while (i < cron.size()) {
        while (i < cron.size() && (cron[i] == ' ' || cron[i] == '\t')) {
            ++i;
        }
        if (i == cron.size()) {
            break;
        }
        const std::size_t start = i;
        while (i < cron.size() && cron[i] != ' ' && cron[i] != '\t') {
            ++i;
        }
        if (count == ranges.size() || !cron_field_ok(cron.substr(start, i - start),
                                                     ranges[count].first, ranges[count].second)) {
            return error::format(errc::invalid_argument, 0,
                                 "{}: '{:.80}' is not five crontab fields (minute hour "
                                 "day-of-month month day-of-week, e.g. '0 19 * * 1-5')",
                                 field, cron);
        }
        ++count;
    }
    if (count != ranges.size()) {
        return error::format(errc::invalid_argument, 0,
                             "{}: '{:.80}' is not five crontab fields (minute hour "
                             "day-of-month month day-of-week, e.g. '0 19 * * 1-5')",
                             field, cron);
    }
    return ok();
}

status validate(const schedule& s) {
    SHOAL_RETURN_IF_ERROR(validate_name(s.name));
    if (s.kind == schedule_kind::once) {
        if (!s.at) {
            return field_error("at", "a one-shot schedule needs a time");
        }
    } else {
        SHOAL_RETURN_IF_ERROR(validate_cron(s.cron));
    }
    if (task_needs_image(s.task.kind) && !s.task.image_id) {
        return error::format(errc::invalid_argument, 0, "task.image_id: a {} task needs an image",
                             to_string(s.task.kind));
    }
    if (s.hosts.empty() && s.groups.empty()) {
        return field_error("hosts", "a schedule needs hosts or groups");
    }
    return ok();
}

status validate(const user& u) {
    SHOAL_RETURN_IF_ERROR(validate_name(u.name));
    if (static_cast<std::size_t>(u.role) >= user_role_names.size()) {
        return field_error("role", "is not admin, operator or viewer");
    }
    return ok();
}

status validate_password(std::string_view password) {
    if (password.size() < 8 || password.size() > 1024) {
        return field_error("password", "must be 8 to 1024 bytes long");
    }
    return ok();
}

status validate_token_name(std::string_view name) {
    if (name.empty()) {
        return field_error("name", "is required");
    }
    return check_text(name, 128, "name");
}

}  // namespace shoal::store
