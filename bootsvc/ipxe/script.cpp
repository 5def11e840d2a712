#include "ipxe/script.h"

#include <fmt/format.h>

#include "common/log.h"

namespace shoal::ipxe {

namespace {

constexpr std::string_view menu_items[][2] = {
    {"local", "Boot from the local disk"},
    {"quickreg", "Quick registration and inventory"},
    {"fullreg", "Full registration and inventory"},
    {"deploy", "Deploy an image"},
    {"multicast", "Join a multicast session"},
    {"inventory", "Hardware inventory"},
};

// The Host header iPXE sent, if it is a plain host[:port]: it becomes part of a script.
bool plain_host(std::string_view host) noexcept {
    if (host.empty() || host.size() > 255) {
        return false;
    }
    for (char c : host) {
        bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
        if (!okc) {
            return false;
        }
    }
    return true;
}

bool script_safe(std::string_view s) noexcept {
    for (char c : s) {
        if (c == '\n' || c == '\r' || c == '$' || c == '{' || c == '}' || c == '"' || c == '\'' ||
            c == '\0') {
            return false;
        }
    }
    return true;
}

std::string initrd_name(std::string_view path) {
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// The kernel, initrd and boot lines; `args` is shoal's part of the command line.
std::string boot_lines(const script_config& c, std::string_view base, std::string_view args) {
    // initrd=<name>: the EFI stub of the kernel loads the initrd iPXE registered under this
    // name; under BIOS iPXE passes it itself and the argument is ignored.
    return fmt::format(
        "kernel {0}{1} initrd={2} {3} {4}\n"
        "initrd {0}{5}\n"
        "boot || goto failed\n",
        base, c.kernel_path, initrd_name(c.initrd_path), args, c.kernel_args, c.initrd_path);
}

}  // namespace

status validate(const script_config& c) {
    bool known = false;
    for (const auto& item : menu_items) {
        known = known || item[0] == c.menu_default;
    }
    if (!known) {
        return error::format(errc::invalid_argument, 0,
                             "menu default '{}' is none of local, quickreg, fullreg, deploy, "
                             "multicast, inventory",
                             c.menu_default);
    }
    if (!c.kernel_path.starts_with('/') || !c.initrd_path.starts_with('/')) {
        return error(errc::invalid_argument, "kernel and initrd paths start with '/'");
    }
    if (!script_safe(c.kernel_path) || !script_safe(c.initrd_path) || !script_safe(c.kernel_args) ||
        !script_safe(c.base_url)) {
        return error(errc::invalid_argument,
                     "kernel, initrd, kernel_args and base_url may not hold newlines, quotes, "
                     "'$', '{' or '}'");
    }
    return ok();
}

std::string task_script(const script_config& c, std::string_view base, const mac_address& mac,
                        const boot_task& task) {
    std::string args =
        fmt::format("shoal.server={} shoal.mac={} shoal.task={}", base, mac.to_string(), task.type);
    for (const auto& [key, value] : task.args) {
        args += fmt::format(" shoal.{}={}", key, value);
    }
    return fmt::format(
        "#!ipxe\n"
        "# shoal: {0} has a pending {1} task\n"
        "echo shoal: {1} task for {0}\n"
        "{2}"
        ":failed\n"
        "echo shoal: booting the client OS failed; trying the next boot device\n"
        "exit 1\n",
        mac.to_string(), task.type, boot_lines(c, base, args));
}

std::string menu_script(const script_config& c, std::string_view base, const mac_address& mac) {
    std::string s = fmt::format(
        "#!ipxe\n"
        "# shoal: no task for {0}\n"
        ":menu\n"
        "menu shoal - {0} (no task)\n",
        mac.to_string());
    for (const auto& item : menu_items) {
        s += fmt::format("item {} {}\n", item[0], item[1]);
    }
    std::string common = fmt::format("shoal.server={} shoal.mac={}", base, mac.to_string());
    s += fmt::format(
        "choose --default {0} --timeout {1} target || goto {0}\n"
        "goto ${{target}}\n"
        "\n"
        ":local\n"
        "echo shoal: booting the local disk\n"
        // UEFI firmware boots its next entry when iPXE exits; under BIOS, drive 0x80 is
        // the first hard disk (FOG's choices, which work across vendors).
        "iseq ${{platform}} efi && exit 0 ||\n"
        "sanboot --no-describe --drive 0x80 || exit 1\n"
        "\n"
        ":quickreg\n"
        "set mode quickreg\n"
        "goto clientos\n"
        ":fullreg\n"
        "set mode fullreg\n"
        "goto clientos\n"
        ":deploy\n"
        "set mode deploy\n"
        "goto clientos\n"
        ":inventory\n"
        "set mode inventory\n"
        "goto clientos\n"
        ":multicast\n"
        "echo -n Multicast session name: && read session || goto menu\n"
        "set mode multicast\n"
        "set extra shoal.session=${{session}}\n"
        "goto clientos\n"
        "\n"
        ":clientos\n"
        "{2}"
        ":failed\n"
        "echo shoal: booting the client OS failed\n"
        "goto menu\n",
        c.menu_default, c.menu_timeout_ms,
        boot_lines(c, base, common + " shoal.mode=${mode} ${extra}"));
    return s;
}

std::string chain_script(std::string_view base) {
    return fmt::format("#!ipxe\nchain {}/boot?mac=${{netX/mac}}\n", base);
}

void add_boot_routes(http::router& routes, std::shared_ptr<task_source> tasks,
                     script_config config) {
    auto handler = [tasks = std::move(tasks), c = std::move(config)](const http::request& r) {
        std::string base = c.base_url;
        if (base.empty()) {
            auto host = r.header("Host");
            if (!host || !plain_host(*host)) {
                return http::response::text(400, "shoal: the request has no usable Host header\n");
            }
            base = fmt::format("http://{}", *host);
        }
        auto mac_text = r.query("mac");
        if (!mac_text) {
            return http::response::text(200, chain_script(base));
        }
        auto mac = parse_mac(*mac_text);
        if (!mac) {
            log::info("ipxe: {} asked for /boot with a bad MAC: {}", r.remote_address(),
                      mac.err().context());
            return http::response::text(
                400, fmt::format("#!ipxe\necho shoal: bad MAC address: {}\nexit 1\n",
                                 mac.err().context()));
        }
        auto task = tasks->pending_task(*mac);
        if (!task) {
            log::err("ipxe: no boot decision for {}: {}", mac->to_string(), task.err().describe());
            return http::response::text(
                500, "#!ipxe\necho shoal: the server cannot read its tasks; see its log\nexit 1\n");
        }
        if (*task) {
            log::info("ipxe: {} ({}) boots its {} task", mac->to_string(), r.remote_address(),
                      (*task)->type);
            return http::response::text(200, task_script(c, base, *mac, **task));
        }
        log::debug("ipxe: {} ({}) gets the menu", mac->to_string(), r.remote_address());
        return http::response::text(200, menu_script(c, base, *mac));
    };
    routes.add(http::method::get, "/boot", handler);
    routes.add(http::method::get, "/boot.ipxe", handler);
}

}  // namespace shoal::ipxe
