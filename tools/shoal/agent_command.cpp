// shoal agent: what the client OS runs once its network is up (docs/agent.md). It reads the
// shoal.* parameters of the kernel command line the iPXE script gave (--cmdline
// /proc/cmdline; flags override them), registers the PC with its inventory, takes its task
// (GET /client/task with the task's key), does it, reports progress about once a second,
// reports complete only once the work is verified (or failed with the reason), and ends
// the way the task says: reboot, power off, or nothing.
//
// Without shoal.task it does what the menu's mode asks (quickreg, fullreg, inventory:
// register and end), or with --wait-task polls /boot?mac= for a task to appear (the way
// tests start it without a kernel command line).
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "agent/client_api.h"
#include "agent/cmdline.h"
#include "agent/disk_choice.h"
#include "agent/disk_test.h"
#include "agent/inventory.h"
#include "agent/remote_image.h"
#include "agent/wipe.h"
#include "commands.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "deploy/run.h"
#include "image/manifest.h"
#include "ipxe/mac.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {

using nlohmann::json;

// Exit codes (docs/agent.md).
constexpr int exit_done = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_no_task = 3;
constexpr int exit_unreachable = 4;
constexpr int exit_debug_shell = 5;

struct agent_options {
    std::string cmdline_file;
    std::string server;  // http://10.77.0.1:8080
    std::string mac;
    std::string task;
    std::string kind;
    std::string key;
    std::string image;
    std::string shutdown;
    std::string disk;
    std::string mode;
    std::string name;
    std::string target;
    std::string interface_name;
    std::string sys_root = "/";
    std::string dev_root = "/dev";
    std::string state_dir = "/run/shoal";  // survives agent runs, not reboots (tmpfs)
    bool no_power = false;
    std::string server_wait = "5m";
    std::string memory = "256M";
    std::string wait_task = "0s";      // poll /boot this long for a task
    std::string join_timeout = "15m";  // for the session to start
    unsigned attempts = 5;             // receiver runs (the first and resumes)
    std::string throttle;              // tests: disk work no faster than this (per second)
    double throttle_Bps = 0;
};

// A line for the person at the console (and the tests): "shoal agent: ...".
void say(const char* format, ...) __attribute__((format(printf, 1, 2)));
void say(const char* format, ...) {
    std::va_list args;
    va_start(args, format);
    std::fputs("shoal agent: ", stdout);
    std::vprintf(format, args);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    va_end(args);
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

// shoal.<name>=<value> arguments from a boot script's kernel line.
std::map<std::string, std::string> script_args(const std::string& script) {
    std::map<std::string, std::string> out;
    std::istringstream lines(script);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("kernel ", 0) == 0) {
            auto args = agent::parse_cmdline(line);
            if (args) {
                out = std::move(*args);
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

// How a task ended, for the final report.
struct outcome {
    bool complete = false;
    bool cancelled = false;
    std::string message;
    std::int64_t bytes = 0;
    double seconds = 0;
};

// What a task's runner gets.
struct task_context {
    task_context(const agent_options& o, agent::client_config c)
        : options(o), client(std::move(c)) {}
    const agent_options& options;
    agent::client_config client;
    std::int64_t task_id = 0;
    std::string kind;
    json task;                         // GET /client/task's answer
    std::string target;                // the disk or file chosen (the first of targets)
    std::vector<std::string> targets;  // an all-disks image: every fixed disk, by name
    bool resume = false;               // the task was in progress before this boot (a power cut)
    agent::progress_reporter* reporter = nullptr;
    std::int64_t join_timeout_ns = 0;
    std::uint64_t memory_bytes = 0;
};

// Progress to shoald and, every 5 s at most, to the console.
class progress_sink {
public:
    explicit progress_sink(agent::progress_reporter& r) : _reporter(r) {}
    void update(double percent, std::int64_t done, std::int64_t total, std::string message) {
        double secs = static_cast<double>(time::monotonic_ns() - _started_ns) / 1e9;
        std::int64_t rate =
            secs > 0 ? static_cast<std::int64_t>(static_cast<double>(done) / secs) : 0;
        _reporter.update({{"state", "in_progress"},
                          {"percent", std::min(percent, 100.0)},
                          {"bytes_done", done},
                          {"bytes_total", total},
                          {"rate_Bps", rate},
                          {"message", message}});
        auto now = time::monotonic_ns();
        if (now - _said_ns >= 5 * time::ns_per_s) {
            _said_ns = now;
            say("progress %.0f%% %s", percent, message.c_str());
        }
    }
    // Progress in bytes; `empty_percent` is what a zero total counts as.
    void update_bytes(std::uint64_t done, std::uint64_t total, std::string message,
                      double empty_percent) {
        update(
            total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : empty_percent,
            static_cast<std::int64_t>(done), static_cast<std::int64_t>(total), std::move(message));
    }

private:
    agent::progress_reporter& _reporter;
    std::int64_t _started_ns = time::monotonic_ns();
    std::int64_t _said_ns = 0;
};

outcome run_multicast(task_context& ctx) {
    agent::client_api api(ctx.client);
    progress_sink sink(*ctx.reporter);
    outcome out;
    out.message = "no attempt made";
    bool resume = ctx.resume;
    for (unsigned attempt = 1; attempt <= ctx.options.attempts; ++attempt) {
        // Its session: wait until the server has one for it.
        json session;
        auto session_deadline = time::deadline::after_ns(ctx.join_timeout_ns);
        while (true) {
            auto s = api.request("/client/session", std::nullopt);
            if (s && s->status == 200) {
                session = json::parse(s->body, nullptr, false);
                if (session.is_object() && session.contains("group") &&
                    (session["session_state"] == "waiting" ||
                     session["session_state"] == "running")) {
                    break;
                }
            } else if (s && (s->status == 403 || s->status == 409)) {
                out.cancelled = true;
                out.message = fmt::format("the task is no longer ours to run: {:.150}", s->body);
                return out;
            } else if (!s) {
                out.message = s.err().describe();
                return out;
            }
            if (session_deadline.expired()) {
                out.message = "no session for the task within the join timeout";
                return out;
            }
            time::sleep_for_ns(time::ns_per_s);
        }
        auto skey = key_from_hex(session.value("key", ""));
        if (!skey) {
            out.message = skey.err().describe();
            return out;
        }
        deploy::recv_config rc;
        if (inet_pton(AF_INET, session["group"].get<std::string>().c_str(), &rc.udp.group) != 1) {
            out.message = "the session's group is not an IPv4 address";
            return out;
        }
        rc.udp.port = session["port"].get<std::uint16_t>();
        rc.udp.interface_name = ctx.options.interface_name;
        rc.receiver.receiver_id = static_cast<std::uint32_t>(ctx.task_id);
        rc.receiver.key = std::move(*skey);
        rc.receiver.memory_bytes_max = ctx.memory_bytes;
        rc.targets = ctx.targets;
        rc.resume = resume;
        rc.image_name = session.value("image", "");
        rc.join_timeout_ns = ctx.join_timeout_ns;
        std::atomic<bool> cancel{false};
        rc.cancel = &cancel;
        rc.on_progress = [&](const deploy::recv_progress& p) {
            if (ctx.reporter->cancelled()) {
                cancel = true;
                return;
            }
            if (p.total_bytes == 0) {
                return;
            }
            std::uint64_t done =
                p.chunk_count > 0 ? p.total_bytes * p.chunks_written / p.chunk_count : 0;
            sink.update(100.0 * p.chunks_written / std::max<std::uint32_t>(p.chunk_count, 1),
                        static_cast<std::int64_t>(done), static_cast<std::int64_t>(p.total_bytes),
                        fmt::format("receiving, {} of {} chunks", p.chunks_written, p.chunk_count));
        };
        log::info("joining session {} on {}:{} (attempt {}{})", session.value("session_id", 0),
                  session["group"].get<std::string>(), rc.udp.port, attempt,
                  resume ? ", resuming" : "");
        auto r = deploy::run_receiver(rc);
        if (ctx.reporter->cancelled()) {
            out.cancelled = true;
            out.message = "cancelled on the server";
            return out;
        }
        if (r && r->complete) {
            out.complete = true;
            out.bytes = static_cast<std::int64_t>(r->stats.bytes_written);
            out.seconds = r->seconds;
            out.message =
                fmt::format("image {} written and verified in {:.1f} s", r->image_name, r->seconds);
            return out;
        }
        out.message = r ? (r->failure ? r->failure->describe() : "the session ended incomplete")
                        : r.err().describe();
        bool target_fault = r && r->target_failed;
        log::warn("attempt {}: {}", attempt, out.message);
        if (target_fault) {
            return out;  // the disk's fault: another attempt would fail the same way
        }
        // The sender fell silent (shoald restarting) or ended early: ask again and rejoin,
        // keeping the chunks already written (checked by hash).
        resume = true;
        time::sleep_for_ns(time::ns_per_s);
    }
    return out;
}

outcome run_wipe(task_context& ctx, agent::wipe_mode mode) {
    progress_sink sink(*ctx.reporter);
    agent::wipe_options o;
    o.mode = mode;
    o.cancel = ctx.reporter->cancel_flag();
    o.on_progress = [&](const agent::wipe_progress& p) {
        sink.update_bytes(
            p.bytes_done, p.bytes_total,
            fmt::format("wiping {}: {} of {}", ctx.target, agent::human_size(p.bytes_done),
                        agent::human_size(p.bytes_total)),
            100.0);
    };
    auto started = time::monotonic_ns();
    auto r = agent::wipe_disk(ctx.target, o);
    outcome out;
    out.seconds = static_cast<double>(time::monotonic_ns() - started) / 1e9;
    if (!r) {
        out.message = r.err().describe();
        return out;
    }
    out.bytes = static_cast<std::int64_t>(r->bytes_written);
    if (r->cancelled) {
        out.cancelled = true;
        out.message =
            fmt::format("cancelled after {} of {} zeroed", agent::human_size(r->bytes_written),
                        agent::human_size(r->disk_size_bytes));
        return out;
    }
    out.complete = true;
    out.message =
        fmt::format("{} wiped ({}): {} of zeros{} in {:.1f} s", ctx.target, ctx.kind,
                    agent::human_size(r->bytes_written),
                    mode == agent::wipe_mode::normal
                        ? fmt::format(", {} partitions' heads and tails", r->partitions_wiped)
                        : "",
                    out.seconds);
    return out;
}

outcome run_disk_test(task_context& ctx) {
    progress_sink sink(*ctx.reporter);
    agent::disk_test_options o;
    o.cancel = ctx.reporter->cancel_flag();
    o.throttle_Bps = ctx.options.throttle_Bps;
    o.on_progress = [&](const agent::disk_test_progress& p) {
        sink.update_bytes(p.bytes_done, p.bytes_total,
                          fmt::format("reading {}: {} of {}, {} unreadable", ctx.target,
                                      agent::human_size(p.bytes_done),
                                      agent::human_size(p.bytes_total), p.bad_bytes),
                          100.0);
    };
    auto started = time::monotonic_ns();
    auto r = agent::test_disk(ctx.target, o);
    outcome out;
    out.seconds = static_cast<double>(time::monotonic_ns() - started) / 1e9;
    if (!r) {
        out.message = r.err().describe();
        return out;
    }
    out.bytes = static_cast<std::int64_t>(r->bytes_read);
    if (r->cancelled) {
        out.cancelled = true;
        out.message = "cancelled";
        return out;
    }
    if (r->bad.empty()) {
        out.complete = true;
        out.message = fmt::format("{}: all {} read without error in {:.1f} s", ctx.target,
                                  agent::human_size(r->disk_size_bytes), out.seconds);
        return out;
    }
    // Unreadable sectors fail the task, so the host stands out in the lists.
    std::string ranges;
    for (std::size_t i = 0; i < r->bad.size() && i < 8; ++i) {
        ranges += fmt::format("{}bytes {}+{}", i ? ", " : "", r->bad[i].offset_bytes,
                              r->bad[i].size_bytes);
    }
    out.message = fmt::format("{}: {} bytes unreadable in {} ranges{} ({}{}); replace the disk",
                              ctx.target, r->bad_bytes, r->bad.size(),
                              r->stopped_at_limit ? " (the test stopped at its limit)" : "", ranges,
                              r->bad.size() > 8 ? ", ..." : "");
    return out;
}

// The image's kind as the store names it, for the engine.
result<image::image_kind> engine_kind(const std::string& store_kind) {
    if (store_kind == "single_disk_resizable") {
        return image::image_kind::single_disk_resizable;
    }
    if (store_kind == "multi_partition_single_disk") {
        return image::image_kind::multi_partition_single_disk;
    }
    if (store_kind == "multi_partition_all_disks") {
        return image::image_kind::multi_partition_all_disks;
    }
    if (store_kind == "raw") {
        return image::image_kind::raw;
    }
    return error::format(errc::invalid_argument, 0,
                         "image kind '{:.40}' is not one this agent knows", store_kind);
}

agent::remote_server image_server(const task_context& ctx) {
    agent::remote_server s;
    s.base_url = ctx.client.server;
    s.task_key = ctx.client.key;
    return s;
}

std::string image_name(const task_context& ctx) {
    if (ctx.task.contains("image") && ctx.task["image"].is_object()) {
        return ctx.task["image"].value("name", ctx.options.image);
    }
    return ctx.options.image;
}

outcome run_capture(task_context& ctx) {
    progress_sink sink(*ctx.reporter);
    outcome out;
    std::string name = image_name(ctx);
    std::string store_kind =
        ctx.task.contains("image") ? ctx.task["image"].value("kind", "") : std::string();
    auto kind = engine_kind(store_kind.empty() ? "single_disk_resizable" : store_kind);
    if (!kind) {
        out.message = kind.err().describe();
        return out;
    }
    agent::remote_capture_options o;
    o.image = name;
    o.kind = *kind;
    o.disks = ctx.targets;
    o.cancel = ctx.reporter->cancel_flag();
    o.on_progress = [&](std::uint64_t done, std::uint64_t total) {
        sink.update_bytes(done, total,
                          fmt::format("capturing {} to {}: {} of {}", ctx.target, name,
                                      agent::human_size(done), agent::human_size(total)),
                          0.0);
    };
    auto started = time::monotonic_ns();
    auto r = agent::capture_to_server(image_server(ctx), o);
    out.seconds = static_cast<double>(time::monotonic_ns() - started) / 1e9;
    if (!r) {
        out.cancelled = r.err().code() == errc::cancelled;
        out.message = r.err().describe();
        return out;
    }
    out.complete = true;
    out.bytes = static_cast<std::int64_t>(r->uploaded_bytes);
    out.message = fmt::format("image {} captured from {} and published: {} uploaded in {:.1f} s",
                              name, ctx.target, agent::human_size(r->uploaded_bytes), out.seconds);
    return out;
}

outcome run_deploy(task_context& ctx) {
    progress_sink sink(*ctx.reporter);
    outcome out;
    std::string name = image_name(ctx);
    agent::remote_deploy_options o;
    o.image = name;
    o.targets = ctx.targets;
    o.resume = ctx.resume;
    o.cancel = ctx.reporter->cancel_flag();
    o.on_progress = [&](std::uint64_t done, std::uint64_t total) {
        sink.update_bytes(done, total,
                          fmt::format("deploying {} to {}: {} of {}", name, ctx.target,
                                      agent::human_size(done), agent::human_size(total)),
                          0.0);
    };
    auto started = time::monotonic_ns();
    auto r = agent::deploy_from_server(image_server(ctx), o);
    out.seconds = static_cast<double>(time::monotonic_ns() - started) / 1e9;
    if (!r) {
        out.cancelled = r.err().code() == errc::cancelled;
        out.message = r.err().describe();
        return out;
    }
    out.complete = true;
    out.bytes = static_cast<std::int64_t>(r->downloaded_bytes);
    out.message = fmt::format("image {} written to {} and verified in {:.1f} s ({} fetched{})",
                              name, ctx.target, out.seconds, agent::human_size(r->downloaded_bytes),
                              ctx.resume ? ", resumed" : "");
    return out;
}

// The final word to shoald, tried for as long as server_wait allows.
status report_final(const agent::client_config& c, const outcome& o) {
    agent::client_api api(c);
    json doc = {{"state", o.complete ? "complete" : "failed"}, {"message", o.message}};
    if (o.complete) {
        doc["percent"] = 100.0;
        doc["bytes_done"] = o.bytes;
        doc["bytes_total"] = o.bytes;
        doc["rate_Bps"] =
            o.seconds > 0 ? static_cast<std::int64_t>(static_cast<double>(o.bytes) / o.seconds) : 0;
    }
    auto r = api.progress(doc);
    if (!r) {
        return r.err();
    }
    return ok();
}

// The end of every run that had a task or a mode: what the task's shutdown says.
int finish(const agent_options& o, const std::string& shutdown, int code) {
    if (shutdown == "none" || shutdown.empty()) {
        say("leaving the PC on");
        return code;
    }
    bool reboot = shutdown != "poweroff";
    // Only the client OS (--cmdline) powers the machine: a run on a workstation or in a
    // test must never reboot it.
    if (o.no_power || o.cmdline_file.empty()) {
        say("leaving the PC on (--no-power: would %s)", reboot ? "reboot" : "power off");
        return code;
    }
    say("%s", reboot ? "rebooting" : "powering off");
    ::sync();
    ::reboot(reboot ? RB_AUTOBOOT : RB_POWER_OFF);
    say("reboot(2) failed: %s", std::strerror(errno));
    return code;
}

// What the last run could not tell shoald, kept for the next run to put on the host's
// record (the agent may be run again by /init after exit 4, when shoald is back).
std::string unreachable_note_path(const agent_options& o) { return o.state_dir + "/unreachable"; }

void say_unreachable(const agent_options& o, const agent::client_config& c, std::uint32_t attempts,
                     const error& e) {
    std::string note = fmt::format(
        "shoald at {} was unreachable after {} tries over {:.0f} s "
        "(at {} s since boot): {}",
        c.server, attempts, static_cast<double>(c.server_wait_ns) / 1e9,
        time::monotonic_ns() / time::ns_per_s, e.describe());
    ::mkdir(o.state_dir.c_str(), 0700);
    if (FILE* f = std::fopen(unreachable_note_path(o).c_str(), "w")) {
        std::fputs(note.c_str(), f);
        std::fclose(f);
    }
    say("cannot reach shoald at %s after %u tries over %.0f s: %s; check the server and the "
        "network, then reboot this PC",
        c.server.c_str(), attempts, static_cast<double>(c.server_wait_ns) / 1e9,
        e.describe().c_str());
}

// Fills each option not given on the command line from the kernel's shoal.* parameters.
status merge_cmdline(agent_options& o, const std::map<std::string, std::string>& params) {
    std::pair<std::string*, const char*> fields[] = {{&o.server, "server"},
                                                     {&o.mac, "mac"},
                                                     {&o.task, "task"},
                                                     {&o.kind, "kind"},
                                                     {&o.key, "key"},
                                                     {&o.image, "image"},
                                                     {&o.shutdown, "shutdown"},
                                                     {&o.disk, "disk"},
                                                     {&o.mode, "mode"},
                                                     {&o.name, "name"},
                                                     {&o.interface_name, "interface"}};
    for (auto& [field, name] : fields) {
        if (field->empty()) {
            if (auto it = params.find(name); it != params.end()) {
                *field = it->second;
            }
        }
    }
    return ok();
}

int run_agent(agent_options o) {
    if (!o.cmdline_file.empty()) {
        // Read until the end, not by the file's size: /proc/cmdline stats as 0 bytes.
        std::FILE* f = std::fopen(o.cmdline_file.c_str(), "rb");
        if (f == nullptr) {
            say("cannot read %s: %s", o.cmdline_file.c_str(), std::strerror(errno));
            return exit_usage;
        }
        std::string text(agent::cmdline_bytes_max + 1, '\0');
        std::size_t got = std::fread(text.data(), 1, text.size(), f);
        std::fclose(f);
        text.resize(got);
        auto params = agent::parse_cmdline(text);
        if (!params) {
            say("%s", params.err().describe().c_str());
            return exit_usage;
        }
        (void)merge_cmdline(o, *params);
    }
    if (o.server.empty() || o.mac.empty()) {
        say("no shoald to ask: shoal.server= and shoal.mac= (or --server and --mac) are "
            "required; the boot script passes them");
        return exit_usage;
    }
    auto mac = ipxe::parse_mac(o.mac);
    auto memory = parse_size_bytes(o.memory);
    auto wait_task = parse_duration_ns(o.wait_task);
    auto join_timeout = parse_duration_ns(o.join_timeout);
    auto server_wait = parse_duration_ns(o.server_wait);
    for (const error* e :
         {mac ? nullptr : &mac.err(), memory ? nullptr : &memory.err(),
          wait_task ? nullptr : &wait_task.err(), join_timeout ? nullptr : &join_timeout.err(),
          server_wait ? nullptr : &server_wait.err()}) {
        if (e != nullptr) {
            say("%s", e->describe().c_str());
            return exit_usage;
        }
    }
    if (!o.throttle.empty()) {
        auto t = parse_size_bytes(o.throttle);
        if (!t) {
            say("--throttle: %s", t.err().describe().c_str());
            return exit_usage;
        }
        o.throttle_Bps = static_cast<double>(*t);
    }
    if (auto st = agent::validate_disk_rule(o.disk); !st) {
        say("%s", st.err().describe().c_str());
        return exit_usage;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const std::string mac_text = mac->to_string();
    agent::client_config client;
    client.server = o.server;
    client.server_wait_ns = *server_wait;

    // 1. Quick registration, with the inventory.
    auto inv = agent::read_inventory(o.sys_root, o.dev_root);
    json inventory = inv ? agent::to_json(*inv) : json::object();
    if (!inv) {
        log::warn("inventory: {}", inv.err().describe());
    }
    if (auto cidr = interface_cidr(o.interface_name); !cidr.empty()) {
        // The address shoald wakes the PC through; on the NIC that has the MAC if listed.
        bool placed = false;
        for (auto& n : inventory["nics"]) {
            if (n.value("mac", "") == mac_text) {
                n["ipv4"] = cidr;
                placed = true;
            }
        }
        if (!placed) {
            inventory["nics"].push_back({{"mac", mac_text}, {"ipv4", cidr}});
        }
    } else if (!inventory.contains("nics")) {
        inventory["nics"] = json::array({{{"mac", mac_text}}});
    }
    std::string note_path = unreachable_note_path(o);
    if (auto note = read_file(note_path, 4096)) {
        inventory["agent"] = {
            {"note", std::string(reinterpret_cast<const char*>(note->data()), note->size())}};
    }
    agent::client_api reg(client);
    auto registered = reg.register_host(mac_text, o.name, inventory);
    if (!registered) {
        if (registered.err().code() == errc::peer_gone) {
            say_unreachable(o, client, reg.attempts(), registered.err());
            return exit_unreachable;
        }
        say("registration at %s failed: %s", o.server.c_str(), registered.err().describe().c_str());
        return exit_failed;
    }
    if (inventory.contains("agent")) {
        ::unlink(note_path.c_str());  // on the host's record now
    }
    say("registered %s as %s (host %lld)", mac_text.c_str(), registered->value("name", "?").c_str(),
        static_cast<long long>(registered->value("id", std::int64_t{0})));

    // 2. The task: from the kernel command line, or polled from the boot script.
    if (o.task.empty() || o.key.empty()) {
        if (o.mode == "quickreg" || o.mode == "fullreg" || o.mode == "inventory") {
            say("no task for %s; registered with its inventory (%s)", mac_text.c_str(),
                o.mode.c_str());
            return finish(o, o.shutdown.empty() ? "reboot" : o.shutdown, exit_done);
        }
        auto task_deadline = time::deadline::after_ns(*wait_task);
        agent::client_api boot(client);
        while (true) {
            auto script = boot.request("/boot?mac=" + mac_text, std::nullopt);
            if (script && script->status == 200) {
                auto args = script_args(script->body);
                if (args.count("task") != 0 && args.count("key") != 0) {
                    (void)merge_cmdline(o, args);
                    break;
                }
            }
            if (task_deadline.expired()) {
                say("no task for %s at %s (the boot script is the menu); create one and run "
                    "again",
                    mac_text.c_str(), o.server.c_str());
                return exit_no_task;
            }
            time::sleep_for_ns(time::ns_per_s);
        }
    }
    client.key = o.key;
    char* end = nullptr;
    std::int64_t task_id = std::strtoll(o.task.c_str(), &end, 10);
    if (end == o.task.c_str() || *end != '\0' || task_id <= 0) {
        say("shoal.task=%s is not a task id", o.task.c_str());
        return exit_usage;
    }
    agent::client_api api(client);
    auto taken = api.task();
    if (!taken) {
        if (taken.err().code() == errc::peer_gone) {
            say_unreachable(o, client, api.attempts(), taken.err());
            return exit_unreachable;
        }
        say("task %lld failed: %s", static_cast<long long>(task_id),
            taken.err().describe().c_str());
        return finish(o, "none", exit_failed);
    }
    const json& t = (*taken)["task"];
    std::string kind = t.value("kind", o.kind);
    if (!o.kind.empty() && kind != o.kind) {
        log::warn("the kernel line says a {} task, shoald a {} task: shoald's is done", o.kind,
                  kind);
    }
    std::string shutdown = t.value("shutdown", o.shutdown.empty() ? "reboot" : o.shutdown);
    if (t.value("id", std::int64_t{0}) != task_id) {
        say("task %lld failed: the key belongs to task %lld", static_cast<long long>(task_id),
            static_cast<long long>(t.value("id", std::int64_t{0})));
        return finish(o, "none", exit_failed);
    }

    task_context ctx(o, client);
    ctx.task_id = task_id;
    ctx.kind = kind;
    ctx.task = *taken;
    ctx.resume = t.value("state", "") == "in_progress";
    ctx.join_timeout_ns = *join_timeout;
    ctx.memory_bytes = *memory;

    if (kind == "debug") {
        outcome d{true, false, "debug shell opened on the console", 0, 0};
        (void)report_final(client, d);
        say("task %lld complete: %s", static_cast<long long>(task_id), d.message.c_str());
        return exit_debug_shell;
    }

    // 3. The disk, for the kinds that touch one: --target, else the rule, else auto. An
    // image of every disk goes to (or comes from) every fixed disk, in name order.
    const bool all_disks = taken->contains("image") && (*taken)["image"].is_object() &&
                           (*taken)["image"].value("kind", "") == "multi_partition_all_disks";
    std::vector<agent::disk_info> disks = inv ? inv->disks : std::vector<agent::disk_info>{};
    auto refuse_disk = [&](const error& e) {
        say("disk choice: %s; candidates: %s", e.describe().c_str(),
            agent::candidates(disks).c_str());
        outcome f;
        f.message = e.describe();
        (void)report_final(client, f);
        say("task %lld failed: %s", static_cast<long long>(task_id), f.message.c_str());
        return finish(o, shutdown == "reboot" ? "none" : shutdown, exit_failed);
    };
    if (kind != "inventory") {
        if (!o.target.empty()) {
            ctx.targets = {o.target};
        } else if (all_disks && (kind == "capture" || kind == "deploy" || kind == "multicast")) {
            for (const auto& d : disks) {
                if (!d.removable && !d.read_only && d.size_bytes > 0) {
                    ctx.targets.push_back(d.dev_path);
                }
            }
            if (ctx.targets.empty()) {
                return refuse_disk(error(errc::not_found,
                                         "an image of every disk, and this PC has no fixed disk"));
            }
        } else {
            std::string rule = o.disk.empty() ? t.value("disk", "auto") : o.disk;
            auto d = agent::choose_disk(disks, rule);
            if (!d) {
                return refuse_disk(d.err());
            }
            ctx.targets = {d->dev_path};
            log::info("disk: {}", agent::describe(*d));
        }
        ctx.target = ctx.targets.front();
    }
    say("task %lld %s started on %s%s", static_cast<long long>(task_id), kind.c_str(),
        ctx.target.empty() ? "-" : ctx.target.c_str(), ctx.resume ? " (resuming)" : "");

    agent::progress_reporter reporter(client);
    ctx.reporter = &reporter;
    if (kind != "multicast") {
        // In progress from now: a power cut leaves it so, and the next boot resumes. (A
        // multicast task's state is the session runner's: active when the PC asks for its
        // session, in progress once the sender hears it.)
        agent::client_api first(client);
        auto r = first.progress(
            {{"state", "in_progress"}, {"message", fmt::format("{} started", kind)}});
        if (!r && r.err().code() == errc::cancelled) {
            say("task %lld was cancelled on the server", static_cast<long long>(task_id));
            return finish(o, "none", exit_failed);
        }
    }
    outcome result;
    if (kind == "multicast") {
        result = run_multicast(ctx);
    } else if (kind == "capture") {
        result = run_capture(ctx);
    } else if (kind == "deploy") {
        result = run_deploy(ctx);
    } else if (kind == "wipe_fast") {
        result = run_wipe(ctx, agent::wipe_mode::fast);
    } else if (kind == "wipe_normal") {
        result = run_wipe(ctx, agent::wipe_mode::normal);
    } else if (kind == "wipe_full") {
        result = run_wipe(ctx, agent::wipe_mode::full);
    } else if (kind == "disk_test") {
        result = run_disk_test(ctx);
    } else if (kind == "inventory") {
        result.complete = true;
        result.message =
            fmt::format("inventory sent: {} CPUs, {} of memory, {} disks, {} NICs",
                        inv ? inv->cpu_count : 0, agent::human_size(inv ? inv->memory_bytes : 0),
                        inv ? inv->disks.size() : 0, inv ? inv->nics.size() : 0);
    } else {
        result.message = fmt::format("this agent cannot run {} tasks yet", kind);
    }
    if (result.cancelled || reporter.cancelled()) {
        say("task %lld was cancelled on the server", static_cast<long long>(task_id));
        return finish(o, "none", exit_failed);
    }
    auto posted = report_final(client, result);
    if (!posted) {
        if (posted.err().code() == errc::peer_gone) {
            say_unreachable(o, client, 0, posted.err());
            return exit_unreachable;
        }
        if (posted.err().code() == errc::cancelled) {
            say("task %lld was cancelled on the server", static_cast<long long>(task_id));
            return finish(o, "none", exit_failed);
        }
        say("the final report failed: %s", posted.err().describe().c_str());
    }
    if (result.complete) {
        say("task %lld complete: %s", static_cast<long long>(task_id), result.message.c_str());
        return finish(o, shutdown, exit_done);
    }
    say("task %lld failed: %s", static_cast<long long>(task_id), result.message.c_str());
    // A failed task leaves the PC on with its message on the screen, unless told to power off.
    return finish(o, shutdown == "poweroff" ? shutdown : "none", exit_failed);
}

}  // namespace

void add_agent_command(CLI::App& app, command_set& commands) {
    auto opts = std::make_shared<agent_options>();
    auto* sub = app.add_subcommand(
        "agent",
        "the client OS's agent: register this PC, run its task from shoald (docs/agent.md)");
    sub->add_option("--cmdline", opts->cmdline_file,
                    "read shoal.* parameters from this file (/proc/cmdline)");
    sub->add_option("--server", opts->server, "shoald's base URL (http://10.77.0.1)");
    sub->add_option("--mac", opts->mac, "this PC's MAC (its key on the server)");
    sub->add_option("--task", opts->task, "the task id (shoal.task)");
    sub->add_option("--kind", opts->kind, "the task's kind (shoal.kind)");
    sub->add_option("--key", opts->key, "the task's key (shoal.key)");
    sub->add_option("--image", opts->image, "the task's image (shoal.image)");
    sub->add_option("--shutdown", opts->shutdown, "none, reboot or poweroff at the end");
    sub->add_option("--disk", opts->disk,
                    "disk rule: auto, nvme, sata, virtio, scsi, usb, mmc, largest, smallest, "
                    "serial:X, /dev/X");
    sub->add_option("--mode", opts->mode, "without a task: quickreg, fullreg, inventory");
    sub->add_option("--target", opts->target, "write or read this disk or file (no choice)");
    sub->add_option("--interface,-i", opts->interface_name, "network interface");
    sub->add_option("--name", opts->name, "host name to register with");
    sub->add_option("--sys-root", opts->sys_root, "read sys/ and proc/ under this directory")
        ->capture_default_str();
    sub->add_option("--dev-root", opts->dev_root, "disks' device nodes are here")
        ->capture_default_str();
    sub->add_option("--state-dir", opts->state_dir,
                    "notes kept between runs (shoald unreachable) for the host's record")
        ->capture_default_str();
    sub->add_flag("--no-power", opts->no_power, "never reboot or power off (tests)");
    sub->add_option("--server-wait", opts->server_wait,
                    "retry an unreachable shoald this long, then give up")
        ->capture_default_str();
    sub->add_option("--memory", opts->memory, "receiver's chunk buffers")->capture_default_str();
    sub->add_option("--wait-task", opts->wait_task,
                    "without shoal.task: poll /boot this long for a task")
        ->capture_default_str();
    sub->add_option("--join-timeout", opts->join_timeout, "wait this long for the session")
        ->capture_default_str();
    sub->add_option("--attempts", opts->attempts, "receiver runs, resumes included")
        ->capture_default_str();
    sub->add_option("--throttle", opts->throttle,
                    "tests: read disks for a disk test no faster than this per second (4M)");
    commands.add(sub, [opts] { return run_agent(*opts); });
}

}  // namespace shoal::cli
