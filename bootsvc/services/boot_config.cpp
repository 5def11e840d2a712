#include "services/boot_config.h"

#include <initializer_list>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace shoal::boot {

using json = nlohmann::json;

status only_keys(const json& object, std::string_view where,
                 std::initializer_list<std::string_view> allowed) {
    if (!object.is_object()) {
        return error::format(errc::invalid_argument, 0, "{} must be an object", where);
    }
    for (const auto& [key, value] : object.items()) {
        bool known = false;
        for (auto a : allowed) {
            known = known || a == key;
        }
        if (!known) {
            return error::format(errc::invalid_argument, 0, "{}: unknown key \"{}\" (known: {})",
                                 where, key, fmt::join(allowed, ", "));
        }
    }
    return ok();
}

namespace {

template <class T>
status read(const json& object, const char* key, std::string_view where, T& out) {
    if (!object.contains(key)) {
        return ok();
    }
    const json& v = object[key];
    if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) {
            return error::format(errc::invalid_argument, 0, "{}.{} must be true or false", where,
                                 key);
        }
        out = v.get<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) {
            return error::format(errc::invalid_argument, 0, "{}.{} must be a string", where, key);
        }
        out = v.get<std::string>();
    } else {
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() > std::numeric_limits<T>::max()) {
            return error::format(errc::invalid_argument, 0, "{}.{} must be a number from 0 to {}",
                                 where, key, std::numeric_limits<T>::max());
        }
        out = static_cast<T>(v.get<std::uint64_t>());
    }
    return ok();
}

status read_ipv4(const json& object, const char* key, std::string_view where, dhcp::ipv4& out) {
    std::string text;
    SHOAL_RETURN_IF_ERROR(read(object, key, where, text));
    if (text.empty()) {
        return ok();
    }
    auto a = dhcp::parse_ipv4(text);
    if (!a) {
        return error::format(errc::invalid_argument, 0, "{}.{}: {}", where, key, a.err().context());
    }
    out = *a;
    return ok();
}

status apply_dhcp(boot_config& c, const json& d) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(d, "dhcp",
                  {"enabled", "mode", "interfaces", "server_address", "tftp_server", "pools",
                   "reservations", "lease_time_s", "offer_hold_s", "leases_path", "boot_files",
                   "answer_router_solicitations"}));
    SHOAL_RETURN_IF_ERROR(read(d, "enabled", "dhcp", c.dhcp_enabled));
    SHOAL_RETURN_IF_ERROR(
        read(d, "answer_router_solicitations", "dhcp", c.answer_router_solicitations));
    std::string mode;
    SHOAL_RETURN_IF_ERROR(read(d, "mode", "dhcp", mode));
    if (mode == "proxy") {
        c.dhcp.mode = dhcp::mode::proxy;
    } else if (mode == "full") {
        c.dhcp.mode = dhcp::mode::full;
    } else if (!mode.empty()) {
        return error::format(errc::invalid_argument, 0,
                             "dhcp.mode is \"proxy\" (beside a site DHCP server) or \"full\" "
                             "(an isolated lab), not \"{}\"",
                             mode);
    }
    if (d.contains("interfaces")) {
        if (!d["interfaces"].is_array()) {
            return error(errc::invalid_argument, "dhcp.interfaces must be a list of names");
        }
        c.dhcp.interfaces.clear();
        for (const auto& name : d["interfaces"]) {
            if (!name.is_string()) {
                return error(errc::invalid_argument, "dhcp.interfaces must be a list of names");
            }
            c.dhcp.interfaces.push_back(name.get<std::string>());
        }
    }
    SHOAL_RETURN_IF_ERROR(read_ipv4(d, "server_address", "dhcp", c.dhcp.server_address));
    SHOAL_RETURN_IF_ERROR(read_ipv4(d, "tftp_server", "dhcp", c.dhcp.tftp_server));
    SHOAL_RETURN_IF_ERROR(read(d, "lease_time_s", "dhcp", c.dhcp.lease_time_s));
    SHOAL_RETURN_IF_ERROR(read(d, "offer_hold_s", "dhcp", c.dhcp.offer_hold_s));
    SHOAL_RETURN_IF_ERROR(read(d, "leases_path", "dhcp", c.dhcp.leases_path));
    if (d.contains("pools")) {
        if (!d["pools"].is_array()) {
            return error(errc::invalid_argument, "dhcp.pools must be a list");
        }
        for (const auto& p : d["pools"]) {
            SHOAL_RETURN_IF_ERROR(only_keys(
                p, "dhcp.pools[]",
                {"first", "last", "subnet_mask", "router", "dns_servers", "domain_name"}));
            dhcp::pool pool;
            SHOAL_RETURN_IF_ERROR(read_ipv4(p, "first", "dhcp.pools[]", pool.first));
            SHOAL_RETURN_IF_ERROR(read_ipv4(p, "last", "dhcp.pools[]", pool.last));
            SHOAL_RETURN_IF_ERROR(read_ipv4(p, "subnet_mask", "dhcp.pools[]", pool.subnet_mask));
            SHOAL_RETURN_IF_ERROR(read_ipv4(p, "router", "dhcp.pools[]", pool.router));
            SHOAL_RETURN_IF_ERROR(read(p, "domain_name", "dhcp.pools[]", pool.domain_name));
            if (p.contains("dns_servers")) {
                if (!p["dns_servers"].is_array()) {
                    return error(errc::invalid_argument, "dhcp.pools[].dns_servers must be a list");
                }
                for (const auto& s : p["dns_servers"]) {
                    auto a = s.is_string() ? dhcp::parse_ipv4(s.get<std::string>())
                                           : result<dhcp::ipv4>(error(errc::invalid_argument, "?"));
                    if (!a) {
                        return error(errc::invalid_argument,
                                     "dhcp.pools[].dns_servers holds IPv4 addresses as strings");
                    }
                    pool.dns_servers.push_back(*a);
                }
            }
            c.dhcp.pools.push_back(std::move(pool));
        }
    }
    if (d.contains("reservations")) {
        if (!d["reservations"].is_array()) {
            return error(errc::invalid_argument, "dhcp.reservations must be a list");
        }
        for (const auto& r : d["reservations"]) {
            SHOAL_RETURN_IF_ERROR(
                only_keys(r, "dhcp.reservations[]", {"mac", "address", "hostname"}));
            dhcp::reservation res;
            std::string mac;
            SHOAL_RETURN_IF_ERROR(read(r, "mac", "dhcp.reservations[]", mac));
            auto m = dhcp::parse_mac(mac);
            if (!m) {
                return error::format(errc::invalid_argument, 0, "dhcp.reservations[].mac: {}",
                                     m.err().context());
            }
            res.mac = *m;
            SHOAL_RETURN_IF_ERROR(read_ipv4(r, "address", "dhcp.reservations[]", res.address));
            SHOAL_RETURN_IF_ERROR(read(r, "hostname", "dhcp.reservations[]", res.hostname));
            c.dhcp.reservations.push_back(std::move(res));
        }
    }
    if (d.contains("boot_files")) {
        const json& b = d["boot_files"];
        SHOAL_RETURN_IF_ERROR(
            only_keys(b, "dhcp.boot_files", {"bios", "uefi_x64", "uefi_ia32", "uefi_arm64"}));
        SHOAL_RETURN_IF_ERROR(read(b, "bios", "dhcp.boot_files", c.dhcp.boot_files.bios));
        SHOAL_RETURN_IF_ERROR(read(b, "uefi_x64", "dhcp.boot_files", c.dhcp.boot_files.uefi_x64));
        SHOAL_RETURN_IF_ERROR(read(b, "uefi_ia32", "dhcp.boot_files", c.dhcp.boot_files.uefi_ia32));
        SHOAL_RETURN_IF_ERROR(
            read(b, "uefi_arm64", "dhcp.boot_files", c.dhcp.boot_files.uefi_arm64));
    }
    return ok();
}

}  // namespace

boot_config default_boot_config() {
    boot_config c;
    c.tftp.root_dir = "/srv/shoal/tftp";
    c.http.port = 80;
    c.dhcp.leases_path = "/var/lib/shoal/dhcp.leases";
    return c;
}

status apply_boot_config_json(boot_config& c, std::string_view json_text) {
    json doc = json::parse(json_text, nullptr, false, true);
    if (doc.is_discarded()) {
        return error(errc::malformed, "not valid JSON (comments are allowed, trailing commas not)");
    }
    SHOAL_RETURN_IF_ERROR(only_keys(doc, "the config", {"dhcp", "tftp", "http", "ipxe"}));
    if (doc.contains("dhcp")) {
        SHOAL_RETURN_IF_ERROR(apply_dhcp(c, doc["dhcp"]));
    }
    if (doc.contains("tftp")) {
        const json& t = doc["tftp"];
        SHOAL_RETURN_IF_ERROR(
            only_keys(t, "tftp",
                      {"enabled", "root", "address", "port", "install_boot_files", "transfers_max",
                       "blksize_max", "windowsize_max", "timeout_ms", "retries_max"}));
        SHOAL_RETURN_IF_ERROR(read(t, "enabled", "tftp", c.tftp_enabled));
        SHOAL_RETURN_IF_ERROR(read(t, "root", "tftp", c.tftp.root_dir));
        SHOAL_RETURN_IF_ERROR(read(t, "address", "tftp", c.tftp.address));
        SHOAL_RETURN_IF_ERROR(read(t, "port", "tftp", c.tftp.port));
        SHOAL_RETURN_IF_ERROR(read(t, "install_boot_files", "tftp", c.install_boot_files));
        SHOAL_RETURN_IF_ERROR(read(t, "transfers_max", "tftp", c.tftp.transfers_max));
        SHOAL_RETURN_IF_ERROR(read(t, "blksize_max", "tftp", c.tftp.blksize_max));
        SHOAL_RETURN_IF_ERROR(read(t, "windowsize_max", "tftp", c.tftp.windowsize_max));
        SHOAL_RETURN_IF_ERROR(read(t, "timeout_ms", "tftp", c.tftp.timeout_ms));
        SHOAL_RETURN_IF_ERROR(read(t, "retries_max", "tftp", c.tftp.retries_max));
    }
    if (doc.contains("http")) {
        const json& h = doc["http"];
        SHOAL_RETURN_IF_ERROR(
            only_keys(h, "http", {"root", "address", "port", "threads", "connections_max"}));
        SHOAL_RETURN_IF_ERROR(read(h, "root", "http", c.http_root));
        SHOAL_RETURN_IF_ERROR(read(h, "address", "http", c.http.address));
        SHOAL_RETURN_IF_ERROR(read(h, "port", "http", c.http.port));
        SHOAL_RETURN_IF_ERROR(read(h, "threads", "http", c.http.threads));
        SHOAL_RETURN_IF_ERROR(read(h, "connections_max", "http", c.http.connections_max));
    }
    if (doc.contains("ipxe")) {
        const json& i = doc["ipxe"];
        SHOAL_RETURN_IF_ERROR(only_keys(i, "ipxe",
                                        {"base_url", "kernel", "initrd", "kernel_args",
                                         "menu_timeout_ms", "menu_default", "tasks_file"}));
        SHOAL_RETURN_IF_ERROR(read(i, "base_url", "ipxe", c.ipxe.base_url));
        SHOAL_RETURN_IF_ERROR(read(i, "kernel", "ipxe", c.ipxe.kernel_path));
        SHOAL_RETURN_IF_ERROR(read(i, "initrd", "ipxe", c.ipxe.initrd_path));
        SHOAL_RETURN_IF_ERROR(read(i, "kernel_args", "ipxe", c.ipxe.kernel_args));
        SHOAL_RETURN_IF_ERROR(read(i, "menu_timeout_ms", "ipxe", c.ipxe.menu_timeout_ms));
        SHOAL_RETURN_IF_ERROR(read(i, "menu_default", "ipxe", c.ipxe.menu_default));
        SHOAL_RETURN_IF_ERROR(read(i, "tasks_file", "ipxe", c.tasks_file));
    }
    return ok();
}

std::string boot_config_example() {
    return R"({
  // shoal boot: every setting with its default (comments are allowed).
  "dhcp": {
    "enabled": true,
    "mode": "proxy",                 // "full" for an isolated lab: then give "pools"
    "interfaces": ["eth1"],          // the lab interface(s); required
    "server_address": "",            // default: each interface's own address
    "pools": [],                     // [{"first": "10.77.2.1", "last": "10.77.2.254",
                                     //   "router": "", "dns_servers": [], "domain_name": ""}]
    "reservations": [],              // [{"mac": "52:54:00:12:34:56", "address": "10.77.2.9"}]
    "lease_time_s": 3600,
    "leases_path": "/var/lib/shoal/dhcp.leases",
    "boot_files": {"bios": "undionly.kpxe", "uefi_x64": "ipxe.efi"},
    "answer_router_solicitations": true
  },
  "tftp": {
    "enabled": true,
    "root": "/srv/shoal/tftp",
    "install_boot_files": true,      // copy missing iPXE binaries from /usr/lib/ipxe
    "address": "0.0.0.0", "port": 69,
    "transfers_max": 1024, "blksize_max": 65464, "windowsize_max": 64,
    "timeout_ms": 1000, "retries_max": 5
  },
  "http": {"root": "/srv/shoal/http", "address": "0.0.0.0", "port": 80, "threads": 4},
  "ipxe": {
    "base_url": "",                  // default: from each request's Host header
    "kernel": "/clientos/vmlinuz", "initrd": "/clientos/initrd.img",
    "kernel_args": "console=tty0 console=ttyS0,115200 quiet",
    "menu_timeout_ms": 5000, "menu_default": "local",
    "tasks_file": "/srv/shoal/tasks.json"
  }
}
)";
}

}  // namespace shoal::boot
