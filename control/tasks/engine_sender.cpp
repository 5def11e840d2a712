#include "tasks/engine_sender.h"

#include <arpa/inet.h>

#include "common/clock.h"
#include "common/log.h"
#include "deploy/image_session.h"
#include "deploy/run.h"
#include "image/store.h"
#include "wire/wire.h"

namespace shoal::control::tasks {

namespace {
// With every known receiver complete the sender ends at once; this is how long the
// catch-up pass waits when none has spoken (a PC rebooting its receiver, say).
constexpr std::int64_t idle_timeout_ns = 15 * time::ns_per_s;
}  // namespace

result<sender_outcome> engine_sender::run(const sender_run& run) {
    auto store = image::chunk_store::open(_config.image_store, false);
    if (!store) {
        return error::format(store.err().code(), store.err().sys_errno(), "image store {}: {}",
                             _config.image_store, store.err().context());
    }
    auto prepared = deploy::prepare_image_session(**store, run.image_name);
    if (!prepared) {
        return prepared.err();
    }
    deploy::send_config sc;
    if (inet_pton(AF_INET, run.group.c_str(), &sc.udp.group) != 1) {
        return error::format(errc::invalid_argument, 0, "session group \"{:.60}\" is not IPv4",
                             run.group);
    }
    sc.udp.port = run.port;
    sc.udp.interface_name = _config.interface_name;
    sc.udp.interface_address = _config.interface_address;
    sc.udp.ttl = _config.ttl;
    sc.sender.session_id = 0;
    sc.sender.key = run.key;
    sc.sender.rate_bps = run.rate_bps;
    sc.sender.receivers_min = run.receivers_min;
    sc.sender.wait_max_ns = run.wait_max_ns;
    sc.sender.idle_timeout_ns = idle_timeout_ns;
    sc.cancel = run.cancel;
    std::vector<receiver_figures> figures;
    sc.on_progress = [&](const deploy::send_progress& p) {
        figures.clear();
        for (const auto& r : p.receivers) {
            figures.push_back({r.id, r.bytes_written, r.loss_ppm,
                               (r.flags & wire::status_flag_complete) != 0,
                               (r.flags & wire::status_flag_lagging) != 0,
                               (r.flags & wire::status_flag_failed) != 0});
        }
        if (run.on_progress) {
            run.on_progress(figures, p.total_bytes);
        }
    };
    auto summary = deploy::run_sender(*prepared, sc);
    if (!summary) {
        return summary.err();
    }
    sender_outcome out;
    out.bytes_total = summary->bytes;
    out.seconds = summary->seconds;
    out.complete = summary->complete;
    out.cancelled = summary->cancelled;
    for (const auto& r : summary->receivers) {
        out.receivers.push_back({r.id, r.bytes_written, r.loss_ppm,
                                 (r.flags & wire::status_flag_complete) != 0,
                                 (r.flags & wire::status_flag_lagging) != 0,
                                 (r.flags & wire::status_flag_failed) != 0});
    }
    // A last report so the tasks hold the sender's final figures.
    if (run.on_progress && !out.receivers.empty()) {
        run.on_progress(out.receivers, out.bytes_total);
    }
    return out;
}

}  // namespace shoal::control::tasks
