// shoal recv TARGET: join a multicast session and write what it carries to a disk, a
// partition, a file or /dev/null, every chunk checked against its SHA-256 first.
#include <sys/times.h>
#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/clock.h"
#include "common/log.h"
#include "session/receiver.h"
#include "session/writer.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {

struct recv_options {
    transfer_options transfer;
    std::string target;
    std::string memory = "256M";
    std::string timeout = "5s";
    std::string join_timeout = "60s";
    std::string throttle_disk = "0";
    std::string manifest_sha256;
    bool resume = false;
};

double cpu_seconds() {
    tms t{};
    times(&t);
    return static_cast<double>(t.tms_utime + t.tms_stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

result<std::array<std::uint8_t, 32>> parse_sha256(const std::string& hex) {
    std::array<std::uint8_t, 32> out{};
    if (hex.size() != 64) {
        return error(errc::invalid_argument, "--manifest-sha256 takes 64 hex digits");
    }
    for (std::size_t i = 0; i < 32; ++i) {
        unsigned v = 0;
        if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) {
            return error(errc::invalid_argument, "--manifest-sha256 takes 64 hex digits");
        }
        out[i] = static_cast<std::uint8_t>(v);
    }
    return out;
}

int run_recv(const recv_options& o) {
    auto key = o.transfer.key();
    auto udp = o.transfer.udp_config();
    auto memory = parse_size_bytes(o.memory);
    auto timeout = parse_duration_ns(o.timeout);
    auto join_timeout = parse_duration_ns(o.join_timeout);
    auto throttle = parse_size_bytes(o.throttle_disk);
    for (const error* e : {key ? nullptr : &key.err(), udp ? nullptr : &udp.err(),
                           memory ? nullptr : &memory.err(), timeout ? nullptr : &timeout.err(),
                           join_timeout ? nullptr : &join_timeout.err(),
                           throttle ? nullptr : &throttle.err()}) {
        if (e != nullptr) {
            std::fprintf(stderr, "shoal recv: %s\n", e->describe().c_str());
            return 2;
        }
    }
    session::receiver_config rc;
    rc.key = *key;
    rc.memory_bytes_max = *memory;
    rc.sender_timeout_ns = *timeout;
    rc.payload_size_max = udp->payload_size_max;
    if (!o.manifest_sha256.empty()) {
        auto h = parse_sha256(o.manifest_sha256);
        if (!h) {
            std::fprintf(stderr, "shoal recv: %s\n", h.err().describe().c_str());
            return 2;
        }
        rc.manifest_sha256 = *h;
    }
    auto rx = session::receiver::create(rc);
    if (!rx) {
        std::fprintf(stderr, "shoal recv: %s\n", rx.err().describe().c_str());
        return 1;
    }
    auto io = io::udp_uring::create(*udp);
    if (!io) {
        std::fprintf(stderr, "shoal recv: %s\n", io.err().describe().c_str());
        return 1;
    }
    log::info("recv: receiver {:08x} listening on {}:{} for a session", (*rx)->id(), o.transfer.group,
              o.transfer.port);

    constexpr std::size_t burst = 64;
    io::packet packets[burst];
    std::unique_ptr<session::writer> writer;
    const std::int64_t start_ns = time::monotonic_ns();
    std::int64_t first_data_ns = 0;
    std::int64_t next_progress_ns = start_ns + time::ns_per_s;
    const double cpu_start = cpu_seconds();
    std::vector<session::completed_chunk> waiting;  // complete, not yet taken by the writer
    int exit_code = 0;
    for (;;) {
        const auto phase = (*rx)->phase();
        if (phase == session::receiver_phase::finished ||
            (phase == session::receiver_phase::failed &&
             (*rx)->next_event_ns(time::monotonic_ns()) == INT64_MAX)) {
            break;
        }
        std::int64_t now = time::monotonic_ns();
        if (phase == session::receiver_phase::waiting_announce && now - start_ns > *join_timeout) {
            std::fprintf(stderr,
                         "shoal recv: no session announced on %s:%u for %.0f s (is the sender "
                         "running, with the same --key-file, on this interface?)\n",
                         o.transfer.group.c_str(), o.transfer.port,
                         static_cast<double>(*join_timeout) / 1e9);
            return 1;
        }
        const std::int64_t wait_ns =
            std::clamp<std::int64_t>((*rx)->next_event_ns(now) - now, 0, 2'000'000);
        auto n = (*io)->recv_burst(packets, burst, waiting.empty() ? wait_ns : 0);
        if (!n) {
            std::fprintf(stderr, "shoal recv: %s\n", n.err().describe().c_str());
            return 1;
        }
        now = time::monotonic_ns();
        for (std::size_t i = 0; i < *n; ++i) {
            (*rx)->on_packet({packets[i].data, packets[i].size}, now);
        }
        (*io)->release_burst(packets, *n);
        if (first_data_ns == 0 && (*rx)->stats().data_packets > 0) {
            first_data_ns = now;
        }

        // The manifest is in: open the target for its size.
        if (!writer && (*rx)->manifest() != nullptr) {
            auto w = session::writer::open(o.target, *(*rx)->manifest(), static_cast<double>(*throttle),
                                           o.resume);
            if (!w) {
                std::fprintf(stderr, "shoal recv: %s\n", w.err().describe().c_str());
                return 1;
            }
            writer = std::move(*w);
        }
        if (writer) {
            session::completed_chunk c;
            while ((*rx)->take_chunk(c)) {
                waiting.push_back(c);
            }
            while (!waiting.empty() && writer->submit(waiting.front().chunk, waiting.front().wire)) {
                waiting.erase(waiting.begin());
            }
            session::write_done done[64];
            const std::size_t k = writer->collect(done, 64);
            for (std::size_t i = 0; i < k; ++i) {
                if (done[i].present) {
                    (*rx)->chunk_present(done[i].chunk, done[i].raw_bytes);
                } else {
                    (*rx)->chunk_done(done[i].chunk, done[i].written, done[i].raw_bytes, now);
                }
            }
            if (const error* e = writer->failure()) {
                std::fprintf(stderr, "shoal recv: %s: %s\n", o.target.c_str(), e->describe().c_str());
                exit_code = 1;
                break;
            }
        }
        io::packet status;
        if ((*rx)->next_event_ns(now) <= now && (*io)->alloc_burst(&status, 1) == 1) {
            if ((*rx)->produce(&status, 1, now) == 1) {
                auto sent = (*io)->send_burst(&status, 1);
                if (!sent || *sent == 0) {
                    (*io)->release_burst(&status, 1);
                }
            } else {
                (*io)->release_burst(&status, 1);
            }
        }
        if (now >= next_progress_ns && (*rx)->manifest() != nullptr) {
            next_progress_ns = now + time::ns_per_s;
            const auto* m = (*rx)->manifest();
            log::info("recv: {} of {} chunks written ({}), {} packets, {} lost, {} blocks rebuilt",
                      (*rx)->chunks_written(), m->chunks.size(),
                      human_bytes(static_cast<double>((*rx)->stats().bytes_written)),
                      (*rx)->stats().data_packets, (*rx)->stats().lost_packets,
                      (*rx)->stats().blocks_decoded);
        }
    }
    const auto& st = (*rx)->stats();
    const double seconds =
        first_data_ns > 0 ? static_cast<double>(time::monotonic_ns() - first_data_ns) / 1e9 : 0;
    const bool complete = (*rx)->phase() == session::receiver_phase::finished && exit_code == 0;
    if (o.transfer.json) {
        nlohmann::json j = {{"id", fmt::format("{:08x}", (*rx)->id())},
                            {"complete", complete},
                            {"bytes_written", st.bytes_written},
                            {"seconds", seconds},
                            {"rate_Bps", seconds > 0 ? static_cast<double>(st.bytes_written) / seconds : 0},
                            {"data_packets", st.data_packets},
                            {"lost_packets", st.lost_packets},
                            {"blocks_decoded", st.blocks_decoded},
                            {"chunks_rejected", st.chunks_rejected},
                            {"chunks_present", st.chunks_present},
                            {"bytes_present", st.bytes_present},
                            {"statuses_sent", st.statuses_sent},
                            {"cpu_seconds", cpu_seconds() - cpu_start},
                            {"error", complete ? "" : (*rx)->phase() == session::receiver_phase::failed
                                                          ? (*rx)->failure().describe()
                                                          : "incomplete"}};
        std::printf("%s\n", j.dump().c_str());
    }
    if (!complete) {
        if ((*rx)->phase() == session::receiver_phase::failed) {
            std::fprintf(stderr, "shoal recv: FAILED: %s; the target is NOT a complete copy\n",
                         (*rx)->failure().describe().c_str());
        }
        return 1;
    }
    std::fprintf(stderr,
                 "shoal recv: complete: %s written to %s and verified in %.2f s (%s); %llu of %llu "
                 "packets lost, %llu blocks rebuilt by FEC, %llu chunks asked again\n",
                 human_bytes(static_cast<double>(st.bytes_written)).c_str(), o.target.c_str(), seconds,
                 human_rate(seconds > 0 ? static_cast<double>(st.bytes_written) / seconds : 0).c_str(),
                 static_cast<unsigned long long>(st.lost_packets),
                 static_cast<unsigned long long>(st.lost_packets + st.data_packets),
                 static_cast<unsigned long long>(st.blocks_decoded),
                 static_cast<unsigned long long>(st.chunks_rejected));
    if (st.chunks_present > 0) {
        std::fprintf(stderr, "shoal recv: resumed: %u chunks (%s) were already on the target and verified\n",
                     st.chunks_present, human_bytes(static_cast<double>(st.bytes_present)).c_str());
    }
    return 0;
}

}  // namespace

void add_recv_command(CLI::App& app, command_set& commands) {
    auto opts = std::make_shared<recv_options>();
    auto* sub = app.add_subcommand("recv", "join a multicast session and write it to a target");
    sub->add_option("target", opts->target, "disk, partition, file or /dev/null")->required();
    opts->transfer.add_to(*sub);
    sub->add_option("--memory", opts->memory, "chunk buffers, all together")->capture_default_str();
    sub->add_option("--timeout", opts->timeout, "give up when the sender is silent this long")
        ->capture_default_str();
    sub->add_option("--join-timeout", opts->join_timeout, "give up when no session appears")
        ->capture_default_str();
    sub->add_option("--manifest-sha256", opts->manifest_sha256,
                    "accept only the session whose manifest has this hash (from the server)");
    sub->add_option("--throttle-disk", opts->throttle_disk,
                    "write no faster than this many bytes/s (tests of slow receivers)");
    sub->add_flag("--resume", opts->resume,
                  "keep the chunks already on the target whose bytes match the image (after an "
                  "interrupted run); receive only the rest");
    commands.add(sub, [opts] { return run_recv(*opts); });
}

}  // namespace shoal::cli
