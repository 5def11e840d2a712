#include "session/receiver.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "common/log.h"
#include "common/pool.h"
#include "common/ring.h"
#include "fec/rs.h"
#include "session/layout.h"

namespace shoal::session {

namespace {
constexpr std::uint8_t empty_position = 0xFF;   // no symbol at this position yet
constexpr int final_status_count = 3;            // "complete" is repeated: one could be lost
constexpr std::int64_t final_status_gap_ns = 10'000'000;
constexpr std::int64_t default_feedback_interval_ns = 10'000'000;
constexpr int renak_intervals = 3;               // a request stands this many intervals
constexpr std::uint32_t heard_blocks_max = 16384;  // blocks one overheard status may mark

enum class chunk_state : std::uint8_t { absent, assembling, handed, written };

std::size_t round_up_pow2(std::size_t n) {
    std::size_t p = 2;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

// An assembly buffer for one object: its symbols, and which ESI sits at each position.
struct slot {
    std::byte* data = nullptr;
    std::vector<std::uint8_t> esi_at;  // blocks * k_max
    std::uint32_t object = UINT32_MAX;
    std::uint32_t blocks_done = 0;
};
}  // namespace

struct receiver::state {
    receiver_config config;
    receiver_phase phase = receiver_phase::waiting_announce;
    error failure{errc::invalid_argument, ""};
    std::mt19937_64 rng;

    // Session, from the announce.
    std::uint32_t session_id = 0;
    std::uint32_t last_announce_seq = 0;
    bool announce_seen = false;
    wire::announce_packet announce;
    std::int64_t feedback_interval_ns = default_feedback_interval_ns;
    std::int64_t last_sender_ns = 0;

    std::optional<session::layout> layout;
    std::optional<fec::codec> codec;
    std::vector<std::byte> scratch;          // repair symbols copied out before a decode

    // Per block.
    std::vector<std::uint8_t> have;          // distinct symbols held
    std::vector<std::uint8_t> done;          // complete (decoded)
    // The largest count anyone (we included) asked for a block, and when, in 1 ms ticks
    // that wrap every 65 s: an ask stands for renak_intervals feedback intervals from the
    // moment it was made, so repairs have time to arrive before we ask again.
    std::vector<std::uint8_t> heard_missing;
    std::vector<std::uint16_t> heard_tick;
    std::uint16_t tick = 0;
    std::uint32_t watermark = 0;
    std::uint32_t blocks_complete = 0;
    std::uint32_t highest_block = 0;

    // Manifest.
    std::vector<std::byte> manifest_buffer;
    slot manifest_slot;
    std::optional<wire::session_manifest> manifest;

    // Chunks.
    std::optional<buffer_pool> pool;
    std::vector<slot> slots;
    std::vector<std::uint32_t> free_slots;
    std::vector<std::uint32_t> slot_of_chunk;
    std::vector<chunk_state> chunk_states;
    std::optional<spsc_ring<std::uint32_t>> ready;   // chunks to hand out
    std::uint32_t chunks_written = 0;
    bool lagging = false;                             // dropped data since the last status

    // Feedback.
    std::int64_t next_status_ns = 0;
    int final_statuses_left = final_status_count;
    std::uint32_t seq = 0;
    std::vector<wire::loss_run> runs;

    // Loss and drain estimates.
    std::uint32_t seq_low = 0, seq_high = 0;
    std::uint64_t seq_received = 0;
    bool seq_started = false;
    bool seq_anchored = false;
    double loss_ewma = 0;
    double drain_Bps = 0;
    std::uint64_t drained_since = 0;
    std::int64_t drain_window_ns = 0;

    receiver_stats stats;

    void fail(const error& e) {
        if (phase != receiver_phase::failed) {
            failure = e;
            phase = receiver_phase::failed;
            next_status_ns = 0;  // tell the sender
            log::err("receiver {:08x}: {}", config.receiver_id, e.describe());
        }
    }

    // Per-block arrays and the manifest's buffer, sized by the announce.
    status start_session(const wire::announce_packet& a, std::int64_t now_ns) {
        if (a.manifest_size == 0 || a.manifest_size > config.manifest_size_max) {
            return error::format(errc::unsupported, 0, "manifest of {} bytes (limit {})",
                                 a.manifest_size, config.manifest_size_max);
        }
        if (a.block_count > config.block_count_max) {
            return error::format(errc::unsupported, 0, "session of {} blocks (limit {})",
                                 a.block_count, config.block_count_max);
        }
        const std::uint32_t sizes[1] = {a.manifest_size};
        auto l = layout::create(sizes, a.symbol_size, a.k_max);
        if (!l) {
            return l.err();
        }
        if (l->block_count() > a.block_count) {
            return error(errc::malformed, "announce counts fewer blocks than its manifest needs");
        }
        auto c = fec::codec::create(a.k_max, a.symbol_size);
        if (!c) {
            return c.err();
        }
        layout = std::move(*l);
        codec.emplace(std::move(*c));
        scratch.resize(std::size_t{a.k_max} * a.symbol_size);
        have.assign(a.block_count, 0);
        done.assign(a.block_count, 0);
        heard_missing.assign(a.block_count, 0);
        heard_tick.assign(a.block_count, 0);
        manifest_buffer.assign(layout->object_buffer_size(0), std::byte{0});
        manifest_slot.data = manifest_buffer.data();
        manifest_slot.esi_at.assign(std::size_t{layout->object_block_count(0)} * a.k_max,
                                    empty_position);
        manifest_slot.object = 0;
        phase = receiver_phase::waiting_manifest;
        // The first status (our join) at a random point of the interval: a room of PCs
        // powered on together does not answer the first announce all at once.
        std::uniform_int_distribution<std::int64_t> spread(0, std::max<std::int64_t>(a.feedback_interval_us, 1000) * 1000);
        next_status_ns = now_ns + spread(rng);
        log::info("receiver {:08x}: joined session {:08x}: {} blocks of {} x {} bytes",
                  config.receiver_id, a.hdr.session_id, a.block_count, a.k_max, a.symbol_size);
        return ok();
    }

    // The manifest is whole: check it and size everything for its chunks. One that fails
    // its hash is forgotten and asked for again, like a chunk: data symbols carry no tag, so
    // a damaged or forged one must cost a repair, not the session.
    status accept_manifest() {
        const std::size_t size = announce.manifest_size;
        std::array<std::uint8_t, 32> digest{};
        SHA256(reinterpret_cast<const unsigned char*>(manifest_buffer.data()), size, digest.data());
        const auto& expected = config.manifest_sha256 ? *config.manifest_sha256 : announce.manifest_sha256;
        if (digest != expected) {
            if (expected != announce.manifest_sha256) {
                return error(errc::corrupt,
                             "the session announces another manifest than the "
                             "one we were given: check the image we were told to fetch");
            }
            log::warn("receiver {:08x}: session manifest failed its SHA-256; asking for it again",
                      config.receiver_id);
            forget_blocks(0);
            manifest_slot.blocks_done = 0;
            std::fill(manifest_slot.esi_at.begin(), manifest_slot.esi_at.end(), empty_position);
            return ok();
        }
        auto m = wire::decode_manifest({manifest_buffer.data(), size});
        if (!m) {
            return m.err();
        }
        std::vector<std::uint32_t> sizes;
        sizes.reserve(m->chunks.size() + 1);
        sizes.push_back(static_cast<std::uint32_t>(size));
        std::uint32_t wire_max = 0;
        for (const auto& c : m->chunks) {
            sizes.push_back(c.wire_size);
            wire_max = std::max(wire_max, c.wire_size);
        }
        auto l = layout::create(sizes, announce.symbol_size, announce.k_max);
        if (!l) {
            return l.err();
        }
        if (l->block_count() != announce.block_count) {
            return error::format(errc::malformed, 0,
                                 "manifest makes {} blocks, the announce said {}", l->block_count(),
                                 announce.block_count);
        }
        const std::size_t chunk_count = m->chunks.size();
        slot_of_chunk.assign(chunk_count, UINT32_MAX);
        chunk_states.assign(chunk_count, chunk_state::absent);
        if (chunk_count > 0) {
            const std::size_t per_block = std::size_t{announce.k_max} * announce.symbol_size;
            const std::size_t slot_bytes =
                blocks_for(wire_max, announce.symbol_size, announce.k_max) * per_block;
            const std::size_t slot_count = std::clamp<std::size_t>(
                config.memory_bytes_max / slot_bytes, 2, chunk_count);
            auto p = buffer_pool::create(slot_bytes, slot_count, 4096);
            if (!p) {
                return p.err();
            }
            pool.emplace(std::move(*p));
            slots.resize(slot_count);
            const std::size_t blocks_per_slot = slot_bytes / per_block;
            for (std::uint32_t i = 0; i < slot_count; ++i) {
                slots[i].data = pool->get();
                slots[i].esi_at.assign(blocks_per_slot * announce.k_max, empty_position);
                free_slots.push_back(static_cast<std::uint32_t>(slot_count - 1 - i));
            }
            ready.emplace(round_up_pow2(slot_count + 1));
            log::info("receiver {:08x}: manifest verified: {} chunks, {} bytes to write; {} "
                      "buffers of {} KiB",
                      config.receiver_id, chunk_count, m->target_size, slot_count, slot_bytes >> 10);
        }
        layout = std::move(*l);
        manifest = std::move(*m);
        phase = receiver_phase::receiving;
        check_complete();
        return ok();
    }

    void check_complete() {
        if (phase == receiver_phase::receiving && manifest && chunks_written == manifest->chunks.size()) {
            phase = receiver_phase::complete;
            next_status_ns = 0;
            log::info("receiver {:08x}: complete: {} chunks, {} bytes written and verified",
                      config.receiver_id, chunks_written, stats.bytes_written);
        }
    }

    slot* slot_for(std::uint32_t object, bool allocate) {
        if (object == 0) {
            return manifest ? nullptr : &manifest_slot;
        }
        if (!manifest) {
            return nullptr;  // cannot place chunk data before knowing the chunks
        }
        const std::uint32_t chunk = object - 1;
        if (chunk_states[chunk] == chunk_state::assembling) {
            return &slots[slot_of_chunk[chunk]];
        }
        if (chunk_states[chunk] != chunk_state::absent || !allocate) {
            return nullptr;
        }
        if (free_slots.empty()) {
            lagging = true;
            return nullptr;
        }
        const std::uint32_t index = free_slots.back();
        free_slots.pop_back();
        slot& s = slots[index];
        s.object = object;
        s.blocks_done = 0;
        std::fill(s.esi_at.begin(), s.esi_at.end(), empty_position);
        slot_of_chunk[chunk] = index;
        chunk_states[chunk] = chunk_state::assembling;
        return &s;
    }

    void release_slot(std::uint32_t chunk) {
        const std::uint32_t index = slot_of_chunk[chunk];
        SHOAL_ASSERT(index != UINT32_MAX);
        slots[index].object = UINT32_MAX;
        slot_of_chunk[chunk] = UINT32_MAX;
        free_slots.push_back(index);
    }

    // Stores one symbol; completes the block (and maybe its object) when it has k.
    void store(const wire::data_packet& d) {
        const std::uint32_t b = d.block;
        if (done[b]) {
            stats.duplicate_packets++;
            return;
        }
        if (b >= layout->block_count()) {
            return;  // chunk data before the manifest: a late joiner asks for it later
        }
        const block_info info = layout->block(b);
        if (d.k != info.k) {
            stats.malformed_packets++;
            return;
        }
        slot* s = slot_for(info.object, true);
        if (s == nullptr) {
            stats.dropped_no_memory += info.object != 0 && manifest &&
                                       chunk_states[info.object - 1] == chunk_state::absent;
            return;
        }
        const std::size_t sym = layout->symbol_size();
        std::byte* base = s->data + layout->block_offset(info);
        std::uint8_t* at = s->esi_at.data() + std::size_t{info.index_in_object} * layout->k_max();
        const std::byte* bytes = d.symbol.data();
        std::size_t position = SIZE_MAX;
        if (d.esi < info.k) {
            if (at[d.esi] == d.esi) {
                stats.duplicate_packets++;
                return;
            }
            if (at[d.esi] != empty_position) {
                // A repair sits where this source symbol belongs: move it to a free place.
                std::size_t free_pos = 0;
                while (free_pos < info.k && at[free_pos] != empty_position) {
                    ++free_pos;
                }
                SHOAL_ASSERT(free_pos < info.k);  // a block with k symbols is already done
                std::memcpy(base + free_pos * sym, base + std::size_t{d.esi} * sym, sym);
                at[free_pos] = at[d.esi];
            }
            position = d.esi;
        } else {
            for (std::size_t i = 0; i < info.k; ++i) {
                if (at[i] == d.esi) {
                    stats.duplicate_packets++;
                    return;
                }
            }
            // Prefer a position whose own source symbol is still missing and unlikely to come.
            for (std::size_t i = 0; i < info.k; ++i) {
                if (at[i] == empty_position) {
                    position = i;
                    break;
                }
            }
            SHOAL_ASSERT(position != SIZE_MAX);
        }
        std::memcpy(base + position * sym, bytes, sym);
        at[position] = d.esi;
        if (++have[b] == info.k) {
            complete_block(b, info, *s, base, at);
        }
    }

    void complete_block(std::uint32_t b, const block_info& info, slot& s, std::byte* base,
                        std::uint8_t* at) {
        const std::size_t sym = layout->symbol_size();
        std::uint8_t missing[fec::k_limit];
        fec::repair_symbol repairs[fec::k_limit];
        std::size_t m = 0;
        for (std::size_t i = 0; i < info.k; ++i) {
            if (at[i] != i) {
                std::memcpy(scratch.data() + m * sym, base + i * sym, sym);
                repairs[m] = {at[i], scratch.data() + m * sym};
                missing[m] = static_cast<std::uint8_t>(i);
                ++m;
            }
        }
        if (m > 0) {
            std::byte* source[fec::k_limit];
            for (std::size_t i = 0; i < info.k; ++i) {
                source[i] = base + i * sym;
            }
            auto st = codec->decode(info.k, source, missing, m, repairs, m);
            SHOAL_ASSERT_MSG(st.has_value(), "decode of block {} failed: {}", b,
                             st.err().context());
            for (std::size_t i = 0; i < m; ++i) {
                at[missing[i]] = missing[i];
            }
            stats.blocks_decoded++;
        }
        done[b] = 1;
        blocks_complete++;
        while (watermark < done.size() && done[watermark]) {
            ++watermark;
        }
        if (++s.blocks_done < layout->object_block_count(info.object)) {
            return;
        }
        if (info.object == 0) {
            if (auto st = accept_manifest(); !st) {
                fail(st.err());
            }
            return;
        }
        const std::uint32_t chunk = info.object - 1;
        chunk_states[chunk] = chunk_state::handed;
        const bool queued = ready->enqueue(chunk);
        SHOAL_ASSERT(queued);  // the ring holds every slot
    }

    // An object failed its hash: forget its blocks, so they are asked for again.
    void forget_blocks(std::uint32_t object) {
        const std::uint32_t first = layout->first_block(object);
        const std::uint32_t count = layout->object_block_count(object);
        for (std::uint32_t b = first; b < first + count; ++b) {
            if (done[b]) {
                blocks_complete--;
            }
            done[b] = 0;
            have[b] = 0;
        }
        watermark = std::min(watermark, first);
    }

    void reset_chunk(std::uint32_t chunk) {
        forget_blocks(chunk + 1);
        chunk_states[chunk] = chunk_state::absent;
        release_slot(chunk);
    }

    // Every packet of the sender's counts here (data, announce, control: one counter).
    void note_sequence(std::uint32_t seq_no) {
        if (!seq_started) {
            // The first window starts at the first packet heard; each later one right
            // after the last, so a packet lost at a window's edge is still counted.
            seq_started = true;
            if (!seq_anchored) {
                seq_anchored = true;
                seq_low = seq_no;
            }
            seq_high = seq_no;
            seq_received = 1;
            return;
        }
        if (static_cast<std::int32_t>(seq_no - seq_low) < 0) {
            // Reordered past the end of its window, which counted it lost: it was not.
            stats.lost_packets -= stats.lost_packets > 0 ? 1 : 0;
            return;
        }
        if (static_cast<std::int32_t>(seq_no - seq_high) > 0) {
            seq_high = seq_no;
        }
        seq_received++;
    }

    // Closes the loss window once it spans 16 packets; shorter ones wait for more.
    void close_loss_window() {
        if (!seq_started || static_cast<std::int32_t>(seq_high - seq_low) < 0) {
            return;
        }
        const std::uint64_t expected = std::uint64_t{seq_high - seq_low} + 1;
        if (expected < 16) {
            return;
        }
        const std::uint64_t lost = expected > seq_received ? expected - seq_received : 0;
        stats.lost_packets += lost;
        loss_ewma = 0.7 * loss_ewma + 0.3 * static_cast<double>(lost) / static_cast<double>(expected);
        seq_low = seq_high + 1;
        seq_received = 0;
        seq_started = false;
    }

    void set_clock(std::int64_t now_ns) { tick = static_cast<std::uint16_t>(now_ns / 1'000'000); }

    bool ask_stands(std::uint32_t b) const {
        const std::int64_t window_ms =
            std::clamp<std::int64_t>(renak_intervals * feedback_interval_ns / 1'000'000, 3, 30'000);
        return static_cast<std::uint16_t>(tick - heard_tick[b]) < window_ms;
    }

    bool suppressed(std::uint32_t b, std::uint8_t missing) const {
        return ask_stands(b) && heard_missing[b] >= missing;
    }

    void hear(std::uint32_t b, std::uint8_t missing) {
        if (!ask_stands(b)) {
            heard_missing[b] = 0;
        }
        heard_tick[b] = tick;
        heard_missing[b] = std::max(heard_missing[b], missing);
    }

    // Appends a run for block b lacking `missing`, merging with the last run.
    bool add_run(std::uint32_t b, std::uint8_t missing, std::size_t runs_max) {
        if (!runs.empty()) {
            auto& last = runs.back();
            if (last.missing == missing && last.first_block + last.block_count == b &&
                last.block_count < UINT16_MAX) {
                last.block_count++;
                return true;
            }
        }
        if (runs.size() >= runs_max) {
            return false;
        }
        runs.push_back({b, 1, missing});
        return true;
    }

    // Builds the loss runs of a status: partial blocks of objects being assembled (now),
    // and in the catch-up pass whole chunks it has no data for, as many as it has buffers.
    void collect_runs(std::size_t runs_max) {
        runs.clear();
        if (announce.phase == wire::session_phase::waiting) {
            return;  // nothing has been sent yet
        }
        const bool late = announce.phase != wire::session_phase::main;
        const std::uint32_t horizon =
            late ? UINT32_MAX
                 : (highest_block > config.reorder_blocks ? highest_block - config.reorder_blocks : 0);
        auto object_runs = [&](std::uint32_t object) {
            const std::uint32_t first = layout->first_block(object);
            const std::uint32_t count = layout->object_block_count(object);
            for (std::uint32_t b = first; b < first + count && b < horizon; ++b) {
                if (done[b]) {
                    continue;
                }
                const std::uint8_t k = layout->block(b).k;
                const auto missing = static_cast<std::uint8_t>(k - have[b]);
                if (suppressed(b, missing)) {
                    stats.runs_suppressed++;
                    continue;
                }
                if (!add_run(b, missing, runs_max)) {
                    return false;
                }
                hear(b, missing);  // our own ask stands too, until repairs can have come
            }
            return true;
        };
        if (!manifest) {
            object_runs(0);
            return;
        }
        // Objects being assembled, lowest first (the sender services in order).
        std::uint32_t objects[256];
        std::size_t n = 0;
        for (const slot& s : slots) {
            if (s.object != UINT32_MAX && n < 256) {
                objects[n++] = s.object;
            }
        }
        std::sort(objects, objects + n);
        for (std::size_t i = 0; i < n; ++i) {
            if (!object_runs(objects[i])) {
                return;
            }
        }
        if (!late) {
            return;
        }
        // Catch-up: whole chunks we hold nothing of, up to the buffers free for them.
        std::size_t wanted = free_slots.size();
        for (std::uint32_t chunk = 0; chunk < chunk_states.size() && wanted > 0; ++chunk) {
            if (chunk_states[chunk] != chunk_state::absent) {
                continue;
            }
            --wanted;
            if (!object_runs(chunk + 1)) {
                return;
            }
        }
    }
};

receiver::receiver(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
receiver::~receiver() = default;

result<std::unique_ptr<receiver>> receiver::create(const receiver_config& config) {
    if (config.payload_size_max < wire::status_fixed_size + wire::loss_run_size) {
        return error(errc::invalid_argument, "payload too small for a status packet");
    }
    auto s = std::make_unique<state>();
    s->config = config;
    std::random_device entropy;
    if (s->config.receiver_id == 0) {
        s->config.receiver_id = (static_cast<std::uint32_t>(entropy()) | 1u);
    }
    s->rng.seed(config.seed != 0 ? config.seed : s->config.receiver_id);
    s->session_id = config.session_id;
    s->runs.reserve(wire::status_runs_max(config.payload_size_max));
    return std::unique_ptr<receiver>(new receiver(std::move(s)));
}

void receiver::on_packet(std::span<const std::byte> bytes, std::int64_t now_ns) noexcept {
    state& s = *_s;
    if (s.phase == receiver_phase::failed || s.phase == receiver_phase::finished) {
        return;
    }
    auto h = wire::decode_header(bytes);
    if (!h) {
        s.stats.foreign_packets++;
        return;
    }
    if (s.session_id != 0 && h->session_id != s.session_id) {
        s.stats.foreign_packets++;
        return;
    }
    switch (h->type) {
    case wire::packet_type::announce: {
        auto a = wire::decode_announce(bytes, s.config.key);
        if (!a) {
            s.stats.foreign_packets++;
            log::debug("receiver: announce rejected: {}", a.err().describe());
            return;
        }
        if (s.announce_seen && static_cast<std::int32_t>(a->hdr.seq - s.last_announce_seq) <= 0) {
            return;  // replayed or reordered: only newer announces count
        }
        if (!s.announce_seen) {
            s.session_id = a->hdr.session_id;
            s.announce = *a;
            if (auto st = s.start_session(*a, now_ns); !st) {
                s.fail(st.err());
                return;
            }
        }
        if (a->k_max != s.announce.k_max || a->symbol_size != s.announce.symbol_size ||
            a->block_count != s.announce.block_count ||
            a->manifest_size != s.announce.manifest_size ||
            a->manifest_sha256 != s.announce.manifest_sha256) {
            s.stats.malformed_packets++;
            return;  // a session does not change shape
        }
        s.announce_seen = true;
        s.note_sequence(a->hdr.seq);
        s.last_announce_seq = a->hdr.seq;
        s.announce = *a;
        s.last_sender_ns = now_ns;
        const std::int64_t interval_ns = std::max<std::int64_t>(a->feedback_interval_us, 1000) * 1000;
        if (interval_ns > s.feedback_interval_ns && s.next_status_ns != INT64_MAX &&
            s.phase != receiver_phase::complete && s.phase != receiver_phase::failed) {
            // The group grew: move our next status into the longer interval at once.
            std::uniform_int_distribution<std::int64_t> spread(0, interval_ns);
            s.next_status_ns = std::max(s.next_status_ns, now_ns + spread(s.rng));
        }
        s.feedback_interval_ns = interval_ns;
        if (a->phase == wire::session_phase::done &&
            (s.phase == receiver_phase::waiting_manifest || s.phase == receiver_phase::receiving)) {
            const std::size_t missing =
                s.manifest ? s.manifest->chunks.size() - s.chunks_written : 0;
            s.fail(error::format(errc::peer_gone, 0,
                                 "the sender ended the session with {} of our chunks missing{}",
                                 missing, s.manifest ? "" : " (we never got the manifest)"));
        }
        return;
    }
    case wire::packet_type::data: {
        if (!s.announce_seen) {
            return;  // cannot place symbols without the session's shape
        }
        auto d = wire::decode_data(bytes);
        if (!d || d->block >= s.have.size() || d->symbol.size() != s.announce.symbol_size) {
            s.stats.malformed_packets++;
            return;
        }
        s.last_sender_ns = now_ns;
        s.stats.data_packets++;
        s.note_sequence(d->hdr.seq);
        if (static_cast<std::int64_t>(d->block) > static_cast<std::int64_t>(s.highest_block) &&
            (d->flags & wire::data_flag_catch_up) == 0) {
            s.highest_block = d->block;
        }
        if (s.phase == receiver_phase::waiting_manifest || s.phase == receiver_phase::receiving) {
            s.store(*d);
        }
        return;
    }
    case wire::packet_type::status: {
        auto st = wire::decode_status(bytes);
        if (!st || st->receiver_id == s.config.receiver_id || s.have.empty()) {
            return;
        }
        // Another receiver's asks: ours for the same blocks, if no larger, can wait.
        s.set_clock(now_ns);
        std::uint32_t budget = heard_blocks_max;
        for (std::size_t i = 0; i < st->run_count && budget > 0; ++i) {
            const wire::loss_run run = wire::loss_run_at(*st, i);
            const std::uint64_t end = std::min<std::uint64_t>(
                std::uint64_t{run.first_block} + run.block_count, s.have.size());
            for (std::uint64_t b = run.first_block; b < end && budget > 0; ++b, --budget) {
                s.hear(static_cast<std::uint32_t>(b), run.missing);
            }
        }
        return;
    }
    case wire::packet_type::control: {
        auto c = wire::decode_control(bytes, s.config.key);
        if (!c) {
            return;
        }
        s.note_sequence(c->hdr.seq);
        if (c->receiver_id != s.config.receiver_id) {
            return;
        }
        s.last_sender_ns = now_ns;
        if (c->command == wire::control_command::fall_back) {
            s.fail(error::format(errc::cancelled, 0,
                                 "the sender dropped us from the group: our disk drains below its "
                                 "floor of {} kB/s; fetch this image by unicast",
                                 c->rate_floor_kBps));
        } else {
            log::warn("receiver {:08x}: below the group's floor of {} kB/s: the rest will come "
                      "in the catch-up pass",
                      s.config.receiver_id, c->rate_floor_kBps);
        }
        return;
    }
    }
}

std::size_t receiver::produce(io::packet* out, std::size_t count, std::int64_t now_ns) noexcept {
    state& s = *_s;
    if (count == 0 || s.phase == receiver_phase::finished) {
        return 0;
    }
    if (s.phase != receiver_phase::failed && s.phase != receiver_phase::waiting_announce &&
        now_ns - s.last_sender_ns > s.config.sender_timeout_ns) {
        s.fail(error::format(errc::peer_gone, 0, "no packet from the sender for {} ms",
                             s.config.sender_timeout_ns / 1'000'000));
    }
    if (s.phase == receiver_phase::waiting_announce || now_ns < s.next_status_ns) {
        return 0;
    }
    s.set_clock(now_ns);
    s.close_loss_window();
    const std::size_t runs_max = wire::status_runs_max(s.config.payload_size_max);
    if (s.phase == receiver_phase::receiving || s.phase == receiver_phase::waiting_manifest) {
        s.collect_runs(runs_max);
    } else {
        s.runs.clear();
    }

    wire::status_packet st;
    st.hdr.session_id = s.session_id;
    st.hdr.seq = s.seq++;
    st.receiver_id = s.config.receiver_id;
    st.flags = (s.phase == receiver_phase::complete || s.phase == receiver_phase::finished
                    ? wire::status_flag_complete
                    : 0) |
               (s.phase == receiver_phase::failed ? wire::status_flag_failed : 0) |
               (s.lagging ? wire::status_flag_lagging : 0);
    st.watermark = s.watermark;
    st.blocks_complete = s.blocks_complete;
    st.bytes_written = s.stats.bytes_written;
    st.loss_ppm = static_cast<std::uint32_t>(s.loss_ewma * 1e6);
    st.drain_rate_kBps = static_cast<std::uint32_t>(s.drain_Bps / 1000);
    auto size = wire::encode_status(st, s.runs, {out[0].data, s.config.payload_size_max});
    SHOAL_ASSERT(size.has_value());
    out[0].size = static_cast<std::uint32_t>(*size);
    s.stats.statuses_sent++;
    s.lagging = false;

    if (s.phase == receiver_phase::complete || s.phase == receiver_phase::failed) {
        if (--s.final_statuses_left <= 0) {
            s.phase = s.phase == receiver_phase::complete ? receiver_phase::finished
                                                          : receiver_phase::failed;
            s.next_status_ns = INT64_MAX;
        } else {
            s.next_status_ns = now_ns + final_status_gap_ns;
        }
    } else {
        // Jitter spreads the group's statuses over the interval, so they do not arrive
        // together and each can suppress the asks of those that come after it.
        std::uniform_int_distribution<std::int64_t> jitter(s.feedback_interval_ns / 2,
                                                            s.feedback_interval_ns * 3 / 2);
        s.next_status_ns = now_ns + jitter(s.rng);
    }
    return 1;
}

std::int64_t receiver::next_event_ns(std::int64_t now_ns) const noexcept {
    const state& s = *_s;
    if (s.phase == receiver_phase::finished ||
        (s.phase == receiver_phase::failed && s.next_status_ns == INT64_MAX)) {
        return INT64_MAX;
    }
    if (s.phase == receiver_phase::waiting_announce) {
        return now_ns + s.config.sender_timeout_ns;
    }
    return std::max(now_ns, std::min(s.next_status_ns, s.last_sender_ns + s.config.sender_timeout_ns + 1));
}

bool receiver::take_chunk(completed_chunk& out) noexcept {
    state& s = *_s;
    if (!s.ready) {
        return false;
    }
    std::uint32_t chunk;
    if (!s.ready->dequeue(chunk)) {
        return false;
    }
    const slot& sl = s.slots[s.slot_of_chunk[chunk]];
    out.chunk = chunk;
    out.wire = {sl.data, s.manifest->chunks[chunk].wire_size};
    return true;
}

void receiver::chunk_done(std::uint32_t chunk, bool written, std::uint64_t raw_bytes,
                          std::int64_t now_ns) noexcept {
    state& s = *_s;
    SHOAL_ASSERT(s.manifest && chunk < s.chunk_states.size() &&
                 s.chunk_states[chunk] == chunk_state::handed);
    if (!written) {
        s.stats.chunks_rejected++;
        log::warn("receiver {:08x}: chunk {} failed its SHA-256; asking for it again",
                  s.config.receiver_id, chunk);
        s.reset_chunk(chunk);
        return;
    }
    s.chunk_states[chunk] = chunk_state::written;
    s.release_slot(chunk);
    s.chunks_written++;
    s.stats.bytes_written += raw_bytes;
    // Drain rate over windows of at least 50 ms.
    s.drained_since += raw_bytes;
    if (s.drain_window_ns == 0) {
        s.drain_window_ns = now_ns;
    } else if (now_ns - s.drain_window_ns >= 50'000'000) {
        const double rate = static_cast<double>(s.drained_since) * 1e9 /
                            static_cast<double>(now_ns - s.drain_window_ns);
        s.drain_Bps = s.drain_Bps == 0 ? rate : 0.7 * s.drain_Bps + 0.3 * rate;
        s.drained_since = 0;
        s.drain_window_ns = now_ns;
    }
    s.check_complete();
}

void receiver::chunk_present(std::uint32_t chunk, std::uint64_t raw_bytes) noexcept {
    state& s = *_s;
    SHOAL_ASSERT(s.manifest && chunk < s.chunk_states.size());
    const chunk_state was = s.chunk_states[chunk];
    if (was == chunk_state::handed || was == chunk_state::written) {
        return;  // the writer has it, or had it already
    }
    if (was == chunk_state::assembling) {
        s.release_slot(chunk);
    }
    const std::uint32_t object = chunk + 1;
    const std::uint32_t first = s.layout->first_block(object);
    const std::uint32_t count = s.layout->object_block_count(object);
    for (std::uint32_t b = first; b < first + count; ++b) {
        if (!s.done[b]) {
            s.done[b] = 1;
            s.have[b] = s.layout->block(b).k;
            s.blocks_complete++;
        }
    }
    while (s.watermark < s.done.size() && s.done[s.watermark]) {
        ++s.watermark;
    }
    s.chunk_states[chunk] = chunk_state::written;
    s.chunks_written++;
    s.stats.chunks_present++;
    s.stats.bytes_present += raw_bytes;
    s.check_complete();
}

receiver_phase receiver::phase() const noexcept { return _s->phase; }
const error& receiver::failure() const noexcept { return _s->failure; }
std::uint32_t receiver::id() const noexcept { return _s->config.receiver_id; }
std::uint32_t receiver::session_id() const noexcept { return _s->session_id; }
const wire::session_manifest* receiver::manifest() const noexcept {
    return _s->manifest ? &*_s->manifest : nullptr;
}
std::uint32_t receiver::chunks_written() const noexcept { return _s->chunks_written; }
const receiver_stats& receiver::stats() const noexcept { return _s->stats; }

}  // namespace shoal::session
