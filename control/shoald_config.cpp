#include "shoald_config.h"

#include <initializer_list>
#include <limits>

#include <fmt/format.h>

#include "shoald_paths.h"

namespace shoal::control {

namespace {

using json = nlohmann::json;

using boot::only_keys;

template <class T>
status read(const json& object, const char* key, std::string_view where, T& out) {
    auto it = object.find(key);
    if (it == object.end()) {
        return ok();
    }
    if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) {
            return error::format(errc::invalid_argument, 0, "{}{} must be a string", where, key);
        }
        out = it->template get<std::string>();
    } else {
        if (!it->is_number_unsigned() || it->template get<std::uint64_t>() < 1 ||
            it->template get<std::uint64_t>() > std::numeric_limits<T>::max()) {
            return error::format(errc::invalid_argument, 0, "{}{} must be a number from 1 to {}",
                                 where, key, std::numeric_limits<T>::max());
        }
        out = static_cast<T>(it->template get<std::uint64_t>());
    }
    return ok();
}

}  // namespace

shoald_config default_shoald_config() {
    shoald_config c;
    c.boot = boot::default_boot_config();
    c.boot.dhcp_enabled = false;
    c.web_dir = SHOALD_WEB_DIR;
    return c;
}

status apply_shoald_config_json(shoald_config& c, std::string_view json_text) {
    json doc = json::parse(json_text, nullptr, false, true);
    if (doc.is_discarded()) {
        return error(errc::malformed, "not valid JSON (comments are allowed, trailing commas not)");
    }
    SHOAL_RETURN_IF_ERROR(only_keys(
        doc, "the config",
        {"store", "images", "clientos", "web", "log_level", "admin", "api", "boot", "tasks"}));
    SHOAL_RETURN_IF_ERROR(read(doc, "store", "", c.store_url));
    SHOAL_RETURN_IF_ERROR(read(doc, "images", "", c.image_store_dir));
    SHOAL_RETURN_IF_ERROR(read(doc, "clientos", "", c.clientos_dir));
    SHOAL_RETURN_IF_ERROR(read(doc, "web", "", c.web_dir));
    SHOAL_RETURN_IF_ERROR(read(doc, "log_level", "", c.log_level));
    // What the store takes (a URL or a libpq conninfo) is the store's to check, at open.
    if (c.store_url.empty()) {
        return error(errc::invalid_argument,
                     "store is sqlite:///path/to/shoald.db or postgresql://user@host/db");
    }
    if (auto it = doc.find("admin"); it != doc.end()) {
        SHOAL_RETURN_IF_ERROR(only_keys(*it, "admin", {"user", "password", "password_file"}));
        SHOAL_RETURN_IF_ERROR(read(*it, "user", "admin.", c.admin_user));
        SHOAL_RETURN_IF_ERROR(read(*it, "password", "admin.", c.admin_password));
        SHOAL_RETURN_IF_ERROR(read(*it, "password_file", "admin.", c.admin_password_file));
    }
    if (auto it = doc.find("api"); it != doc.end()) {
        SHOAL_RETURN_IF_ERROR(
            only_keys(*it, "api", {"body_size_max", "login_token_ttl_s", "list_limit_max"}));
        SHOAL_RETURN_IF_ERROR(read(*it, "body_size_max", "api.", c.api_body_size_max));
        SHOAL_RETURN_IF_ERROR(read(*it, "login_token_ttl_s", "api.", c.login_token_ttl_s));
        SHOAL_RETURN_IF_ERROR(read(*it, "list_limit_max", "api.", c.list_limit_max));
    }
    if (auto it = doc.find("boot"); it != doc.end()) {
        if (auto s = boot::apply_boot_config_json(c.boot, it->dump()); !s) {
            return error::format(s.err().code(), 0, "boot.{}", s.err().context());
        }
        // DHCP needs an interface to listen on: naming one turns it on unless told otherwise.
        const json& b = *it;
        if (b.contains("dhcp") && b["dhcp"].contains("interfaces") &&
            !b["dhcp"].contains("enabled")) {
            c.boot.dhcp_enabled = !c.boot.dhcp.interfaces.empty();
        }
    }
    if (auto it = doc.find("tasks"); it != doc.end()) {
        if (!it->is_object()) {
            return error(errc::invalid_argument, "tasks must be an object");
        }
        c.tasks = *it;
    }
    c.boot.http.body_size_max = c.api_body_size_max;
    return ok();
}

json shoald_config_json(const shoald_config& c) {
    const auto& b = c.boot;
    json dhcp = {{"enabled", b.dhcp_enabled},
                 {"mode", b.dhcp.mode == dhcp::mode::proxy ? "proxy" : "full"},
                 {"interfaces", b.dhcp.interfaces},
                 {"lease_time_s", b.dhcp.lease_time_s},
                 {"leases_path", b.dhcp.leases_path},
                 {"boot_files",
                  {{"bios", b.dhcp.boot_files.bios}, {"uefi_x64", b.dhcp.boot_files.uefi_x64}}},
                 {"answer_router_solicitations", b.answer_router_solicitations}};
    json tftp = {{"enabled", b.tftp_enabled},
                 {"root", b.tftp.root_dir},
                 {"install_boot_files", b.install_boot_files},
                 {"address", b.tftp.address},
                 {"port", b.tftp.port},
                 {"transfers_max", b.tftp.transfers_max},
                 {"blksize_max", b.tftp.blksize_max},
                 {"windowsize_max", b.tftp.windowsize_max},
                 {"timeout_ms", b.tftp.timeout_ms},
                 {"retries_max", b.tftp.retries_max}};
    json http = {{"address", b.http.address},
                 {"port", b.http.port},
                 {"threads", b.http.threads},
                 {"connections_max", b.http.connections_max}};
    json ipxe = {{"base_url", b.ipxe.base_url},
                 {"kernel", b.ipxe.kernel_path},
                 {"initrd", b.ipxe.initrd_path},
                 {"kernel_args", b.ipxe.kernel_args},
                 {"menu_timeout_ms", b.ipxe.menu_timeout_ms},
                 {"menu_default", b.ipxe.menu_default}};
    return {{"store", c.store_url},
            {"images", c.image_store_dir},
            {"clientos", c.clientos_dir},
            {"web", c.web_dir},
            {"log_level", c.log_level},
            {"admin",
             {{"user", c.admin_user},
              {"password", c.admin_password},
              {"password_file", c.admin_password_file}}},
            {"api",
             {{"body_size_max", c.api_body_size_max},
              {"login_token_ttl_s", c.login_token_ttl_s},
              {"list_limit_max", c.list_limit_max}}},
            {"boot", {{"dhcp", dhcp}, {"tftp", tftp}, {"http", http}, {"ipxe", ipxe}}},
            {"tasks", c.tasks}};
}

}  // namespace shoal::control
