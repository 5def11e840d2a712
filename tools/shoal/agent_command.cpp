// shoal agent: what the client OS runs for a multicast deploy task (issue 8 extends it into
// the whole client-OS agent). It registers the PC, reads its task from the iPXE script as
// the kernel command line would carry it (shoal.task=<id> shoal.key=<secret>), asks shoald
// for the task and its session, joins the session with the engine's receiver (receiver id
// = task id), posts progress about once a second, and reports complete only once the
// receiver has verified every chunk, or failed with the reason.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/clock.h"
#include "common/log.h"
#include "deploy/run.h"
#include "ipxe/mac.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {

using nlohmann::json;

struct agent_options {
    std::string server;  // http://10.77.0.1:8080
    std::string mac;
    std::string target;
    std::string interface_name;
    std::string name;
    std::string memory = "256M";
    std::string wait_task = "0s";      // poll /boot this long for a task
    std::string join_timeout = "15m";  // for the session to start
    unsigned attempts = 5;             // receiver runs (the first and resumes)
};

struct http_reply {
    long status = 0;
    std::string body;
};

std::size_t append(char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

// One request; `body` set means POST with JSON. Bounded by a 30 s timeout.
result<http_reply> http(const std::string& url, const std::string& key,
                        const std::optional<std::string>& body) {
    CURL* c = curl_easy_init();
    if (c == nullptr) {
        return error(errc::io, "curl_easy_init failed");
    }
    http_reply reply;
    curl_slist* headers = nullptr;
    if (!key.empty()) {
        headers = curl_slist_append(headers, ("X-Shoal-Task-Key: " + key).c_str());
    }
    if (body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        return error::format(errc::peer_gone, 0, "{}: {}", url, curl_easy_strerror(rc));
    }
    return reply;
}

// The interface's IPv4 address and prefix, "10.77.1.5/16" ("" if none): what shoald needs
// to wake this PC through its subnet's broadcast.
std::string interface_cidr(const std::string& name) {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) {
        return {};
    }
    std::string out;
    for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
        if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET ||
            (a->ifa_flags & IFF_LOOPBACK) != 0 || (!name.empty() && name != a->ifa_name)) {
            continue;
        }
        char text[INET_ADDRSTRLEN];
        auto* sin = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
        unsigned prefix = 0;
        if (a->ifa_netmask != nullptr) {
            prefix = static_cast<unsigned>(__builtin_popcount(
                reinterpret_cast<sockaddr_in*>(a->ifa_netmask)->sin_addr.s_addr));
        }
        out = fmt::format("{}/{}", text, prefix);
        break;
    }
    freeifaddrs(list);
    return out;
}

// shoal.<name>=<value> arguments from the script's kernel line, as the kernel command line
// would carry them.
std::map<std::string, std::string> kernel_args(const std::string& script) {
    std::map<std::string, std::string> out;
    std::istringstream lines(script);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("kernel ", 0) != 0) {
            continue;
        }
        std::istringstream words(line);
        std::string w;
        while (words >> w) {
            if (w.rfind("shoal.", 0) == 0 && w.find('=') != std::string::npos) {
                auto eq = w.find('=');
                out[w.substr(6, eq - 6)] = w.substr(eq + 1);
            }
        }
    }
    return out;
}

result<std::vector<std::byte>> key_from_hex(const std::string& hex) {
    if (hex.size() != 64) {
        return error(errc::malformed, "session key: not 64 hex digits");
    }
    std::vector<std::byte> key(32);
    for (std::size_t i = 0; i < 32; ++i) {
        unsigned v = 0;
        if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) {
            return error(errc::malformed, "session key: not hex");
        }
        key[i] = static_cast<std::byte>(v);
    }
    return key;
}

// Progress goes to shoald from its own thread: the receiver's loop must not wait on HTTP.
class progress_poster {
public:
    progress_poster(std::string url, std::string key) : _url(std::move(url)), _key(std::move(key)) {
        _thread = std::thread([this] { loop(); });
    }
    ~progress_poster() {
        {
            std::lock_guard l(_mutex);
            _stop = true;
        }
        _cv.notify_all();
        _thread.join();
    }
    void update(json doc) {
        std::lock_guard l(_mutex);
        _latest = std::move(doc);
        _fresh = true;
    }
    // The task was cancelled or finished on the server (403/409): stop.
    bool refused() const { return _refused.load(); }

private:
    void loop() {
        std::unique_lock l(_mutex);
        while (!_stop) {
            _cv.wait_for(l, std::chrono::seconds(1));
            if (!_fresh || _stop) {
                continue;
            }
            std::string body = _latest.dump();
            _fresh = false;
            l.unlock();
            auto r = http(_url, _key, body);
            if (r && (r->status == 403 || r->status == 409)) {
                log::warn("shoald refused the progress report ({}): {}", r->status, r->body);
                _refused = true;
            }
            l.lock();
        }
    }
    std::string _url;
    std::string _key;
    std::mutex _mutex;
    std::condition_variable _cv;
    json _latest;
    bool _fresh = false;
    bool _stop = false;
    std::atomic<bool> _refused{false};
    std::thread _thread;
};

status post_final(const std::string& server, const std::string& key, const json& doc) {
    // The last word matters: try a few times (shoald may be restarting).
    for (int attempt = 0; attempt < 30; ++attempt) {
        auto r = http(server + "/client/progress", key, doc.dump());
        if (r && r->status / 100 == 2) {
            return ok();
        }
        if (r && (r->status == 403 || r->status == 409 || r->status == 400)) {
            return error::format(errc::denied, 0, "shoald refused the final report ({}): {:.200}",
                                 r->status, r->body);
        }
        time::sleep_for_ns(time::ns_per_s);
    }
    return error(errc::peer_gone, "shoald did not take the final report for 30 s");
}

int run_agent(const agent_options& o) {
    auto mac = ipxe::parse_mac(o.mac);
    auto memory = parse_size_bytes(o.memory);
    auto wait_task = parse_duration_ns(o.wait_task);
    auto join_timeout = parse_duration_ns(o.join_timeout);
    for (const error* e :
         {mac ? nullptr : &mac.err(), memory ? nullptr : &memory.err(),
          wait_task ? nullptr : &wait_task.err(), join_timeout ? nullptr : &join_timeout.err()}) {
        if (e != nullptr) {
            std::fprintf(stderr, "shoal agent: %s\n", e->describe().c_str());
            return 2;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const std::string server = o.server;
    const std::string mac_text = mac->to_string();

    // 1. Quick registration.
    json reg = {{"mac", mac_text}};
    if (!o.name.empty()) {
        reg["name"] = o.name;
    }
    json nic = {{"mac", mac_text}};
    if (auto cidr = interface_cidr(o.interface_name); !cidr.empty()) {
        nic["ipv4"] = cidr;
    }
    reg["inventory"] = {{"nics", json::array({nic})}};
    auto registered = http(server + "/client/register", "", reg.dump());
    if (!registered || registered->status / 100 != 2) {
        std::fprintf(stderr, "shoal agent: registration at %s failed: %s\n", server.c_str(),
                     registered
                         ? fmt::format("HTTP {} {}", registered->status, registered->body).c_str()
                         : registered.err().describe().c_str());
        return 1;
    }
    log::info("registered {} at {}", mac_text, server);

    // 2. The boot script's kernel line: shoal.task=<id> shoal.key=<secret>.
    std::map<std::string, std::string> args;
    auto task_deadline = time::deadline::after_ns(*wait_task);
    while (true) {
        auto script = http(server + "/boot?mac=" + mac_text, "", std::nullopt);
        if (script && script->status == 200) {
            args = kernel_args(script->body);
            if (args.count("task") != 0 && args.count("key") != 0) {
                break;
            }
        }
        if (task_deadline.expired()) {
            std::fprintf(stderr,
                         "shoal agent: no task for %s at %s (the boot script is the "
                         "menu); create one and run again\n",
                         mac_text.c_str(), server.c_str());
            return 3;
        }
        time::sleep_for_ns(time::ns_per_s);
    }
    const std::string key = args["key"];
    auto task_id = std::strtoll(args["task"].c_str(), nullptr, 10);
    log::info("task {} ({}) from the boot script", task_id, args["kind"]);
    if (args["kind"] != "multicast") {
        std::fprintf(stderr,
                     "shoal agent: task %lld is a %s task; this agent runs multicast "
                     "deploys only\n",
                     static_cast<long long>(task_id), args["kind"].c_str());
        return 2;
    }

    // 3. The task, as the client OS's endpoint gives it (this also marks it taken).
    auto taken = http(server + "/client/task", key, std::nullopt);
    if (!taken || taken->status != 200) {
        std::fprintf(stderr, "shoal agent: GET /client/task failed: %s\n",
                     taken ? fmt::format("HTTP {} {}", taken->status, taken->body).c_str()
                           : taken.err().describe().c_str());
        return 1;
    }

    progress_poster poster(server + "/client/progress", key);
    std::string failure = "no attempt made";
    bool resume = false;
    for (unsigned attempt = 1; attempt <= o.attempts; ++attempt) {
        // 4. Its session: wait until the server has one for it.
        json session;
        auto session_deadline = time::deadline::after_ns(*join_timeout);
        while (true) {
            auto s = http(server + "/client/session", key, std::nullopt);
            if (s && s->status == 200) {
                session = json::parse(s->body, nullptr, false);
                if (session.is_object() && session.contains("group") &&
                    (session["session_state"] == "waiting" ||
                     session["session_state"] == "running")) {
                    break;
                }
            } else if (s && (s->status == 403 || s->status == 409)) {
                std::fprintf(stderr, "shoal agent: task %lld is no longer ours to run: %s\n",
                             static_cast<long long>(task_id), s->body.c_str());
                return 1;
            }
            if (session_deadline.expired()) {
                failure = "no session for the task within the join timeout";
                goto give_up;
            }
            time::sleep_for_ns(time::ns_per_s);
        }
        {
            auto skey = key_from_hex(session.value("key", ""));
            if (!skey) {
                failure = skey.err().describe();
                goto give_up;
            }
            deploy::recv_config rc;
            if (inet_pton(AF_INET, session["group"].get<std::string>().c_str(), &rc.udp.group) !=
                1) {
                failure = "the session's group is not an IPv4 address";
                goto give_up;
            }
            rc.udp.port = session["port"].get<std::uint16_t>();
            rc.udp.interface_name = o.interface_name;
            rc.receiver.receiver_id = static_cast<std::uint32_t>(task_id);
            rc.receiver.key = std::move(*skey);
            rc.receiver.memory_bytes_max = *memory;
            rc.targets = {o.target};
            rc.resume = resume;
            rc.image_name = session.value("image", "");
            rc.join_timeout_ns = *join_timeout;
            std::atomic<bool> cancel{false};
            rc.cancel = &cancel;
            auto started = time::monotonic_ns();
            rc.on_progress = [&](const deploy::recv_progress& p) {
                if (poster.refused()) {
                    cancel = true;
                    return;
                }
                if (p.total_bytes == 0) {
                    return;
                }
                std::uint64_t done =
                    p.chunk_count > 0 ? p.total_bytes * p.chunks_written / p.chunk_count : 0;
                double secs = static_cast<double>(time::monotonic_ns() - started) / 1e9;
                poster.update({{"state", "in_progress"},
                               {"percent", 100.0 * p.chunks_written /
                                               std::max<std::uint32_t>(p.chunk_count, 1)},
                               {"bytes_done", done},
                               {"bytes_total", p.total_bytes},
                               {"rate_Bps", secs > 0 ? static_cast<std::int64_t>(done / secs) : 0},
                               {"message", fmt::format("receiving, {} of {} chunks",
                                                       p.chunks_written, p.chunk_count)}});
            };
            log::info("joining session {} on {}:{} (attempt {}{})", session.value("session_id", 0),
                      session["group"].get<std::string>(), rc.udp.port, attempt,
                      resume ? ", resuming" : "");
            auto r = deploy::run_receiver(rc);
            if (poster.refused()) {
                std::fprintf(stderr, "shoal agent: task %lld was cancelled on the server\n",
                             static_cast<long long>(task_id));
                return 1;
            }
            if (r && r->complete) {
                std::uint64_t bytes = r->stats.bytes_written;
                double secs = r->seconds > 0 ? r->seconds : 1e-9;
                json done = {
                    {"state", "complete"},
                    {"percent", 100.0},
                    {"bytes_done", bytes},
                    {"bytes_total", bytes},
                    {"rate_Bps", static_cast<std::int64_t>(static_cast<double>(bytes) / secs)},
                    {"message", fmt::format("image {} written and verified in {:.1f} s",
                                            r->image_name, r->seconds)}};
                auto posted = post_final(server, key, done);
                if (!posted) {
                    std::fprintf(stderr, "shoal agent: %s\n", posted.err().describe().c_str());
                    return 1;
                }
                std::printf("task %lld complete: %llu bytes written and verified in %.1f s\n",
                            static_cast<long long>(task_id), static_cast<unsigned long long>(bytes),
                            r->seconds);
                return 0;
            }
            failure = r ? (r->failure ? r->failure->describe() : "the session ended incomplete")
                        : r.err().describe();
            bool target_fault = r && r->target_failed;
            log::warn("attempt {}: {}", attempt, failure);
            if (target_fault) {
                break;  // the disk's fault: another attempt would fail the same way
            }
            // The sender fell silent (shoald restarting) or ended early: ask again and
            // rejoin, keeping the chunks already written.
            resume = true;
            time::sleep_for_ns(time::ns_per_s);
        }
    }
give_up : {
    json failed = {{"state", "failed"}, {"message", failure}};
    (void)post_final(server, key, failed);
    std::fprintf(stderr, "shoal agent: task %lld failed: %s\n", static_cast<long long>(task_id),
                 failure.c_str());
    return 1;
}
}

}  // namespace

void add_agent_command(CLI::App& app, command_set& commands) {
    auto opts = std::make_shared<agent_options>();
    auto* sub = app.add_subcommand("agent", "run this PC's multicast deploy task from shoald");
    sub->add_option("--server", opts->server, "shoald's base URL (http://10.77.0.1)")->required();
    sub->add_option("--mac", opts->mac, "this PC's MAC (its key on the server)")->required();
    sub->add_option("--target", opts->target, "disk or image file to write")->required();
    sub->add_option("--interface,-i", opts->interface_name, "network interface");
    sub->add_option("--name", opts->name, "host name to register with");
    sub->add_option("--memory", opts->memory, "receiver's chunk buffers")->capture_default_str();
    sub->add_option("--wait-task", opts->wait_task, "wait this long for a task to appear")
        ->capture_default_str();
    sub->add_option("--join-timeout", opts->join_timeout, "wait this long for the session")
        ->capture_default_str();
    sub->add_option("--attempts", opts->attempts, "receiver runs, resumes included")
        ->capture_default_str();
    commands.add(sub, [opts] { return run_agent(*opts); });
}

}  // namespace shoal::cli
