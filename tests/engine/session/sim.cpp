#include "sim.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"

namespace shoal::sim {

network::network(std::uint64_t seed, const session::prepared_session& session,
                 session::sender_config sender_config, std::vector<link_profile> links,
                 std::size_t memory_bytes_max)
    : _rng(seed), _session(session) {
    auto s = session::sender::create(sender_config, session.objects(), session.manifest_sha256);
    SHOAL_ASSERT_MSG(s.has_value(), "sender: {}", s.err().context());
    _sender = std::move(*s);
    _nodes.resize(links.size());
    for (std::size_t i = 0; i < links.size(); ++i) {
        session::receiver_config rc;
        rc.receiver_id = static_cast<std::uint32_t>(0x1000 + i);
        rc.key = sender_config.key;
        rc.memory_bytes_max = memory_bytes_max;
        rc.seed = seed * 1000 + i + 1;
        auto r = session::receiver::create(rc);
        SHOAL_ASSERT(r.has_value());
        _nodes[i].rx = std::move(*r);
        _nodes[i].link = links[i];
        _nodes[i].target.assign(session.manifest.target_size, std::byte{0});
        _nodes[i].dctx = ZSTD_createDCtx();
    }
}

network::~network() {
    for (auto& n : _nodes) {
        ZSTD_freeDCtx(n.dctx);
    }
}

bool network::lost(node& n) {
    std::uniform_real_distribution<double> u(0, 1);
    const link_profile& l = n.link;
    if (l.burst_enter > 0) {
        n.bad_state = n.bad_state ? u(_rng) >= l.burst_leave : u(_rng) < l.burst_enter;
        if (n.bad_state && u(_rng) < l.burst_loss) {
            return true;
        }
    }
    return u(_rng) < l.loss;
}

void network::broadcast(std::shared_ptr<const std::vector<std::byte>> p, int from, std::int64_t now) {
    std::uniform_real_distribution<double> u(0, 1);
    auto deliver_to = [&](queue& q, node* n) {
        link_profile none;
        const link_profile& l = n ? n->link : none;
        if (n != nullptr && lost(*n)) {
            const auto phase = n->rx->phase();
            const bool listening = phase == session::receiver_phase::waiting_manifest ||
                                   phase == session::receiver_phase::receiving ||
                                   phase == session::receiver_phase::complete;
            n->dropped_from_sender += from < 0 && listening ? 1 : 0;
            return;
        }
        std::int64_t queued_ns = 0;
        if (n != nullptr && l.capacity_Bps > 0) {
            constexpr std::int64_t queue_limit_ns = 2'000'000;
            const std::int64_t start = std::max(now, n->link_busy_until_ns);
            if (start - now > queue_limit_ns) {
                return;  // the bottleneck's queue is full: a congestion drop
            }
            n->link_busy_until_ns =
                start + static_cast<std::int64_t>(static_cast<double>(p->size() + 28) / l.capacity_Bps * 1e9);
            queued_ns = n->link_busy_until_ns - now;
        }
        const int copies = u(_rng) < l.duplicate ? 2 : 1;
        for (int c = 0; c < copies; ++c) {
            std::int64_t delay = l.delay_ns + queued_ns;
            if (l.jitter_ns > 0) {
                delay += static_cast<std::int64_t>(u(_rng) * static_cast<double>(l.jitter_ns));
            }
            q.push({now + delay, _order++, p, from});
        }
    };
    if (from >= 0) {
        deliver_to(_sender_inbox, nullptr);
    }
    for (std::size_t i = 0; i < _nodes.size(); ++i) {
        if (static_cast<int>(i) != from && _nodes[i].link.alive && now >= _nodes[i].link.join_ns) {
            deliver_to(_nodes[i].inbox, &_nodes[i]);
        }
    }
}

run_result network::run(std::int64_t limit_ns, std::span<const std::byte> original) {
    constexpr std::size_t burst = 32;
    constexpr std::size_t buffer_size = 2048;
    std::vector<std::byte> storage(burst * buffer_size);
    io::packet packets[burst];
    run_result result;
    result.complete_ns.assign(_nodes.size(), -1);
    std::int64_t now = 0;
    const std::int64_t step_ns = 20'000;
    while (now < limit_ns) {
        // Sender.
        if (!_sender->finished() && _sender->next_send_ns(now) <= now) {
            for (std::size_t i = 0; i < burst; ++i) {
                packets[i].data = storage.data() + i * buffer_size;
            }
            const std::size_t n = _sender->produce(packets, burst, now);
            for (std::size_t i = 0; i < n; ++i) {
                auto bytes = std::vector<std::byte>(packets[i].data, packets[i].data + packets[i].size);
                if (tamper) {
                    tamper(bytes);
                }
                broadcast(std::make_shared<const std::vector<std::byte>>(std::move(bytes)), -1, now);
            }
        }
        while (!_sender_inbox.empty() && _sender_inbox.top().at_ns <= now) {
            const event e = _sender_inbox.top();
            _sender_inbox.pop();
            _sender->on_packet(*e.bytes, static_cast<std::uint32_t>(e.from), now);
        }
        // Receivers.
        bool all_done = true;
        for (std::size_t i = 0; i < _nodes.size(); ++i) {
            node& nd = _nodes[i];
            if (!nd.link.alive || now < nd.link.join_ns) {
                while (!nd.inbox.empty()) {
                    nd.inbox.pop();
                }
                continue;
            }
            while (!nd.inbox.empty() && nd.inbox.top().at_ns <= now) {
                const event e = nd.inbox.top();
                nd.inbox.pop();
                nd.rx->on_packet(*e.bytes, now);
            }
            session::completed_chunk c;
            while (nd.rx->take_chunk(c)) {
                nd.pending.push_back(c);
            }
            // The "disk": verify, decode, write; a slow one takes raw_size / drain_Bps.
            while (!nd.pending.empty() && now >= nd.disk_free_ns) {
                const auto chunk = nd.pending.front();
                nd.pending.erase(nd.pending.begin());
                const auto& entry = _session.manifest.chunks[chunk.chunk];
                auto st = session::verify_and_decode(
                    entry, chunk.wire, {nd.target.data() + entry.target_offset, entry.raw_size},
                    nd.dctx);
                nd.rx->chunk_done(chunk.chunk, st.has_value(), entry.raw_size, now);
                if (nd.link.drain_Bps > 0) {
                    nd.disk_free_ns = now + static_cast<std::int64_t>(entry.raw_size / nd.link.drain_Bps * 1e9);
                }
            }
            if (nd.rx->next_event_ns(now) <= now) {
                std::byte buffer[1472];
                io::packet p;
                p.data = buffer;
                if (nd.rx->produce(&p, 1, now) == 1) {
                    broadcast(std::make_shared<const std::vector<std::byte>>(buffer, buffer + p.size),
                              static_cast<int>(i), now);
                }
            }
            const auto phase = nd.rx->phase();
            if ((phase == session::receiver_phase::complete || phase == session::receiver_phase::finished) &&
                result.complete_ns[i] < 0) {
                result.complete_ns[i] = now;
            }
            if (phase != session::receiver_phase::finished && phase != session::receiver_phase::failed) {
                all_done = false;
            }
        }
        if (all_done && _sender->finished()) {
            break;
        }
        now += step_ns;
    }
    result.elapsed_ns = now;
    result.all_identical = true;
    for (auto& nd : _nodes) {
        const bool done = nd.rx->phase() == session::receiver_phase::finished;
        result.complete_count += done ? 1 : 0;
        const bool same = nd.target.size() == original.size() &&
                          std::memcmp(nd.target.data(), original.data(), original.size()) == 0;
        if (nd.link.alive) {
            result.all_identical = result.all_identical && done && same;
        }
        result.statuses_per_receiver.push_back(nd.rx->stats().statuses_sent);
    }
    return result;
}

}  // namespace shoal::sim
