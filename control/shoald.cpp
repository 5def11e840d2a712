// shoald: the shoal server. One process, one config: the store, the REST API and web
// console, /metrics, the iPXE scripts and the boot services (DHCP, TFTP), and the tasks
// part's services (make_services, services.h). Stops cleanly on SIGTERM and SIGINT.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "api/api.h"
#include "api/image_routes.h"
#include "api/metrics.h"
#include "common/file.h"
#include "common/log.h"
#include "http/server.h"
#include "ipxe/script.h"
#include "ipxe/task_source.h"
#include "rootdir/root_dir.h"
#include "services.h"
#include "services/boot_services.h"
#include "shoald_config.h"
#include "store/repository.h"

namespace {

namespace fs = std::filesystem;
using namespace shoal;

// A config file is a few kilobytes; this bound only stops a wrong path (a disk image) early.
constexpr std::size_t config_size_max = 1u << 20;

struct options {
    std::string config_path;
    bool check = false;
    bool print_config = false;
    std::string log_level;
};

result<control::shoald_config> load(const options& o) {
    control::shoald_config c = control::default_shoald_config();
    if (!o.config_path.empty()) {
        auto text = read_file(o.config_path, config_size_max);
        if (!text) {
            return error::format(errc::not_found, text.err().sys_errno(),
                                 "cannot read config file {}", o.config_path);
        }
        std::string_view body(reinterpret_cast<const char*>(text->data()), text->size());
        if (auto s = control::apply_shoald_config_json(c, body); !s) {
            return error::format(s.err().code(), 0, "{}: {}", o.config_path, s.err().context());
        }
    }
    if (!o.log_level.empty()) {
        c.log_level = o.log_level;
    }
    // iPXE clients go straight to this server's script for their MAC; UEFI HTTP boot
    // clients fetch iPXE itself from the TFTP root over HTTP.
    std::string port =
        c.boot.http.port == 80 ? std::string() : fmt::format(":{}", c.boot.http.port);
    c.boot.dhcp.ipxe_script_url = fmt::format("http://{{server}}{}/boot?mac={{mac}}", port);
    c.boot.dhcp.http_boot_url = fmt::format("http://{{server}}{}/tftp/{{file}}", port);
    return c;
}

// A directory served read-only under `prefix`; a missing directory is a warning (the
// routes then answer 404), not a failure to start.
void serve_dir(http::router& routes, const std::string& dir, const std::string& prefix,
               std::string_view what) {
    auto root = bootsvc::root_dir::open(dir);
    if (!root) {
        log::warn("shoald: not serving {} at {}: {}", what, prefix, root.err().describe());
        return;
    }
    routes.add_prefix(
        http::method::get, prefix,
        http::static_files(std::make_shared<const bootsvc::root_dir>(std::move(*root)), prefix));
}

// The first administrator, when the store has no user at all. A generated password is
// written to a file only root reads, never to the log.
status ensure_admin(store::repository& repo, const control::shoald_config& c) {
    auto users = repo.list_users(store::page{1, 0});
    if (!users) {
        return users.err();
    }
    if (!users->empty()) {
        return ok();
    }
    std::string password = c.admin_password;
    bool generated = password.empty();
    if (generated) {
        if (sodium_init() < 0) {
            return error(errc::io, "libsodium did not start");
        }
        // 18 random bytes as 24 characters of URL-safe base64: 144 bits.
        unsigned char raw[18];
        randombytes_buf(raw, sizeof raw);
        char text[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
        sodium_bin2base64(text, sizeof text, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        password = text;
        std::error_code ec;
        fs::create_directories(fs::path(c.admin_password_file).parent_path(), ec);
        int fd =
            ::open(c.admin_password_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            return error::format(errc::io, errno,
                                 "cannot write the first admin's password to {} (set "
                                 "admin.password_file or admin.password)",
                                 c.admin_password_file);
        }
        ::fchmod(fd, 0600);
        std::string line = password + "\n";
        bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
        ::close(fd);
        if (!written) {
            return error::format(errc::io, errno, "cannot write {}", c.admin_password_file);
        }
    }
    store::user u;
    u.name = c.admin_user;
    u.role = store::user_role::admin;
    auto made = repo.create_user(u, password);
    if (!made) {
        return made.err();
    }
    if (generated) {
        log::warn(
            "shoald: made the first admin user '{}'; its password is in {} (mode 0600): "
            "log in and change it",
            c.admin_user, c.admin_password_file);
    } else {
        log::info("shoald: made the first admin user '{}' with the password from the config",
                  c.admin_user);
    }
    return ok();
}

int check(const control::shoald_config& c) {
    std::vector<std::string> problems;
    std::vector<std::string> fine;
    auto dir = [&](const std::string& path, std::string_view what) {
        std::error_code ec;
        if (fs::is_directory(path, ec)) {
            fine.push_back(fmt::format("{} {}", what, path));
        } else {
            problems.push_back(fmt::format(
                "{} {} is not a directory: mkdir -p {} or set it in the config", what, path, path));
        }
    };
    dir(c.web_dir, "web console");
    dir(c.clientos_dir, "client OS");
    dir(c.image_store_dir, "image store");
    if (auto s = ipxe::validate(c.boot.ipxe); !s) {
        problems.push_back(fmt::format("boot.ipxe: {}", s.err().context()));
    }
    for (const auto& f : fine) {
        std::printf("ok:      %s\n", f.c_str());
    }
    for (const auto& p : problems) {
        std::printf("problem: %s\n", p.c_str());
    }
    std::printf("shoald --check: %s\n",
                problems.empty() ? "no problems found"
                                 : fmt::format("{} problem(s)", problems.size()).c_str());
    return problems.empty() ? 0 : 1;
}

int run(const control::shoald_config& c) {
    // Signals are taken by sigwait below, never by a handler on a server thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto opened = store::open_repository(c.store_url);
    if (!opened) {
        log::err("shoald: store {}: {}", c.store_url, opened.err().describe());
        return 1;
    }
    std::shared_ptr<store::repository> repo = std::move(*opened);
    log::info("shoald: store {} ({}), schema {}", c.store_url, repo->backend(),
              store::schema_version_latest());
    if (auto s = ensure_admin(*repo, c); !s) {
        log::err("shoald: {}", s.err().describe());
        return 1;
    }

    control::daemon_context ctx;
    ctx.config = &c;
    ctx.repo = repo;
    auto made = control::make_services(ctx);
    if (!made) {
        log::err("shoald: {}", made.err().describe());
        return 1;
    }
    control::services& svc = *made;

    http::router routes;
    std::shared_ptr<ipxe::task_source> boot_tasks = svc.boot_tasks;
    if (!boot_tasks) {
        boot_tasks = std::make_shared<ipxe::memory_task_source>();
    }
    ipxe::add_boot_routes(routes, boot_tasks, c.boot.ipxe);
    serve_dir(routes, c.clientos_dir, "/clientos/", "the client OS");
    serve_dir(routes, c.web_dir, "/ui/", "the web console");
    routes.add(http::method::get, "/", [](const http::request&) {
        auto r = http::response::text(302, "the web console is at /ui/\n");
        r.headers.emplace_back("Location", "/ui/");
        return r;
    });
    if (svc.add_routes) {
        svc.add_routes(routes);
    }

    auto boot = boot::boot_services::start(c.boot);
    if (!boot) {
        log::err("shoald: {} (run shoald --check)", boot.err().describe());
        return 1;
    }
    (*boot)->add_routes(routes);
    const boot::boot_services* boot_ptr = boot->get();
    routes.add(http::method::get, "/status", [boot_ptr](const http::request&) {
        return http::response::json(200, boot_ptr->stats_json());
    });

    auto counters = std::make_shared<api::http_counters>();
    api::api_deps deps;
    deps.repo = repo;
    deps.tasks = svc.tasks;
    deps.counters = counters;
    deps.extra_metrics = [boot_ptr](std::string& out) {
        api::write_boot_metrics(out, boot_ptr->dhcp_stats(), boot_ptr->tftp_stats());
    };
    api::api_config api_config;
    api_config.login_token_ttl_s = c.login_token_ttl_s;
    api_config.list_limit_max = c.list_limit_max;
    api_config.image_store_dir = c.image_store_dir;
    api::add_api_routes(routes, std::move(deps), api_config);

    http::server_config http_config = c.boot.http;
    // Chunk uploads (/store/, image_routes.h) are up to 16 MiB; the JSON API keeps its bound.
    http_config.body_size_max_by_prefix.emplace_back(std::string(api::image_routes_prefix),
                                                     api::image_body_size_max);
    auto http_server = http::server::start(
        http_config,
        api::instrumented(std::make_shared<const http::router>(std::move(routes)), counters));
    if (!http_server) {
        log::err("shoald: {}", http_server.err().describe());
        return 1;
    }
    std::size_t started = 0;
    for (; started < svc.background.size(); ++started) {
        if (auto s = svc.background[started]->start(); !s) {
            log::err("shoald: {} did not start: {}", svc.background[started]->name(),
                     s.err().describe());
            break;
        }
    }
    int rc = 0;
    if (started == svc.background.size()) {
        log::info("shoald: serving HTTP on {}:{} (API /api/v1/, console /ui/); {}",
                  c.boot.http.address, (*http_server)->port(), (*boot)->describe());
        int sig = 0;
        sigwait(&signals, &sig);
        log::info("shoald: signal {}: stopping", sig);
    } else {
        rc = 1;
    }
    // Reverse order: the services, then the server that reaches them, then the boot services.
    while (started > 0) {
        svc.background[--started]->stop();
    }
    (*http_server)->stop();
    (*boot)->stop();
    log::info("shoald: stopped");
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"shoald: the shoal server (store, REST API, web console, boot services, tasks)"};
    options o;
    app.add_option("-c,--config", o.config_path, "JSON config file (see --print-config)");
    app.add_flag("--check", o.check, "check the config and the directories it names, then exit");
    app.add_flag("--print-config", o.print_config,
                 "print the config in effect (the defaults, with --config applied) and exit");
    app.add_option("--log", o.log_level, "log level: trace, debug, info, warn, error, off");
    CLI11_PARSE(app, argc, argv);

    auto c = load(o);
    if (!c) {
        std::fprintf(stderr, "shoald: %s\n", c.err().describe().c_str());
        return 2;
    }
    if (o.print_config) {
        std::printf("%s\n", control::shoald_config_json(*c).dump(2).c_str());
        return 0;
    }
    auto level = log::parse_level(c->log_level);
    if (!level) {
        std::fprintf(stderr, "shoald: log_level: %s\n", level.err().describe().c_str());
        return 2;
    }
    log::init(*level);
    if (o.check) {
        return check(*c);
    }
    return run(*c);
}
