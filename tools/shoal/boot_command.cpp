// shoal boot: the boot services daemon. DHCP (proxy by default), TFTP and HTTP in one
// process, from one config file; `--check` says what is misconfigured and exits non-zero.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/log.h"
#include "dhcp/server.h"
#include "http/server.h"
#include "ipxe/script.h"
#include "ipxe/task_source.h"
#include "ndp/ra_responder.h"
#include "rootdir/root_dir.h"
#include "services/boot_config.h"
#include "services/boot_services.h"
#include "tftp/server.h"

namespace shoal::cli {

namespace {

namespace fs = std::filesystem;
using boot::boot_config;
using boot::debian_ipxe_dir;
using boot::default_boot_config;
using boot::apply_boot_config_json;
using boot::boot_config_example;

struct boot_options {
    std::string config_path;
    std::vector<std::string> interfaces;
    std::string mode;
    bool check = false;
    bool print_config = false;
};

std::string port_suffix(std::uint16_t port) {
    return port == 80 ? std::string() : fmt::format(":{}", port);
}

result<boot_config> load(const boot_options& o) {
    boot_config c = default_boot_config();
    if (!o.config_path.empty()) {
        std::ifstream in(o.config_path);
        if (!in) {
            return error::format(errc::not_found, errno, "cannot read config file {}",
                                 o.config_path);
        }
        std::stringstream text;
        text << in.rdbuf();
        if (auto s = apply_boot_config_json(c, text.str()); !s) {
            return error::format(s.err().code(), 0, "{}: {}", o.config_path, s.err().context());
        }
    }
    if (!o.interfaces.empty()) {
        c.dhcp.interfaces = o.interfaces;
    }
    if (o.mode == "full") {
        c.dhcp.mode = dhcp::mode::full;
    } else if (o.mode == "proxy") {
        c.dhcp.mode = dhcp::mode::proxy;
    }
    // iPXE clients go straight to this server's script for their MAC; UEFI HTTP boot clients
    // fetch iPXE itself from the TFTP root, served over HTTP too.
    c.dhcp.ipxe_script_url =
        fmt::format("http://{{server}}{}/boot?mac={{mac}}", port_suffix(c.http.port));
    c.dhcp.http_boot_url =
        fmt::format("http://{{server}}{}/tftp/{{file}}", port_suffix(c.http.port));
    return c;
}

// Binds a port the way its server will, to see whether it is free (UDP without
// SO_REUSEADDR, so that any other holder shows).
std::string port_taken(int type, const std::string& address, std::uint16_t port) {
    int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
    std::string why;
    if (type == SOCK_STREAM) {
        // As the server does: connections left in TIME_WAIT do not hold a TCP port, only a
        // listener does (Linux refuses a second listener even with SO_REUSEADDR).
        int on = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, 1) != 0)) {
        why = std::strerror(errno);
    }
    ::close(fd);
    return why;
}

bool is_regular(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

int check(const boot_config& c) {
    std::vector<std::string> problems;
    std::vector<std::string> fine;

    if (c.dhcp_enabled) {
        for (auto& p : dhcp::diagnose(c.dhcp)) {
            problems.push_back(std::move(p));
        }
        if (problems.empty()) {
            fine.push_back(fmt::format("dhcp: {} mode on {}",
                                       c.dhcp.mode == dhcp::mode::proxy ? "proxy" : "full",
                                       fmt::join(c.dhcp.interfaces, ", ")));
        }
    }
    if (c.tftp_enabled) {
        fs::path root(c.tftp.root_dir);
        std::error_code ec;
        if (!fs::is_directory(root, ec) && c.install_boot_files &&
            is_regular(fs::path(debian_ipxe_dir) / c.dhcp.boot_files.bios)) {
            fine.push_back(
                fmt::format("tftp: root {} will be made at start, with the iPXE "
                            "files from {}",
                            c.tftp.root_dir, debian_ipxe_dir));
        } else if (!fs::is_directory(root, ec)) {
            problems.push_back(fmt::format(
                "tftp: root {} does not exist: mkdir -p {} (shoal boot copies the iPXE files "
                "into it at start while tftp.install_boot_files is true)",
                c.tftp.root_dir, c.tftp.root_dir));
        } else {
            auto dir = bootsvc::root_dir::open(c.tftp.root_dir);
            for (const std::string* name : {&c.dhcp.boot_files.bios, &c.dhcp.boot_files.uefi_x64}) {
                if (!dir) {
                    break;
                }
                auto f = dir->open_file(*name);
                if (f) {
                    fine.push_back(fmt::format("tftp: {} is served ({} bytes)", *name,
                                               f->identity.size_bytes));
                    continue;
                }
                bool can_install =
                    c.install_boot_files && is_regular(fs::path(debian_ipxe_dir) / *name);
                if (can_install) {
                    fine.push_back(
                        fmt::format("tftp: {} is missing; it will be copied from {} at "
                                    "start",
                                    *name, debian_ipxe_dir));
                } else {
                    problems.push_back(fmt::format(
                        "tftp: boot file {} is not in {} ({}): install Debian's ipxe package "
                        "(apt-get install ipxe) and copy it: cp {}/{} {}/",
                        *name, c.tftp.root_dir, f.err().describe(), debian_ipxe_dir, *name,
                        c.tftp.root_dir));
                }
            }
            if (!dir) {
                problems.push_back(fmt::format("tftp: {}", dir.err().describe()));
            }
        }
        if (auto why = port_taken(SOCK_DGRAM, c.tftp.address, c.tftp.port); !why.empty()) {
            problems.push_back(
                fmt::format("tftp: port {}/udp on {} is taken ({}): stop the other TFTP server "
                            "(see `ss -lunp 'sport = :{}'`) or set tftp.enabled to false",
                            c.tftp.port, c.tftp.address, why, c.tftp.port));
        }
    }
    if (auto why = port_taken(SOCK_STREAM, c.http.address, c.http.port); !why.empty()) {
        problems.push_back(
            fmt::format("http: port {}/tcp on {} is taken ({}): stop the other web server (see "
                        "`ss -ltnp 'sport = :{}'`) or set http.port",
                        c.http.port, c.http.address, why, c.http.port));
    }
    std::error_code ec;
    if (!fs::is_directory(c.http_root, ec)) {
        problems.push_back(
            fmt::format("http: root {} does not exist: mkdir -p {}", c.http_root, c.http_root));
    } else {
        for (const std::string* p : {&c.ipxe.kernel_path, &c.ipxe.initrd_path}) {
            if (!is_regular(fs::path(c.http_root) / p->substr(1))) {
                problems.push_back(
                    fmt::format("http: the client OS file {} is not under {}: build it with "
                                "tools/mkclientos {}/clientos",
                                *p, c.http_root, c.http_root));
            }
        }
    }
    if (auto s = ipxe::validate(c.ipxe); !s) {
        problems.push_back(fmt::format("ipxe: {}", s.err().context()));
    }
    std::ifstream tasks(c.tasks_file);
    if (tasks) {
        std::stringstream text;
        text << tasks.rdbuf();
        auto parsed = ipxe::json_file_task_source::parse(text.str(), c.tasks_file);
        if (!parsed) {
            problems.push_back(fmt::format("ipxe: {}", parsed.err().context()));
        } else {
            fine.push_back(fmt::format("ipxe: {} task(s) in {}", parsed->size(), c.tasks_file));
        }
    } else {
        fine.push_back(
            fmt::format("ipxe: no tasks file at {}: every host gets the menu", c.tasks_file));
    }

    for (const auto& f : fine) {
        std::printf("ok:      %s\n", f.c_str());
    }
    for (const auto& p : problems) {
        std::printf("problem: %s\n", p.c_str());
    }
    if (!problems.empty()) {
        std::printf("shoal boot --check: %zu problem(s)\n", problems.size());
        return 1;
    }
    std::printf("shoal boot --check: no problems found\n");
    return 0;
}

int run(const boot_config& c) {
    if (auto s = ipxe::validate(c.ipxe); !s) {
        std::fprintf(stderr, "shoal boot: ipxe: %s\n", s.err().describe().c_str());
        return 2;
    }
    // Signals are taken by sigwait below, never by a handler in a server thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto services = boot::boot_services::start(c);
    if (!services) {
        std::fprintf(stderr, "shoal boot: %s\n(run shoal boot --check for every problem)\n",
                     services.err().describe().c_str());
        return 1;
    }
    http::router routes;
    auto http_root = bootsvc::root_dir::open(c.http_root);
    if (!http_root) {
        std::fprintf(stderr, "shoal boot: http root: %s\n", http_root.err().describe().c_str());
        return 1;
    }
    ipxe::add_boot_routes(routes, std::make_shared<ipxe::json_file_task_source>(c.tasks_file),
                          c.ipxe);
    (*services)->add_routes(routes);
    const boot::boot_services* b = services->get();
    routes.add(http::method::get, "/status",
               [b](const http::request&) { return http::response::json(200, b->stats_json()); });
    routes.add_prefix(
        http::method::get, "/",
        http::static_files(std::make_shared<const bootsvc::root_dir>(std::move(*http_root)), "/"));
    auto http_server = http::server::start(c.http, std::move(routes));
    if (!http_server) {
        std::fprintf(stderr, "shoal boot: %s\n", http_server.err().describe().c_str());
        return 1;
    }
    log::info("boot: {}; HTTP {}:{} from {}", (*services)->describe(), c.http.address,
              (*http_server)->port(), c.http_root);

    int sig = 0;
    sigwait(&signals, &sig);
    log::info("boot: signal {}: stopping", sig);
    (*services)->stop();
    (*http_server)->stop();
    return 0;
}

}  // namespace

void add_boot_command(CLI::App& app, command_set& commands) {
    auto o = std::make_shared<boot_options>();
    auto* sub = app.add_subcommand(
        "boot", "serve PXE boot: DHCP (proxy by default), TFTP and HTTP iPXE scripts");
    sub->add_option("-c,--config", o->config_path, "JSON config file (see --print-config)");
    sub->add_option("-i,--interface", o->interfaces,
                    "lab interface for DHCP (repeat for more; overrides the config file)");
    sub->add_option("--mode", o->mode, "proxy (beside a site DHCP server) or full (isolated lab)")
        ->check(CLI::IsMember({"proxy", "full"}));
    sub->add_flag("--check", o->check,
                  "explain what is misconfigured (boot files, ports, interfaces) and exit non-zero "
                  "if anything is");
    sub->add_flag("--print-config", o->print_config, "print an example config with the defaults");
    commands.add(sub, [o] {
        if (o->print_config) {
            std::fputs(boot_config_example().c_str(), stdout);
            return 0;
        }
        auto c = load(*o);
        if (!c) {
            std::fprintf(stderr, "shoal boot: %s\n", c.err().describe().c_str());
            return 2;
        }
        return o->check ? check(*c) : run(*c);
    });
}

}  // namespace shoal::cli
