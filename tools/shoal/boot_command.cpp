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

#include "boot_config.h"
#include "commands.h"
#include "common/log.h"
#include "dhcp/server.h"
#include "http/server.h"
#include "ipxe/script.h"
#include "ipxe/task_source.h"
#include "ndp/ra_responder.h"
#include "rootdir/root_dir.h"
#include "tftp/server.h"

namespace shoal::cli {

namespace {

namespace fs = std::filesystem;

struct boot_options {
    std::string config_path;
    std::vector<std::string> interfaces;
    std::string mode;
    bool check = false;
    bool print_config = false;
};

// The boot files Debian's ipxe package ships that shoal hands out.
constexpr const char* ipxe_files[] = {"undionly.kpxe", "ipxe.efi", "snponly.efi"};

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

// Copies the missing iPXE binaries from Debian's package into the TFTP root (atomically:
// a partial copy is never served).
status install_boot_files(const boot_config& c) {
    std::error_code ec;
    fs::create_directories(c.tftp.root_dir, ec);
    if (ec) {
        return error::format(errc::io, ec.value(), "cannot create TFTP root {}", c.tftp.root_dir);
    }
    for (const char* name : ipxe_files) {
        fs::path to = fs::path(c.tftp.root_dir) / name;
        fs::path from = fs::path(debian_ipxe_dir) / name;
        if (fs::exists(to, ec) || !is_regular(from)) {
            continue;
        }
        fs::path tmp = to;
        tmp += ".shoal-tmp";
        fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec) {
            fs::rename(tmp, to, ec);
        }
        if (ec) {
            return error::format(errc::io, ec.value(), "cannot copy {} to {}", from.string(),
                                 to.string());
        }
        log::info("boot: copied {} into the TFTP root", from.string());
    }
    return ok();
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
    if (c.tftp_enabled && c.install_boot_files) {
        if (auto s = install_boot_files(c); !s) {
            std::fprintf(stderr, "shoal boot: %s\n", s.err().describe().c_str());
            return 1;
        }
    }
    // Signals are taken by sigwait below, never by a handler in a server thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::unique_ptr<dhcp::server> dhcp_server;
    if (c.dhcp_enabled) {
        auto s = dhcp::server::create(c.dhcp);
        if (!s) {
            std::fprintf(stderr, "shoal boot: %s\n(run shoal boot --check for every problem)\n",
                         s.err().describe().c_str());
            return 1;
        }
        dhcp_server = std::move(*s);
    }
    std::unique_ptr<tftp::server> tftp_server;
    if (c.tftp_enabled) {
        auto s = tftp::server::create(c.tftp);
        if (!s) {
            std::fprintf(stderr, "shoal boot: %s\n", s.err().describe().c_str());
            return 1;
        }
        tftp_server = std::move(*s);
    }
    std::unique_ptr<ndp::ra_responder> ra;
    if (c.dhcp_enabled && c.answer_router_solicitations) {
        auto r = ndp::ra_responder::create(c.dhcp.interfaces);
        if (!r) {
            log::warn(
                "boot: not answering IPv6 router solicitations ({}); iPXE will wait ~13 s "
                "for a router on each boot",
                r.err().describe());
        } else {
            ra = std::move(*r);
        }
    }

    http::router routes;
    auto http_root = bootsvc::root_dir::open(c.http_root);
    if (!http_root) {
        std::fprintf(stderr, "shoal boot: http root: %s\n", http_root.err().describe().c_str());
        return 1;
    }
    ipxe::add_boot_routes(routes, std::make_shared<ipxe::json_file_task_source>(c.tasks_file),
                          c.ipxe);
    if (c.tftp_enabled) {
        auto tftp_root = bootsvc::root_dir::open(c.tftp.root_dir);
        if (tftp_root) {
            routes.add_prefix(
                http::method::get, "/tftp/",
                http::static_files(std::make_shared<const bootsvc::root_dir>(std::move(*tftp_root)),
                                   "/tftp/"));
        }
    }
    routes.add(http::method::get, "/status", [&](const http::request&) {
        nlohmann::json j;
        if (tftp_server) {
            auto s = tftp_server->stats();
            j["tftp"] = {{"requests", s.requests},
                         {"refused", s.refused},
                         {"completed", s.completed},
                         {"failed", s.failed},
                         {"option_probes", s.option_probes},
                         {"active", s.active},
                         {"retransmitted_packets", s.retransmitted_packets},
                         {"bytes_sent", s.bytes_sent},
                         {"file_cache_hits", s.file_cache_hits},
                         {"file_cache_misses", s.file_cache_misses}};
        }
        if (dhcp_server) {
            auto s = dhcp_server->stats();
            j["dhcp"] = {{"received", s.received},
                         {"malformed", s.malformed},
                         {"discovers", s.discovers},
                         {"offers", s.offers},
                         {"acks", s.acks},
                         {"proxy_offers", s.proxy_offers},
                         {"proxy_acks", s.proxy_acks},
                         {"leases_active", s.leases_active}};
        }
        return http::response::json(200, j);
    });
    routes.add_prefix(
        http::method::get, "/",
        http::static_files(std::make_shared<const bootsvc::root_dir>(std::move(*http_root)), "/"));
    auto http_server = http::server::start(c.http, std::move(routes));
    if (!http_server) {
        std::fprintf(stderr, "shoal boot: %s\n", http_server.err().describe().c_str());
        return 1;
    }

    std::vector<std::thread> threads;
    if (dhcp_server) {
        threads.emplace_back([&] {
            if (auto s = dhcp_server->run(); !s) {
                log::err("boot: dhcp stopped: {}", s.err().describe());
            }
        });
    }
    if (tftp_server) {
        threads.emplace_back([&] {
            if (auto s = tftp_server->run(); !s) {
                log::err("boot: tftp stopped: {}", s.err().describe());
            }
        });
    }
    if (ra) {
        threads.emplace_back([&] { ra->run(); });
    }
    log::info(
        "boot: {}{}; TFTP {}:{} from {}; HTTP {}:{} from {}",
        c.dhcp_enabled ? (c.dhcp.mode == dhcp::mode::proxy ? "proxyDHCP" : "DHCP") : "no DHCP",
        c.dhcp_enabled ? fmt::format(" on {}", fmt::join(c.dhcp.interfaces, ",")) : "",
        c.tftp.address, c.tftp.port, c.tftp.root_dir, c.http.address, (*http_server)->port(),
        c.http_root);

    int sig = 0;
    sigwait(&signals, &sig);
    log::info("boot: signal {}: stopping", sig);
    if (dhcp_server) {
        dhcp_server->stop();
    }
    if (tftp_server) {
        tftp_server->stop();
    }
    if (ra) {
        ra->stop();
    }
    for (auto& t : threads) {
        t.join();
    }
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
