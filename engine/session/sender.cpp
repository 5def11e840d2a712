#include "session/sender.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/log.h"
#include "common/ring.h"
#include "fec/rs.h"
#include "session/layout.h"

namespace shoal::session {

namespace {
constexpr std::int64_t ns_per_s = 1'000'000'000;
constexpr int done_announce_count = 3;        // "done" is repeated: one could be lost
constexpr std::int64_t done_announce_gap_ns = 20'000'000;
constexpr std::int64_t rate_step_interval_ns = 200'000'000;

std::size_t round_up_pow2(std::size_t n) {
    std::size_t p = 2;
    while (p < n) {
        p <<= 1;
    }
    return p;
}
}  // namespace

struct sender::state {
    sender_config config;
    std::vector<std::span<const std::byte>> objects;
    std::array<std::uint8_t, 32> manifest_sha256{};
    session::layout layout;
    fec::codec codec;
    std::vector<std::byte> pad_symbol;            // the zero-padded last symbol of an object

    // Per block: what receivers still lack, which repair ESI comes next, when its last
    // repair went out (so statuses sent before it arrived are not answered twice).
    std::vector<std::uint8_t> demand;
    std::vector<std::uint8_t> next_esi;
    std::vector<std::int64_t> serviced_ns;
    std::vector<std::uint8_t> queued;
    spsc_ring<std::uint32_t> repair_queue;         // blocks with demand, oldest first
    std::uint32_t repair_front = UINT32_MAX;       // block being repaired now

    // Main pass cursor.
    wire::session_phase phase = wire::session_phase::waiting;
    std::uint32_t position = 0;
    std::uint8_t position_esi = 0;                 // next symbol of block `position`
    std::uint8_t proactive = 0;                    // repairs per block in the main pass
    bool last_was_repair = false;                  // alternate repairs and new data

    // Pacing.
    double rate_bps = 0;
    std::uint32_t loss_floor_ppm = 0;              // loss that rate cuts do not lower
    bool cut_pending = false;                      // judging the last cut at the next step
    double rate_before_cut = 0;
    double goodput_before_cut = 0;
    double tokens_bytes = 0;
    double tokens_max_bytes = 0;
    std::int64_t tokens_ns = 0;
    std::int64_t next_rate_step_ns = 0;

    // Timers.
    std::int64_t created_ns = -1;
    std::int64_t next_announce_ns = 0;
    std::int64_t last_status_ns = 0;
    int done_announces_left = done_announce_count;
    std::uint32_t seq = 0;

    // Receivers and orders to them.
    std::vector<receiver_report> receivers;
    std::vector<std::uint32_t> control_queue;      // receiver ids owed a control packet
    std::size_t announced_receivers = 0;           // group size in the last announce

    sender_stats stats;

    state(const sender_config& c, session::layout l, fec::codec f, std::size_t block_count)
        : config(c), layout(std::move(l)), codec(std::move(f)),
          repair_queue(round_up_pow2(block_count + 1)) {}

    std::uint32_t packet_cost(std::size_t payload) const {
        return static_cast<std::uint32_t>(payload) + config.packet_overhead_bytes;
    }

    // A packet is going out: its IP-layer bytes come off the tokens and onto the count.
    void spend(const io::packet& p) {
        const std::uint32_t cost = packet_cost(p.size);
        tokens_bytes -= cost;
        stats.bytes_sent += cost;
    }

    void refill(std::int64_t now_ns) {
        if (now_ns > tokens_ns) {
            tokens_bytes += static_cast<double>(now_ns - tokens_ns) * rate_bps / 8.0 / 1e9;
            tokens_bytes = std::min(tokens_bytes, tokens_max_bytes);
            tokens_ns = now_ns;
        }
    }

    std::uint32_t feedback_interval_us() const {
        const auto known = static_cast<std::uint64_t>(std::max<std::size_t>(receivers.size(), 1));
        const std::int64_t spread = static_cast<std::int64_t>(
            known * ns_per_s / std::max<std::uint32_t>(config.feedback_packets_per_s_max, 1));
        return static_cast<std::uint32_t>(std::max(spread, config.feedback_interval_min_ns) / 1000);
    }

    // Pointers to a block's k source symbols; the last symbol of an object is padded.
    void source_pointers(const block_info& b, const std::byte** out) {
        const auto object = objects[b.object];
        const std::size_t base = layout.block_offset(b);
        const std::size_t s = layout.symbol_size();
        for (std::size_t i = 0; i < b.k; ++i) {
            const std::size_t at = base + i * s;
            if (at + s <= object.size()) {
                out[i] = object.data() + at;
            } else {
                std::memset(pad_symbol.data(), 0, s);
                std::memcpy(pad_symbol.data(), object.data() + at, object.size() - at);
                out[i] = pad_symbol.data();
            }
        }
    }

    // Writes a data packet for symbol `esi` of `block` into p. Returns false on an encode
    // failure (which would be a bug: indices are ours).
    bool write_symbol(io::packet& p, std::uint32_t block, std::uint8_t esi, std::uint8_t flags) {
        const block_info b = layout.block(block);
        wire::data_packet d;
        d.hdr.session_id = config.session_id;
        d.hdr.seq = seq++;
        d.block = block;
        d.esi = esi;
        d.k = b.k;
        d.flags = flags;
        const std::size_t s = layout.symbol_size();
        auto header = wire::encode_data_header(d, {p.data, wire::data_header_size});
        SHOAL_ASSERT(header.has_value());
        std::byte* symbol = p.data + wire::data_header_size;
        const std::byte* source[fec::k_limit];
        source_pointers(b, source);
        if (esi < b.k) {
            std::memcpy(symbol, source[esi], s);
        } else {
            std::byte* outs[1] = {symbol};
            auto st = codec.encode(b.k, source, &esi, 1, outs);
            if (!st) {
                log::err("sender: encoding block {} esi {}: {}", block, esi, st.err().describe());
                return false;
            }
        }
        p.size = static_cast<std::uint32_t>(wire::data_header_size + s);
        return true;
    }

    std::uint8_t take_esi(std::uint32_t block, std::uint8_t k) {
        // New repair symbols first (k..254); once a block has used them all, cycle through
        // every symbol again: receivers keep what they lack and drop duplicates.
        std::uint8_t esi = next_esi[block];
        if (esi < k) {
            esi = k;
        }
        const bool last = std::size_t{esi} + 1 >= fec::esi_count_max;
        next_esi[block] = last ? std::uint8_t{0} : static_cast<std::uint8_t>(esi + 1);
        return esi;
    }

    std::uint32_t active_receiver_count() const {
        std::uint32_t n = 0;
        for (const auto& r : receivers) {
            n += (r.flags & (wire::status_flag_leaving | wire::status_flag_failed)) == 0 ? 1 : 0;
        }
        return n;
    }

    // Every receiver is complete, failed, told to leave, or silent past the idle timeout
    // (killed: if it comes back it joins again under a new id).
    bool all_receivers_done(std::int64_t now_ns) const {
        if (receivers.empty()) {
            return false;
        }
        for (const auto& r : receivers) {
            const bool gone = (r.flags & (wire::status_flag_complete | wire::status_flag_failed |
                                          wire::status_flag_leaving)) != 0 ||
                              (r.told_slow && config.slow_policy == slow_receiver_policy::fall_back) ||
                              now_ns - r.last_seen_ns >= config.idle_timeout_ns;
            if (!gone) {
                return false;
            }
        }
        return true;
    }

    // Congestion and a lossy link look alike in the loss rate but not in what arrives:
    // behind a bottleneck, rate x (1 - loss) stays at the bottleneck's rate when we cut;
    // on a link that drops a share of packets whatever the rate, it falls with the cut.
    // So a cut that costs goodput teaches the floor of loss the rate cannot help, and only
    // loss above that floor counts as congestion.
    void steer_rate(std::uint32_t median_ppm) {
        const double max_rate = static_cast<double>(config.rate_bps);
        const double min_rate = static_cast<double>(config.rate_bps_min);
        const double goodput = rate_bps * (1.0 - median_ppm / 1e6);
        if (cut_pending) {
            cut_pending = false;
            if (goodput < goodput_before_cut * 0.93) {
                // The cut cost what it saved: this loss is the link's. Learn it, undo the cut.
                loss_floor_ppm = median_ppm;
                rate_bps = std::min(rate_before_cut, max_rate);
                log::debug("sender: loss of {} ppm does not answer to the rate; keeping {:.0f} bit/s",
                           median_ppm, rate_bps);
                return;
            }
        }
        if (median_ppm > loss_floor_ppm + 20'000) {
            rate_before_cut = rate_bps;
            goodput_before_cut = goodput;
            cut_pending = true;
            rate_bps = std::max(rate_bps * 0.85, min_rate);
            log::debug("sender: loss {} ppm: rate cut to {:.0f} bit/s", median_ppm, rate_bps);
        } else if (median_ppm < loss_floor_ppm + 5'000) {
            rate_bps = std::min(rate_bps * 1.05, max_rate);
        }
        // The floor follows the loss down when the link gets better.
        if (median_ppm < loss_floor_ppm) {
            loss_floor_ppm = median_ppm;
        }
        stats.rate_bps_lowest = std::min(stats.rate_bps_lowest, static_cast<std::uint64_t>(rate_bps));
    }

    void adapt(std::int64_t now_ns) {
        if (now_ns < next_rate_step_ns) {
            return;
        }
        next_rate_step_ns = now_ns + rate_step_interval_ns;
        // The median receiver's loss sets the proactive parity, so one lossy receiver is
        // healed by repairs it asks for and does not tax everyone's bandwidth.
        std::uint32_t losses[64];
        std::size_t n = 0;
        for (const auto& r : receivers) {
            if (n < 64 && (r.flags & wire::status_flag_lagging) == 0 && !r.told_slow) {
                losses[n++] = r.loss_ppm;
            }
        }
        if (n == 0) {
            return;
        }
        std::nth_element(losses, losses + n / 2, losses + n);
        const std::uint32_t median_ppm = losses[n / 2];
        const double expected = static_cast<double>(config.k_max) * median_ppm / 1e6;
        // Expected losses plus a margin of their spread; 0 when nobody loses anything.
        const double want = median_ppm == 0 ? 0 : expected + 1.5 * std::sqrt(expected) + 0.5;
        proactive = static_cast<std::uint8_t>(std::min<double>(want, config.proactive_max));
        if (config.adaptive_rate) {
            steer_rate(median_ppm);
        }
    }
};

sender::sender(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
sender::~sender() = default;

result<std::unique_ptr<sender>> sender::create(const sender_config& config,
                                               std::vector<std::span<const std::byte>> objects,
                                               const std::array<std::uint8_t, 32>& manifest_sha256) {
    if (config.k_max == 0 || config.k_max > fec::k_limit || config.symbol_size < 64 ||
        config.rate_bps == 0 || objects.empty()) {
        return error::format(errc::invalid_argument, 0,
                             "sender needs k in 1..{}, a symbol of at least 64 bytes, a rate and "
                             "a manifest (k {}, symbol {}, rate {})",
                             fec::k_limit, config.k_max, config.symbol_size, config.rate_bps);
    }
    std::vector<std::uint32_t> sizes;
    sizes.reserve(objects.size());
    for (const auto& o : objects) {
        if (o.size() > UINT32_MAX) {
            return error(errc::invalid_argument, "an object is larger than 4 GiB");
        }
        sizes.push_back(static_cast<std::uint32_t>(o.size()));
    }
    auto l = layout::create(sizes, config.symbol_size, config.k_max);
    if (!l) {
        return l.err();
    }
    auto c = fec::codec::create(config.k_max, config.symbol_size);
    if (!c) {
        return c.err();
    }
    const std::size_t blocks = l->block_count();
    auto s = std::make_unique<state>(config, std::move(*l), std::move(*c), blocks);
    s->objects = std::move(objects);
    s->manifest_sha256 = manifest_sha256;
    s->pad_symbol.resize(config.symbol_size);
    s->demand.assign(blocks, 0);
    s->next_esi.assign(blocks, 0);
    s->serviced_ns.assign(blocks, INT64_MIN / 2);
    s->queued.assign(blocks, 0);
    s->receivers.reserve(config.receivers_max);
    s->control_queue.reserve(config.receivers_max);
    s->rate_bps = static_cast<double>(config.rate_bps);
    const double packet_bytes = config.symbol_size + wire::data_header_size + config.packet_overhead_bytes;
    s->tokens_max_bytes = std::max(static_cast<double>(config.burst_packets_max) * packet_bytes,
                                   static_cast<double>(config.rate_bps) / 8.0 *
                                       static_cast<double>(config.burst_ns) / 1e9);
    return std::unique_ptr<sender>(new sender(std::move(s)));
}

std::size_t sender::produce(io::packet* out, std::size_t count, std::int64_t now_ns) noexcept {
    state& s = *_s;
    if (s.created_ns < 0) {
        s.created_ns = now_ns;
        s.tokens_ns = now_ns;
        s.tokens_bytes = s.tokens_max_bytes;
    }
    if (s.phase == wire::session_phase::done && s.done_announces_left == 0) {
        return 0;
    }
    s.refill(now_ns);
    s.adapt(now_ns);

    // Start rule.
    if (s.phase == wire::session_phase::waiting) {
        const bool enough = s.config.receivers_min > 0 && s.active_receiver_count() >= s.config.receivers_min;
        const bool waited = now_ns - s.created_ns >= s.config.wait_max_ns;
        if (enough || waited) {
            s.phase = wire::session_phase::main;
            s.stats.start_ns = now_ns;
            s.next_announce_ns = now_ns;  // tell everyone at once
            log::info("sender: starting with {} receiver(s){}", s.receivers.size(),
                      enough ? "" : " (waited the maximum)");
        }
    }

    const std::size_t full_size = wire::data_header_size + s.layout.symbol_size();
    std::size_t n = 0;
    while (n < count) {
        io::packet& p = out[n];
        // Announces first: they are what lets receivers join and see the phase.
        if (now_ns >= s.next_announce_ns) {
            if (s.tokens_bytes < s.packet_cost(wire::announce_size) &&
                s.phase != wire::session_phase::waiting) {
                break;
            }
            wire::announce_packet a;
            a.hdr.session_id = s.config.session_id;
            a.hdr.seq = s.seq++;
            a.phase = s.phase;
            a.k_max = s.config.k_max;
            a.symbol_size = s.config.symbol_size;
            a.manifest_size = static_cast<std::uint32_t>(s.objects[0].size());
            a.block_count = s.layout.block_count();
            a.position = s.position;
            a.receiver_count = static_cast<std::uint32_t>(s.receivers.size());
            s.announced_receivers = s.receivers.size();
            a.feedback_interval_us = s.feedback_interval_us();
            a.rate_bps = static_cast<std::uint64_t>(s.rate_bps);
            a.manifest_sha256 = s.manifest_sha256;
            auto size = wire::encode_announce(a, s.config.key, {p.data, full_size});
            SHOAL_ASSERT(size.has_value());
            p.size = static_cast<std::uint32_t>(*size);
            s.spend(p);
            s.stats.announce_packets++;
            ++n;
            if (s.phase == wire::session_phase::done) {
                s.done_announces_left--;
                s.next_announce_ns = s.done_announces_left > 0 ? now_ns + done_announce_gap_ns : INT64_MAX;
            } else {
                s.next_announce_ns = now_ns + s.config.announce_interval_ns;
            }
            continue;
        }
        if (s.phase == wire::session_phase::waiting || s.phase == wire::session_phase::done) {
            break;
        }
        if (s.tokens_bytes < s.packet_cost(full_size)) {
            break;
        }
        // Orders to slow receivers.
        if (!s.control_queue.empty()) {
            wire::control_packet c;
            c.hdr.session_id = s.config.session_id;
            c.hdr.seq = s.seq++;
            c.receiver_id = s.control_queue.back();
            s.control_queue.pop_back();
            c.command = s.config.slow_policy == slow_receiver_policy::fall_back
                            ? wire::control_command::fall_back
                            : wire::control_command::catch_up;
            c.rate_floor_kBps = s.config.rate_floor_kBps;
            auto size = wire::encode_control(c, s.config.key, {p.data, full_size});
            SHOAL_ASSERT(size.has_value());
            p.size = static_cast<std::uint32_t>(*size);
            s.spend(p);
            s.stats.control_packets++;
            ++n;
            continue;
        }
        const bool main_left = s.phase == wire::session_phase::main && s.position < s.layout.block_count();
        if (s.repair_front == UINT32_MAX) {
            std::uint32_t b;
            if (s.repair_queue.dequeue(b)) {
                s.repair_front = b;
            }
        }
        const bool repair_ready = s.repair_front != UINT32_MAX;
        // In the main pass, repairs and new data alternate when both wait: repairs keep
        // receivers' memory bounded, new data keeps the healthy majority moving.
        const bool do_repair = repair_ready && (!main_left || !s.last_was_repair);
        if (do_repair) {
            const std::uint32_t block = s.repair_front;
            const std::uint8_t k = s.layout.block(block).k;
            const std::uint8_t esi = s.take_esi(block, k);
            const std::uint8_t flags = s.phase == wire::session_phase::catch_up ? wire::data_flag_catch_up : 0;
            if (!s.write_symbol(p, block, esi, flags)) {
                break;
            }
            if (--s.demand[block] == 0) {
                s.queued[block] = 0;
                s.serviced_ns[block] = now_ns;
                s.repair_front = UINT32_MAX;
            }
            s.stats.repair_packets++;
            s.last_was_repair = true;
        } else if (main_left) {
            const std::uint32_t block = s.position;
            const std::uint8_t k = s.layout.block(block).k;
            std::uint8_t esi = s.position_esi;
            if (esi >= k) {
                esi = s.take_esi(block, k);
                s.stats.proactive_packets++;
            } else {
                s.stats.source_packets++;
            }
            if (!s.write_symbol(p, block, esi, 0)) {
                break;
            }
            if (++s.position_esi >= k + s.proactive) {
                s.position_esi = 0;
                s.position++;
                if (s.next_esi[block] < k) {
                    s.next_esi[block] = k;  // repairs of this block start after its proactives
                }
            }
            s.last_was_repair = false;
        } else {
            // Nothing to send. The main pass is over: catch up until receivers are done.
            if (s.phase == wire::session_phase::main) {
                s.phase = wire::session_phase::catch_up;
                s.stats.main_pass_end_ns = now_ns;
                s.last_status_ns = std::max(s.last_status_ns, now_ns);
                s.next_announce_ns = now_ns;
                log::info("sender: main pass done, serving catch-up requests");
                continue;
            }
            if (s.all_receivers_done(now_ns) || now_ns - s.last_status_ns >= s.config.idle_timeout_ns) {
                s.phase = wire::session_phase::done;
                s.stats.end_ns = now_ns;
                s.next_announce_ns = now_ns;
                continue;
            }
            break;
        }
        s.spend(p);
        ++n;
    }
    return n;
}

std::int64_t sender::next_send_ns(std::int64_t now_ns) const noexcept {
    const state& s = *_s;
    if (s.created_ns < 0) {
        return now_ns;
    }
    std::int64_t next = s.next_announce_ns;
    if (s.phase == wire::session_phase::main || s.phase == wire::session_phase::catch_up) {
        // Wait for a batch's worth of tokens, so one wake-up and one submit carry many
        // packets; the bucket is deeper than a batch, so a late wake-up loses nothing.
        const double cost = static_cast<double>(s.packet_cost(wire::data_header_size + s.layout.symbol_size())) *
                            std::min(s.config.send_batch_packets, s.config.burst_packets_max);
        const double missing = cost - s.tokens_bytes;
        const std::int64_t when =
            missing <= 0 ? now_ns
                         : s.tokens_ns + static_cast<std::int64_t>(missing * 8e9 / s.rate_bps) + 1;
        const bool has_work = s.phase == wire::session_phase::main || s.repair_front != UINT32_MAX ||
                              !s.repair_queue.empty() || !s.control_queue.empty();
        if (has_work) {
            next = std::min(next, when);
        } else {
            // Catch-up with nothing asked: look again when a receiver could have spoken.
            next = std::min(next, std::max(now_ns, s.last_status_ns + s.config.idle_timeout_ns));
            next = std::min(next, now_ns + s.config.feedback_interval_min_ns);
        }
    }
    return std::max(next, now_ns);
}

void sender::on_packet(std::span<const std::byte> bytes, std::uint32_t from_address,
                       std::int64_t now_ns) noexcept {
    state& s = *_s;
    auto h = wire::decode_header(bytes);
    if (!h || h->type != wire::packet_type::status) {
        return;  // our own data echoed back, or noise
    }
    auto st = wire::decode_status(bytes);
    if (!st || st->hdr.session_id != s.config.session_id) {
        s.stats.statuses_rejected++;
        if (!st) {
            log::debug("sender: dropped status: {}", st.err().describe());
        }
        return;
    }
    s.stats.statuses_received++;
    s.last_status_ns = now_ns;

    receiver_report* r = nullptr;
    for (auto& candidate : s.receivers) {
        if (candidate.id == st->receiver_id) {
            r = &candidate;
            break;
        }
    }
    if (r == nullptr && s.receivers.size() < s.config.receivers_max) {
        s.receivers.push_back({});
        r = &s.receivers.back();
        r->id = st->receiver_id;
        r->first_seen_ns = now_ns;
        log::info("sender: receiver {:08x} joined ({} known)", st->receiver_id, s.receivers.size());
        // Tell the group its new size soon when it has grown by half: each receiver's share
        // of the feedback budget shrinks, and a join storm must not flood us meanwhile.
        if (s.receivers.size() >= s.announced_receivers + s.announced_receivers / 2 + 1) {
            s.next_announce_ns = std::min(s.next_announce_ns, now_ns + s.config.feedback_interval_min_ns);
        }
    }
    if (r != nullptr) {
        const bool was_complete = (r->flags & wire::status_flag_complete) != 0;
        r->address = from_address;
        r->last_seen_ns = now_ns;
        r->flags = st->flags;
        r->bytes_written = st->bytes_written;
        r->blocks_complete = st->blocks_complete;
        r->loss_ppm = st->loss_ppm;
        r->drain_rate_kBps = st->drain_rate_kBps;
        if (!was_complete && (st->flags & wire::status_flag_complete) != 0) {
            r->complete_ns = now_ns;
        }
        // A drain rate of 0 is "not measured yet", not slow.
        if (s.config.rate_floor_kBps > 0 && !r->told_slow &&
            (st->flags & wire::status_flag_lagging) != 0 && st->drain_rate_kBps > 0 &&
            st->drain_rate_kBps < s.config.rate_floor_kBps &&
            s.phase != wire::session_phase::waiting && (st->flags & wire::status_flag_complete) == 0) {
            r->told_slow = true;
            s.control_queue.push_back(r->id);
            log::warn("sender: receiver {:08x} drains {} kB/s, below the floor of {} kB/s: {}",
                      r->id, st->drain_rate_kBps, s.config.rate_floor_kBps,
                      s.config.slow_policy == slow_receiver_policy::fall_back
                          ? "told to fall back to unicast"
                          : "it will be served in the catch-up pass");
        }
    }

    // Losses as counts per block: raise each block's demand to the largest count asked.
    const std::int64_t holdoff_ns =
        std::int64_t{s.feedback_interval_us()} * 1000 + s.config.feedback_interval_min_ns;
    std::uint32_t budget = s.config.status_blocks_max;
    for (std::size_t i = 0; i < st->run_count; ++i) {
        const wire::loss_run run = wire::loss_run_at(*st, i);
        const std::uint64_t end = std::min<std::uint64_t>(
            std::uint64_t{run.first_block} + run.block_count, s.layout.block_count());
        for (std::uint64_t b64 = run.first_block; b64 < end; ++b64) {
            if (budget == 0) {
                s.stats.status_blocks_clipped++;
                return;
            }
            --budget;
            const auto b = static_cast<std::uint32_t>(b64);
            if (s.phase == wire::session_phase::waiting ||
                (s.phase == wire::session_phase::main && b >= s.position)) {
                continue;  // not fully sent yet
            }
            if (now_ns - s.serviced_ns[b] < holdoff_ns) {
                continue;  // asked before our last repairs could have arrived
            }
            const std::uint8_t k = s.layout.block(b).k;
            const std::uint8_t missing = std::min(run.missing, k);
            if (r != nullptr) {
                r->blocks_asked++;
            }
            if (missing > s.demand[b]) {
                s.demand[b] = missing;
            }
            if (!s.queued[b] && s.demand[b] > 0) {
                s.queued[b] = 1;
                const bool queued_ok = s.repair_queue.enqueue(b);
                SHOAL_ASSERT(queued_ok);  // the queue holds every block
            }
        }
    }
}

wire::session_phase sender::phase() const noexcept { return _s->phase; }
void sender::end(std::int64_t now_ns) noexcept {
    state& s = *_s;
    if (s.phase == wire::session_phase::done) {
        return;
    }
    s.phase = wire::session_phase::done;
    s.stats.end_ns = now_ns;
    s.next_announce_ns = now_ns;
}

bool sender::finished() const noexcept {
    return _s->phase == wire::session_phase::done && _s->done_announces_left == 0;
}
std::uint64_t sender::rate_bps() const noexcept { return static_cast<std::uint64_t>(_s->rate_bps); }
std::uint32_t sender::position() const noexcept { return _s->position; }
std::uint32_t sender::block_count() const noexcept { return _s->layout.block_count(); }
const sender_stats& sender::stats() const noexcept { return _s->stats; }
std::span<const receiver_report> sender::receivers() const noexcept { return _s->receivers; }

}  // namespace shoal::session
