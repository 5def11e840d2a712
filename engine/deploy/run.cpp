#include "deploy/run.h"

#include <sys/times.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "deploy/image_session.h"
#include "session/writer.h"

namespace shoal::deploy {

namespace {

constexpr std::size_t send_burst = 32;
constexpr std::size_t recv_burst = 64;
constexpr std::size_t write_done_batch = 64;
constexpr std::int64_t progress_interval_ns = time::ns_per_s;

double cpu_seconds() {
    tms t{};
    times(&t);
    return static_cast<double>(t.tms_utime + t.tms_stime) /
           static_cast<double>(sysconf(_SC_CLK_TCK));
}

bool cancelled(const std::atomic<bool>* flag) {
    return flag != nullptr && flag->load(std::memory_order_relaxed);
}

}  // namespace

result<send_summary> run_sender(const session::prepared_session& prepared,
                                const send_config& config) {
    session::sender_config sc = config.sender;
    if (sc.session_id == 0) {
        std::random_device entropy;
        sc.session_id = static_cast<std::uint32_t>(entropy()) | 1u;
    }
    if (config.udp.payload_size_max <= wire::data_header_size) {
        return error(errc::invalid_argument, "payload size too small for a data packet");
    }
    sc.symbol_size =
        static_cast<std::uint16_t>(config.udp.payload_size_max - wire::data_header_size);
    auto sender = session::sender::create(sc, prepared.objects(), prepared.manifest_sha256);
    if (!sender) {
        return sender.err();
    }
    auto io = io::udp_uring::create(config.udp);
    if (!io) {
        return io.err();
    }
    send_summary summary;
    summary.session_id = sc.session_id;
    summary.bytes = prepared.manifest.target_size;
    for (const auto& c : prepared.chunk_wire) {
        summary.wire_bytes += c.size();
    }

    io::packet packets[send_burst];
    const std::int64_t start_ns = time::monotonic_ns();
    std::int64_t next_progress_ns = start_ns + progress_interval_ns;
    const double cpu_start = cpu_seconds();
    while (!(*sender)->finished()) {
        const std::int64_t now = time::monotonic_ns();
        if (!summary.cancelled && cancelled(config.cancel)) {
            // Tell receivers the session is over (a few "done" announces), then return.
            summary.cancelled = true;
            (*sender)->end(now);
            log::info("send: session ended on request; telling receivers ({} announces so far)",
                      (*sender)->stats().announce_packets);
        }
        if ((*sender)->next_send_ns(now) <= now) {
            const std::size_t got = (*io)->alloc_burst(packets, send_burst);
            const std::size_t made = (*sender)->produce(packets, got, now);
            std::size_t sent = 0;
            while (sent < made) {
                auto r = (*io)->send_burst(packets + sent, made - sent);
                if (!r) {
                    (*io)->release_burst(packets + sent, got - sent);
                    return r.err();
                }
                sent += *r;
                if (*r == 0) {
                    time::sleep_for_ns(20'000);  // the socket is full: let it drain
                }
            }
            (*io)->release_burst(packets + made, got - made);
        }
        const std::int64_t wait_ns = std::clamp<std::int64_t>(
            (*sender)->next_send_ns(time::monotonic_ns()) - time::monotonic_ns(), 0, 1'000'000);
        auto n = (*io)->recv_burst(packets, send_burst, wait_ns);
        if (n) {
            const std::int64_t at = time::monotonic_ns();
            for (std::size_t i = 0; i < *n; ++i) {
                (*sender)->on_packet({packets[i].data, packets[i].size},
                                     packets[i].peer.sin_addr.s_addr, at);
            }
            (*io)->release_burst(packets, *n);
        }
        if (now >= next_progress_ns) {
            next_progress_ns = now + progress_interval_ns;
            if (config.on_progress) {
                send_progress p;
                p.elapsed_ns = now - start_ns;
                p.phase = (*sender)->phase();
                p.position = (*sender)->position();
                p.block_count = (*sender)->block_count();
                p.total_bytes = summary.bytes;
                p.rate_bps = (*sender)->rate_bps();
                p.stats = &(*sender)->stats();
                p.receivers = (*sender)->receivers();
                config.on_progress(p);
            }
        }
    }
    summary.cpu_seconds_sending = cpu_seconds() - cpu_start;
    summary.stats = (*sender)->stats();
    const auto end_ns = summary.stats.end_ns != 0 ? summary.stats.end_ns : time::monotonic_ns();
    summary.seconds = summary.stats.start_ns != 0
                          ? static_cast<double>(end_ns - summary.stats.start_ns) / 1e9
                          : 0;
    const auto receivers = (*sender)->receivers();
    summary.receivers.assign(receivers.begin(), receivers.end());
    for (const auto& r : summary.receivers) {
        summary.complete += (r.flags & wire::status_flag_complete) != 0;
    }
    return summary;
}

result<recv_summary> run_receiver(const recv_config& config) {
    if (config.targets.empty()) {
        return error(errc::invalid_argument, "no target to write to");
    }
    session::receiver_config rc = config.receiver;
    rc.payload_size_max = config.udp.payload_size_max;
    auto rx = session::receiver::create(rc);
    if (!rx) {
        return rx.err();
    }
    auto io = io::udp_uring::create(config.udp);
    if (!io) {
        return io.err();
    }
    log::info("recv: receiver {:08x} listening on port {} for a session", (*rx)->id(),
              config.udp.port);

    recv_summary summary;
    summary.id = (*rx)->id();
    io::packet packets[recv_burst];
    std::unique_ptr<session::writer> writer;
    const std::int64_t start_ns = time::monotonic_ns();
    std::int64_t first_data_ns = 0;
    std::int64_t next_progress_ns = start_ns + progress_interval_ns;
    const double cpu_start = cpu_seconds();
    std::vector<session::completed_chunk> waiting;  // complete, not yet taken by the writer
    for (;;) {
        const auto phase = (*rx)->phase();
        if (phase == session::receiver_phase::finished ||
            (phase == session::receiver_phase::failed &&
             (*rx)->next_event_ns(time::monotonic_ns()) == INT64_MAX)) {
            break;
        }
        if (cancelled(config.cancel)) {
            summary.cancelled = true;
            summary.failure = error(errc::cancelled, "cancelled");
            break;
        }
        std::int64_t now = time::monotonic_ns();
        if (phase == session::receiver_phase::waiting_announce &&
            now - start_ns > config.join_timeout_ns) {
            return error::format(errc::timeout, 0,
                                 "no session announced on port {} for {:.0f} s (is the sender "
                                 "running, with the same --key-file, on this interface?)",
                                 config.udp.port,
                                 static_cast<double>(config.join_timeout_ns) / 1e9);
        }
        const std::int64_t wait_ns =
            std::clamp<std::int64_t>((*rx)->next_event_ns(now) - now, 0, 2'000'000);
        auto n = (*io)->recv_burst(packets, recv_burst, waiting.empty() ? wait_ns : 0);
        if (!n) {
            return n.err();
        }
        now = time::monotonic_ns();
        for (std::size_t i = 0; i < *n; ++i) {
            (*rx)->on_packet({packets[i].data, packets[i].size}, now);
        }
        (*io)->release_burst(packets, *n);
        if (first_data_ns == 0 && (*rx)->stats().data_packets > 0) {
            first_data_ns = now;
        }

        // The manifest is in: open the target(s) for it.
        if (!writer && (*rx)->manifest() != nullptr) {
            const auto& m = *(*rx)->manifest();
            summary.session_id = (*rx)->session_id();
            result<std::unique_ptr<session::writer>> w = error(errc::invalid_argument, "");
            if (m.is_image()) {
                auto image = image_of_session(m);
                if (!image) {
                    return image.err();
                }
                summary.image_name = image->name;
                if (!config.image_name.empty() && config.image_name != image->name) {
                    return error::format(errc::invalid_argument, 0,
                                         "the session carries image {}, not {}: nothing written",
                                         image->name, config.image_name);
                }
                log::info("recv: session {:08x} carries image {} ({} disk(s), {} used bytes)",
                          summary.session_id, image->name, image->disks.size(), m.target_size);
                auto placement = open_image_targets(*image, config.targets,
                                                    config.new_file_size_bytes, config.resume);
                if (!placement) {
                    return placement.err();
                }
                w = session::writer::open(std::move(*placement), m, config.throttle_Bps,
                                          config.resume);
            } else {
                if (!config.image_name.empty()) {
                    return error::format(errc::invalid_argument, 0,
                                         "the session carries a plain file, not image {}: nothing "
                                         "written",
                                         config.image_name);
                }
                if (config.targets.size() != 1) {
                    return error::format(errc::invalid_argument, 0,
                                         "the session carries one file: give one target ({} given)",
                                         config.targets.size());
                }
                w = session::writer::open(config.targets[0], m, config.throttle_Bps, config.resume);
            }
            if (!w) {
                return w.err();
            }
            writer = std::move(*w);
        }
        if (writer) {
            session::completed_chunk c;
            while ((*rx)->take_chunk(c)) {
                waiting.push_back(c);
            }
            std::size_t taken = 0;
            while (taken < waiting.size() &&
                   writer->submit(waiting[taken].chunk, waiting[taken].wire)) {
                ++taken;
            }
            waiting.erase(waiting.begin(), waiting.begin() + static_cast<std::ptrdiff_t>(taken));
            session::write_done done[write_done_batch];
            const std::size_t k = writer->collect(done, write_done_batch);
            for (std::size_t i = 0; i < k; ++i) {
                if (done[i].present) {
                    (*rx)->chunk_present(done[i].chunk, done[i].raw_bytes);
                } else {
                    (*rx)->chunk_done(done[i].chunk, done[i].written, done[i].raw_bytes, now);
                }
            }
            if (const error* e = writer->failure()) {
                summary.failure = *e;
                summary.target_failed = true;
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
        if (now >= next_progress_ns) {
            next_progress_ns = now + progress_interval_ns;
            if (config.on_progress) {
                recv_progress p;
                p.elapsed_ns = now - start_ns;
                p.phase = (*rx)->phase();
                p.chunks_written = (*rx)->chunks_written();
                if (const auto* m = (*rx)->manifest()) {
                    p.chunk_count = static_cast<std::uint32_t>(m->chunks.size());
                    p.total_bytes = m->target_size;
                }
                p.stats = &(*rx)->stats();
                config.on_progress(p);
            }
        }
    }
    summary.stats = (*rx)->stats();
    summary.seconds =
        first_data_ns > 0 ? static_cast<double>(time::monotonic_ns() - first_data_ns) / 1e9 : 0;
    summary.cpu_seconds = cpu_seconds() - cpu_start;
    summary.complete = (*rx)->phase() == session::receiver_phase::finished && !summary.failure;
    if (!summary.complete && !summary.failure) {
        summary.failure = (*rx)->phase() == session::receiver_phase::failed
                              ? (*rx)->failure()
                              : error(errc::io, "incomplete");
    }
    return summary;
}

}  // namespace shoal::deploy
