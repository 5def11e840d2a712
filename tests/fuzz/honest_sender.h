// The honest side of the session fuzz_receiver listens to, and its seed generator scripts:
// three chunks (the first compresses, so it travels as zstd), the manifest, every object
// padded to whole blocks, and a codec for repair symbols.
#pragma once

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "common/check.h"
#include "fec/rs.h"
#include "session/chunks.h"
#include "session/layout.h"
#include "wire/wire.h"

namespace shoal::fuzz {

inline constexpr std::uint32_t session_id = 0x5EED0001;
inline constexpr std::uint16_t symbol_size = 64;  // the smallest an announce allows
inline constexpr std::uint8_t k_max = 2;          // objects of several blocks, of one or two

struct honest_sender {
    std::vector<std::byte> data;
    session::prepared_session prepared;
    std::optional<session::layout> layout;
    std::optional<fec::codec> codec;
    std::vector<std::vector<std::byte>> objects;
    wire::announce_packet announce;

    honest_sender() {
        data.resize(1300);
        std::mt19937 rng(7);
        for (std::size_t i = 0; i < data.size(); ++i) {
            data[i] = std::byte(i < 512 ? i % 7 : rng());
        }
        auto p = session::prepare_session(data, 512, 3, 1);
        SHOAL_ASSERT(p.has_value());
        prepared = std::move(*p);
        SHOAL_ASSERT(prepared.manifest.chunks[0].codec == wire::chunk_codec::zstd);
        std::vector<std::uint32_t> sizes;
        for (auto object : prepared.objects()) {
            sizes.push_back(static_cast<std::uint32_t>(object.size()));
        }
        auto l = session::layout::create(sizes, symbol_size, k_max);
        SHOAL_ASSERT(l.has_value());
        layout.emplace(std::move(*l));
        auto c = fec::codec::create(k_max, symbol_size);
        SHOAL_ASSERT(c.has_value());
        codec.emplace(std::move(*c));
        std::uint32_t index = 0;
        for (auto object : prepared.objects()) {
            auto& padded = objects.emplace_back(layout->object_buffer_size(index++));
            std::copy(object.begin(), object.end(), padded.begin());
        }
        announce.hdr = {wire::packet_type::announce, session_id, 0};
        announce.phase = wire::session_phase::main;
        announce.k_max = k_max;
        announce.symbol_size = symbol_size;
        announce.manifest_size = static_cast<std::uint32_t>(prepared.manifest_bytes.size());
        announce.block_count = layout->block_count();
        announce.receiver_count = 1;
        announce.feedback_interval_us = 10'000;
        announce.rate_bps = 100'000'000;
        announce.manifest_sha256 = prepared.manifest_sha256;
    }

    // Writes symbol `esi` (< 255) of `block` to out (symbol_size bytes), as the sender would.
    void symbol(std::uint32_t block, std::uint8_t esi, std::byte* out) {
        const session::block_info info = layout->block(block);
        const std::byte* base = objects[info.object].data() + layout->block_offset(info);
        if (esi < info.k) {
            std::memcpy(out, base + std::size_t{esi} * symbol_size, symbol_size);
            return;
        }
        const std::byte* source[k_max];
        for (std::size_t i = 0; i < info.k; ++i) {
            source[i] = base + i * symbol_size;
        }
        std::byte* const repair[1] = {out};
        SHOAL_ASSERT(codec->encode(info.k, source, &esi, 1, repair).has_value());
    }
};

}  // namespace shoal::fuzz
