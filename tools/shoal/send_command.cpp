// shoal send FILE | --image NAME: stream a file (a disk, anything) or an image from the
// chunk store to a multicast group. The loop itself is deploy::run_sender.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/times.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <algorithm>
#include <random>
#include <unordered_map>
#include <vector>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/clock.h"
#include "common/log.h"
#include "deploy/image_session.h"
#include "deploy/run.h"
#include "image/store.h"
#include "session/chunks.h"
#include "session/sender.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {

// SIGINT/SIGTERM end the session cleanly: receivers are told it is over.
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

struct send_options {
    transfer_options transfer;
    std::string file;
    std::string rate = "900M";
    bool adaptive = false;
    std::uint32_t receivers_min = 0;
    std::string wait;  // default: 60s with --receivers, else 3s
    std::string chunk_size = "4M";
    int level = 3;
    unsigned k = 64;
    std::string floor = "0";
    std::string slow_policy = "catch-up";
    std::string idle_timeout = "5s";
    std::string image;  // from the store instead of a file
    std::string store;
};

double cpu_seconds() {
    tms t{};
    times(&t);
    return static_cast<double>(t.tms_utime + t.tms_stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string address_text(std::uint32_t address) {
    char text[INET_ADDRSTRLEN] = "?";
    in_addr a{address};
    inet_ntop(AF_INET, &a, text, sizeof text);
    return text;
}

int run_send(const send_options& o) {
    auto key = o.transfer.key();
    auto udp = o.transfer.udp_config();
    auto rate = parse_rate_bps(o.rate);
    // Without a count, gather for a moment so receivers already listening are not late
    // joiners; with one, wait long enough for a room of PCs to boot.
    auto wait = parse_duration_ns(!o.wait.empty() ? o.wait : o.receivers_min > 0 ? "60s" : "3s");
    auto chunk = parse_size_bytes(o.chunk_size);
    auto floor = parse_rate_bps(o.floor == "0" ? "100k" : o.floor);
    auto idle = parse_duration_ns(o.idle_timeout);
    for (const error* e : {key ? nullptr : &key.err(), udp ? nullptr : &udp.err(),
                           rate ? nullptr : &rate.err(), wait ? nullptr : &wait.err(),
                           chunk ? nullptr : &chunk.err(), floor ? nullptr : &floor.err(),
                           idle ? nullptr : &idle.err()}) {
        if (e != nullptr) {
            std::fprintf(stderr, "shoal send: %s\n", e->describe().c_str());
            return 2;
        }
    }
    if (o.slow_policy != "catch-up" && o.slow_policy != "fall-back") {
        std::fprintf(stderr, "shoal send: --slow-policy is catch-up or fall-back\n");
        return 2;
    }
    if (o.file.empty() == o.image.empty()) {
        std::fprintf(stderr, "shoal send: give a FILE to send, or --image NAME from the store (not both)\n");
        return 2;
    }

    const double cpu_start = cpu_seconds();
    const std::int64_t prepare_start = time::monotonic_ns();
    session::prepared_session prepared;
    void* map = MAP_FAILED;
    std::size_t size = 0;
    struct unmap_at_exit {
        void*& p;
        std::size_t& n;
        ~unmap_at_exit() {
            if (p != MAP_FAILED) {
                munmap(p, n);
            }
        }
    } unmap{map, size};
    if (!o.image.empty()) {
        // The store's chunks as they are: no recompression.
        const std::string store_path = o.store.empty() ? image::default_store_path() : o.store;
        auto store = image::chunk_store::open(store_path, false);
        if (!store) {
            std::fprintf(stderr, "shoal send: store %s: %s\n", store_path.c_str(), store.err().describe().c_str());
            return 1;
        }
        auto p = deploy::prepare_image_session(**store, o.image);
        if (!p) {
            std::fprintf(stderr, "shoal send: %s\n", p.err().describe().c_str());
            return 1;
        }
        prepared = std::move(*p);
        size = prepared.manifest.target_size;
    } else {
        const int fd = ::open(o.file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            std::fprintf(stderr, "shoal send: cannot open %s: %s\n", o.file.c_str(), std::strerror(errno));
            return 1;
        }
        struct stat st{};
        fstat(fd, &st);
        const auto file_size = static_cast<std::size_t>(st.st_size);
        if (file_size == 0) {
            close(fd);
            std::fprintf(stderr, "shoal send: %s is empty: nothing to send\n", o.file.c_str());
            return 1;
        }
        map = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED) {
            std::fprintf(stderr, "shoal send: cannot map %s: %s\n", o.file.c_str(), std::strerror(errno));
            return 1;
        }
        size = file_size;
        // Raw chunks are sent from the mapping itself: it stays mapped until we return.
        auto p = session::prepare_session({static_cast<const std::byte*>(map), size}, *chunk,
                                          o.level, std::thread::hardware_concurrency());
        if (!p) {
            std::fprintf(stderr, "shoal send: %s\n", p.err().describe().c_str());
            return 1;
        }
        prepared = std::move(*p);
    }
    std::uint64_t wire_bytes = 0;
    for (const auto& c : prepared.chunk_wire) {
        wire_bytes += c.size();
    }
    log::info("send: {} in {} chunks, {} on the wire ({}), prepared in {:.2f} s",
              human_bytes(static_cast<double>(size)), prepared.chunk_wire.size(),
              human_bytes(static_cast<double>(wire_bytes)),
              o.image.empty() ? fmt::format("zstd level {}", o.level) : "image " + o.image + " as stored",
              static_cast<double>(time::monotonic_ns() - prepare_start) / 1e9);

    deploy::send_config config;
    config.udp = *udp;
    session::sender_config& sc = config.sender;
    std::random_device entropy;
    sc.session_id = static_cast<std::uint32_t>(entropy()) | 1u;
    sc.key = *key;
    sc.k_max = static_cast<std::uint8_t>(o.k);
    sc.rate_bps = *rate;
    sc.adaptive_rate = o.adaptive;
    sc.receivers_min = o.receivers_min;
    sc.wait_max_ns = *wait;
    sc.idle_timeout_ns = *idle;
    sc.rate_floor_kBps = o.floor == "0" ? 0 : static_cast<std::uint32_t>(*floor / 8 / 1000);
    sc.slow_policy = o.slow_policy == "fall-back" ? session::slow_receiver_policy::fall_back
                                                  : session::slow_receiver_policy::catch_up;
    log::info("send: session {:08x} to {}:{} at {} Mbit/s{}; waiting for {} receiver(s), at most {} s",
              sc.session_id, o.transfer.group, o.transfer.port, sc.rate_bps / 1'000'000,
              o.adaptive ? " (adaptive)" : "", sc.receivers_min,
              static_cast<double>(sc.wait_max_ns) / 1e9);
    std::unordered_map<std::uint32_t, std::uint64_t> last_bytes;  // per receiver, a second ago
    config.on_progress = [&](const deploy::send_progress& p) {
        std::size_t complete = 0;
        for (const auto& r : p.receivers) {
            complete += (r.flags & wire::status_flag_complete) != 0;
        }
        log::info("send: block {}/{} ({:.0f}%), {} receiver(s), {} complete, {} repairs sent",
                  p.position, p.block_count, 100.0 * p.position / std::max<std::uint32_t>(1, p.block_count),
                  p.receivers.size(), complete, p.stats->repair_packets);
        // One line per receiver, the slowest first, at most 16.
        std::vector<const session::receiver_report*> order;
        for (const auto& r : p.receivers) {
            order.push_back(&r);
        }
        std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->bytes_written < b->bytes_written; });
        for (std::size_t i = 0; i < order.size() && i < 16; ++i) {
            const auto& r = *order[i];
            const std::uint64_t before = last_bytes[r.id];
            last_bytes[r.id] = r.bytes_written;
            log::info("  {:08x} {:<15} {:5.1f}%  {:>9}  {:>11}  loss {:.2f}%{}{}", r.id,
                      address_text(r.address), 100.0 * static_cast<double>(r.bytes_written) / static_cast<double>(size),
                      human_bytes(static_cast<double>(r.bytes_written)),
                      human_rate(static_cast<double>(r.bytes_written - std::min(before, r.bytes_written))),
                      r.loss_ppm / 1e4, (r.flags & wire::status_flag_lagging) ? "  lagging" : "",
                      (r.flags & wire::status_flag_complete) ? "  complete" : "");
        }
    };
    config.cancel = &interrupted;
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    auto run = deploy::run_sender(prepared, config);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (run && run->cancelled) {
        std::fprintf(stderr, "shoal send: interrupted: the session was ended, receivers were told\n");
    }
    if (!run) {
        std::fprintf(stderr, "shoal send: %s\n", run.err().describe().c_str());
        return 1;
    }
    const auto& stats = run->stats;
    const double seconds = run->seconds;
    const double cpu_total = cpu_seconds() - cpu_start;
    const double cpu_send = run->cpu_seconds_sending;
    const std::size_t complete = run->complete;
    nlohmann::json receivers = nlohmann::json::array();
    for (const auto& r : run->receivers) {
        const bool done = (r.flags & wire::status_flag_complete) != 0;
        const double t = done ? static_cast<double>(r.complete_ns - stats.start_ns) / 1e9 : 0;
        receivers.push_back({{"id", fmt::format("{:08x}", r.id)},
                             {"address", address_text(r.address)},
                             {"complete", done},
                             {"failed", (r.flags & wire::status_flag_failed) != 0},
                             {"told_slow", r.told_slow},
                             {"bytes_written", r.bytes_written},
                             {"seconds", t},
                             {"rate_Bps", t > 0 ? static_cast<double>(r.bytes_written) / t : 0},
                             {"loss_ppm", r.loss_ppm},
                             {"blocks_asked", r.blocks_asked}});
    }
    if (o.transfer.json) {
        nlohmann::json j = {{"bytes", size},
                            {"wire_bytes", wire_bytes},
                            {"seconds", seconds},
                            {"rate_Bps", seconds > 0 ? static_cast<double>(size) / seconds : 0},
                            {"source_packets", stats.source_packets},
                            {"proactive_packets", stats.proactive_packets},
                            {"repair_packets", stats.repair_packets},
                            {"statuses_received", stats.statuses_received},
                            {"cpu_seconds", cpu_total},
                            {"cpu_seconds_sending", cpu_send},
                            {"receivers", receivers}};
        if (!o.image.empty()) {
            j["image"] = o.image;
        }
        std::printf("%s\n", j.dump().c_str());
    }
    std::fprintf(stderr,
                 "shoal send: %s in %.2f s (%s), %zu of %zu receiver(s) complete; %llu source, "
                 "%llu proactive, %llu repair packets; cpu %.2f s\n",
                 human_bytes(static_cast<double>(size)).c_str(), seconds,
                 human_rate(seconds > 0 ? static_cast<double>(size) / seconds : 0).c_str(), complete,
                 run->receivers.size(), static_cast<unsigned long long>(stats.source_packets),
                 static_cast<unsigned long long>(stats.proactive_packets),
                 static_cast<unsigned long long>(stats.repair_packets), cpu_total);
    for (const auto& r : receivers) {
        std::fprintf(stderr, "  %s %-15s %-9s %10s in %6.2f s  loss %.2f%%%s\n",
                     r["id"].get<std::string>().c_str(), r["address"].get<std::string>().c_str(),
                     r["complete"].get<bool>() ? "complete" : (r["failed"].get<bool>() ? "FAILED" : "incomplete"),
                     human_bytes(r["bytes_written"].get<double>()).c_str(), r["seconds"].get<double>(),
                     r["loss_ppm"].get<double>() / 1e4, r["told_slow"].get<bool>() ? "  (below floor)" : "");
    }
    return complete == run->receivers.size() && complete >= o.receivers_min ? 0 : 1;
}

}  // namespace

void add_send_command(CLI::App& app, command_set& commands) {
    auto opts = std::make_shared<send_options>();
    auto* sub = app.add_subcommand("send", "stream a file or image to a multicast group");
    sub->add_option("file", opts->file, "what to send (image file, disk, any file)");
    sub->add_option("--image", opts->image,
                    "send this image from the chunk store as stored (receivers write it as "
                    "`shoal image restore` would)");
    sub->add_option("--store", opts->store,
                    "the chunk store (default: $SHOAL_STORE, else /var/lib/shoal/images)");
    opts->transfer.add_to(*sub);
    sub->add_option("--rate", opts->rate, "pace, IP-layer bits/s (950M, 1G)")->capture_default_str();
    sub->add_flag("--adaptive", opts->adaptive, "lower or raise the rate with receivers' loss");
    sub->add_option("--receivers,-n", opts->receivers_min, "start when this many receivers joined")
        ->capture_default_str();
    sub->add_option("--wait", opts->wait,
                    "...or after this long (10s, 2m; default 60s with --receivers, else 3s)");
    sub->add_option("--chunk-size", opts->chunk_size, "bytes per chunk before compression")
        ->capture_default_str();
    sub->add_option("--level", opts->level, "zstd level (0: send raw)")->capture_default_str();
    sub->add_option("--k", opts->k, "source symbols per FEC block (1..128)")
        ->check(CLI::Range(1, 128))->capture_default_str();
    sub->add_option("--floor", opts->floor,
                    "receivers whose disk drains below this rate (bits/s) stop setting the pace")
        ->capture_default_str();
    sub->add_option("--slow-policy", opts->slow_policy,
                    "what receivers below the floor are told: catch-up or fall-back (to unicast)")
        ->capture_default_str();
    sub->add_option("--idle-timeout", opts->idle_timeout,
                    "end the catch-up pass when no receiver has spoken for this long")
        ->capture_default_str();
    commands.add(sub, [opts] { return run_send(*opts); });
}

}  // namespace shoal::cli
