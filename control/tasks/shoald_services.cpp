// shoald's make_services (control/services.h) for the tasks part: the scheduler and
// session runner (service.h) over the store, the engine's sender over the image store,
// the iPXE task source, Wake-on-LAN for the API, GET /client/session for the PCs.
//
// The config's "tasks" object (every key optional):
//   "multicast_group_base": "239.77.0.1", "multicast_port": 5500, "multicast_slots": 4096,
//   "interface": "eth1", "interface_address": "10.77.0.1", "ttl": 1,
//   "rate_bps": 900000000, "receivers_min": 100000, "wait_max_s": 600, "gather_s": 5,
//   "wol_broadcasts": ["10.77.255.255"], "wol_port": 9, "cron_zone": "utc" | "local",
//   "session_secret_file": "/var/lib/shoal/session-secret", "finish_grace_s": 30,
//   "resume_wait_s": 20, "tick_ms": 500, "progress_interval_ms": 1000
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/log.h"
#include "services.h"
#include "shoald_config.h"
#include "tasks/engine_sender.h"
#include "tasks/service.h"
#include "tasks/wol.h"

namespace shoal::control {

namespace {

using nlohmann::json;

std::int64_t wall_now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

result<in_addr> parse_ipv4(const json& v, std::string_view key) {
    if (!v.is_string()) {
        return error::format(errc::invalid_argument, 0, "tasks.{} must be a string", key);
    }
    in_addr a{};
    if (inet_pton(AF_INET, v.get<std::string>().c_str(), &a) != 1) {
        return error::format(errc::invalid_argument, 0,
                             "tasks.{}: \"{:.60}\" is not an IPv4 "
                             "address",
                             key, v.get<std::string>());
    }
    return a;
}

template <class T>
status read_number(const json& doc, const char* key, T& out, std::int64_t low, std::int64_t high) {
    auto it = doc.find(key);
    if (it == doc.end()) {
        return ok();
    }
    if (!it->is_number_integer()) {
        return error::format(errc::invalid_argument, 0, "tasks.{} must be an integer", key);
    }
    auto v = it->get<std::int64_t>();
    if (v < low || v > high) {
        return error::format(errc::invalid_argument, 0, "tasks.{} must be from {} to {}", key, low,
                             high);
    }
    out = static_cast<T>(v);
    return ok();
}

// The secret that keys every session, kept across restarts (so a resumed session keeps
// its key). Made on first start, mode 0600.
result<std::vector<std::byte>> load_secret(const std::string& path) {
    constexpr std::size_t size = 32;
    auto text = read_file(path, 4096);
    if (text) {
        if (text->size() != size) {
            return error::format(errc::corrupt, 0,
                                 "{}: a session secret has {} bytes, this has {}; remove it to "
                                 "make a new one",
                                 path, size, text->size());
        }
        return std::vector<std::byte>(text->begin(), text->end());
    }
    std::vector<std::byte> secret(size);
    RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(size));
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return error::format(errc::io, errno, "cannot write the session secret {}", tmp);
    }
    bool good = ::write(fd, secret.data(), size) == static_cast<ssize_t>(size) && ::fsync(fd) == 0;
    ::close(fd);
    if (!good || ::rename(tmp.c_str(), path.c_str()) != 0) {
        return error::format(errc::io, errno, "cannot write the session secret {}", path);
    }
    return secret;
}

result<tasks::tasks_config> parse_tasks_config(const shoald_config& c) {
    tasks::tasks_config t;
    t.image_store = c.image_store_dir;
    const json& doc = c.tasks;
    static const std::set<std::string> known = {"multicast_group_base",
                                                "multicast_port",
                                                "multicast_slots",
                                                "interface",
                                                "interface_address",
                                                "ttl",
                                                "rate_bps",
                                                "receivers_min",
                                                "wait_max_s",
                                                "gather_s",
                                                "wol_broadcasts",
                                                "wol_port",
                                                "cron_zone",
                                                "session_secret_file",
                                                "finish_grace_s",
                                                "resume_wait_s",
                                                "tick_ms",
                                                "progress_interval_ms"};
    for (auto it = doc.begin(); it != doc.end(); ++it) {
        if (known.count(it.key()) == 0) {
            return error::format(errc::invalid_argument, 0, "tasks.{:.60} is not a setting",
                                 it.key());
        }
    }
    if (auto it = doc.find("multicast_group_base"); it != doc.end()) {
        auto a = parse_ipv4(*it, "multicast_group_base");
        if (!a) {
            return a.err();
        }
        std::uint32_t host = ntohl(a->s_addr);
        if ((host >> 28) != 0xe) {
            return error(errc::invalid_argument,
                         "tasks.multicast_group_base must be a multicast "
                         "address (239.0.0.0/8 for a site)");
        }
        t.multicast.group_base_host_order = host;
    }
    SHOAL_RETURN_IF_ERROR(read_number(doc, "multicast_port", t.multicast.port, 1, 65535));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "multicast_slots", t.multicast.slots, 1, 65536));
    if (auto it = doc.find("interface"); it != doc.end()) {
        if (!it->is_string()) {
            return error(errc::invalid_argument, "tasks.interface must be a string");
        }
        t.interface_name = it->get<std::string>();
    }
    if (auto it = doc.find("interface_address"); it != doc.end()) {
        auto a = parse_ipv4(*it, "interface_address");
        if (!a) {
            return a.err();
        }
        t.interface_address = *a;
    }
    SHOAL_RETURN_IF_ERROR(read_number(doc, "ttl", t.ttl, 1, 255));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "rate_bps", t.rate_bps, 1'000'000, 400'000'000'000));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "receivers_min", t.receivers_min, 1, 100000));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "wait_max_s", t.wait_max_s, 0, 7 * 24 * 3600));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "gather_s", t.gather_s, 0, 3600));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "wol_port", t.wol_port, 1, 65535));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "finish_grace_s", t.finish_grace_s, 1, 3600));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "resume_wait_s", t.resume_wait_s, 1, 3600));
    SHOAL_RETURN_IF_ERROR(read_number(doc, "tick_ms", t.tick_ms, 10, 60000));
    SHOAL_RETURN_IF_ERROR(
        read_number(doc, "progress_interval_ms", t.progress_interval_ms, 200, 60000));
    if (auto it = doc.find("wol_broadcasts"); it != doc.end()) {
        if (!it->is_array()) {
            return error(errc::invalid_argument,
                         "tasks.wol_broadcasts must be a list of "
                         "addresses");
        }
        for (const auto& v : *it) {
            auto a = parse_ipv4(v, "wol_broadcasts");
            if (!a) {
                return a.err();
            }
            t.wol_broadcasts.push_back(*a);
        }
    }
    if (auto it = doc.find("cron_zone"); it != doc.end()) {
        if (*it == "utc") {
            t.zone = tasks::cron_zone::utc;
        } else if (*it == "local") {
            t.zone = tasks::cron_zone::local;
        } else {
            return error(errc::invalid_argument, "tasks.cron_zone is \"utc\" or \"local\"");
        }
    }
    std::string secret_file = "/var/lib/shoal/session-secret";
    if (auto it = doc.find("session_secret_file"); it != doc.end()) {
        if (!it->is_string() || it->get<std::string>().empty()) {
            return error(errc::invalid_argument, "tasks.session_secret_file must be a path");
        }
        secret_file = it->get<std::string>();
    }
    auto secret = load_secret(secret_file);
    if (secret) {
        t.session_secret = std::move(*secret);
    } else if (secret.err().code() == errc::corrupt) {
        return secret.err();
    } else {
        // Not fatal: sessions then get new keys when shoald restarts, and the PCs ask for
        // their session again anyway when the sender falls silent.
        log::warn(
            "tasks: {}; session keys will change when shoald restarts (set "
            "tasks.session_secret_file to a writable path)",
            secret.err().describe());
    }
    return t;
}

class tasks_control final : public task_control {
public:
    tasks_control(std::shared_ptr<tasks::service> svc, std::shared_ptr<store::repository> repo)
        : _svc(std::move(svc)), _repo(std::move(repo)) {}

    void task_changed(std::int64_t /*task_id*/) noexcept override { _svc->poke(); }

    status wake(std::int64_t host_id, const ipxe::mac_address& mac) override {
        auto h = _repo->get_host(host_id);
        if (!h) {
            return h.err();
        }
        store::host copy = *h;
        copy.mac = mac.to_string();
        return _svc->wake(copy);
    }

    void write_metrics(std::string& out) const override { _svc->write_metrics(out); }

private:
    std::shared_ptr<tasks::service> _svc;
    std::shared_ptr<store::repository> _repo;
};

class tasks_background final : public service {
public:
    explicit tasks_background(std::shared_ptr<tasks::service> svc) : _svc(std::move(svc)) {}
    std::string_view name() const noexcept override { return "tasks"; }
    status start() override { return _svc->start(); }
    void stop() noexcept override { _svc->stop(); }

private:
    std::shared_ptr<tasks::service> _svc;
};

}  // namespace

result<services> make_services(const daemon_context& ctx) {
    if (ctx.config == nullptr || !ctx.repo) {
        return error(errc::invalid_argument,
                     "the tasks service needs the config and an open store");
    }
    auto config = parse_tasks_config(*ctx.config);
    if (!config) {
        return config.err();
    }
    auto engine = std::make_shared<tasks::engine_sender>(*config);
    auto svc = std::make_shared<tasks::service>(ctx.repo, *config, engine);
    services out;
    out.boot_tasks = std::make_shared<tasks::store_task_source>(ctx.repo);
    out.tasks = std::make_shared<tasks_control>(svc, ctx.repo);
    out.background.push_back(std::make_unique<tasks_background>(svc));
    out.add_routes = [svc](http::router& routes) {
        // GET /client/session, header X-Shoal-Task-Key: where the PC's multicast session
        // is (group, port, key) and its state. The key is the PC's only credential: a
        // wrong one is 403, a finished task 409.
        routes.add(http::method::get, "/client/session", [svc](const http::request& r) {
            auto key = r.header("X-Shoal-Task-Key");
            if (!key) {
                return http::response::error(401, "X-Shoal-Task-Key header missing");
            }
            auto cs = svc->session_for_key(*key, wall_now_s());
            if (!cs) {
                unsigned status = cs.err().code() == errc::denied     ? 403
                                  : cs.err().code() == errc::conflict ? 409
                                                                      : 500;
                return http::response::error(status, cs.err().describe());
            }
            json j = {
                {"task_id", cs->task_id}, {"task_state", cs->task_state}, {"image", cs->image}};
            if (cs->session_id) {
                j["session_id"] = *cs->session_id;
                j["session_state"] = cs->session_state;
                j["group"] = cs->group;
                j["port"] = cs->port;
                j["key"] = cs->key_hex;
            }
            return http::response::json(200, j);
        });
    };
    return out;
}

}  // namespace shoal::control
