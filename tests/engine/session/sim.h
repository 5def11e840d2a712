// A seeded simulated multicast network in virtual time for the session state machines:
// one sender, N receivers, every packet delivered to every other node with its own loss
// (random or bursty), delay jitter (so reordering) and duplication. Receivers "write"
// into memory through the same verify-and-decode step as the real writer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <vector>

#include "session/chunks.h"
#include "session/receiver.h"
#include "session/sender.h"

namespace shoal::sim {

struct link_profile {
    double loss = 0;               // probability a packet is dropped
    double burst_enter = 0;        // Gilbert-Elliott: probability good -> bad
    double burst_leave = 0.3;      //                  probability bad -> good
    double burst_loss = 0.5;       // loss while bad
    double duplicate = 0;
    std::int64_t delay_ns = 200'000;
    std::int64_t jitter_ns = 0;    // uniform extra delay: reorders packets
    double drain_Bps = 0;          // receiver's disk speed, 0: instant
    double capacity_Bps = 0;       // link rate towards the receiver, 0: unlimited; packets
                                   // beyond a 2 ms queue are dropped, as a tbf would
    std::int64_t join_ns = 0;      // joins late
    bool alive = true;
};

struct run_result {
    std::int64_t elapsed_ns = 0;
    bool all_identical = false;
    std::size_t complete_count = 0;
    std::vector<std::uint64_t> statuses_per_receiver;
    std::vector<std::int64_t> complete_ns;
};

class network {
public:
    network(std::uint64_t seed, const session::prepared_session& session,
            session::sender_config sender_config, std::vector<link_profile> links,
            std::size_t memory_bytes_max = 64u << 20);
    ~network();

    // Runs until every live receiver finished or failed and the sender finished, or until
    // limit_ns of virtual time.
    run_result run(std::int64_t limit_ns, std::span<const std::byte> original);

    session::sender& sender() { return *_sender; }
    session::receiver& receiver(std::size_t i) { return *_nodes[i].rx; }
    std::uint64_t dropped_from_sender(std::size_t i) const { return _nodes[i].dropped_from_sender; }
    // Called on every packet the sender sends, before delivery: tests inject forged ones.
    std::function<void(std::vector<std::byte>&)> tamper;

private:
    struct event {
        std::int64_t at_ns;
        std::uint64_t order;
        std::shared_ptr<const std::vector<std::byte>> bytes;
        int from;  // -1 sender
        bool operator>(const event& o) const {
            return at_ns != o.at_ns ? at_ns > o.at_ns : order > o.order;
        }
    };
    using queue = std::priority_queue<event, std::vector<event>, std::greater<>>;
    struct node {
        std::unique_ptr<session::receiver> rx;
        link_profile link;
        bool bad_state = false;
        std::int64_t link_busy_until_ns = 0;
        std::uint64_t dropped_from_sender = 0;  // what the network took from this receiver
        queue inbox;
        std::vector<std::byte> target;
        ZSTD_DCtx* dctx = nullptr;
        std::int64_t disk_free_ns = 0;   // when its slow disk can take the next chunk
        std::vector<session::completed_chunk> pending;
    };
    void broadcast(std::shared_ptr<const std::vector<std::byte>> p, int from, std::int64_t now);
    bool lost(node& n);

    std::mt19937_64 _rng;
    const session::prepared_session& _session;
    std::unique_ptr<session::sender> _sender;
    std::vector<node> _nodes;
    queue _sender_inbox;
    std::uint64_t _order = 0;
};

}  // namespace shoal::sim
