#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "wire/manifest.h"
#include "wire/wire.h"

namespace shoal::wire {
namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (int v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

std::span<const std::byte> key_of(const char* s) {
    return {reinterpret_cast<const std::byte*>(s), std::strlen(s)};
}

TEST(wire_data, golden_header_bytes) {
    data_packet d;
    d.hdr.session_id = 0x01020304;
    d.hdr.seq = 0xA0B0C0D0;
    d.block = 0x00000102;
    d.esi = 70;
    d.k = 64;
    d.flags = data_flag_catch_up;
    std::byte out[data_header_size];
    auto n = encode_data_header(d, out);
    ASSERT_TRUE(n);
    ASSERT_EQ(*n, data_header_size);
    const auto golden = bytes_of({0x53, 0x48, 0x01, 0x01, 0x01, 0x02, 0x03, 0x04, 0xA0, 0xB0, 0xC0,
                                  0xD0, 0x00, 0x00, 0x01, 0x02, 70, 64, 0x01, 0x00});
    EXPECT_EQ(std::vector<std::byte>(out, out + data_header_size), golden);
}

TEST(wire_data, round_trip_keeps_the_symbol) {
    std::vector<std::byte> packet(data_header_size + 100);
    data_packet d;
    d.hdr.session_id = 7;
    d.block = 99;
    d.esi = 3;
    d.k = 10;
    ASSERT_TRUE(encode_data_header(d, packet));
    for (std::size_t i = 0; i < 100; ++i) {
        packet[data_header_size + i] = static_cast<std::byte>(i);
    }
    auto back = decode_data(packet);
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(back->hdr.session_id, 7u);
    EXPECT_EQ(back->block, 99u);
    EXPECT_EQ(back->esi, 3);
    EXPECT_EQ(back->k, 10);
    ASSERT_EQ(back->symbol.size(), 100u);
    EXPECT_EQ(back->symbol[99], static_cast<std::byte>(99));
}

TEST(wire_header, rejects_foreign_truncated_and_future_packets) {
    auto golden = bytes_of({0x53, 0x48, 0x01, 0x01, 0, 0, 0, 1, 0, 0, 0, 2});
    EXPECT_TRUE(decode_header(golden));

    auto bad_magic = golden;
    bad_magic[0] = std::byte{0x54};
    EXPECT_EQ(decode_header(bad_magic).err().code(), errc::malformed);

    auto future = golden;
    future[2] = std::byte{2};
    EXPECT_EQ(decode_header(future).err().code(), errc::version);

    auto unknown_type = golden;
    unknown_type[3] = std::byte{9};
    EXPECT_EQ(decode_header(unknown_type).err().code(), errc::malformed);

    for (std::size_t n = 0; n < header_size; ++n) {
        EXPECT_EQ(decode_header(std::span(golden).first(n)).err().code(), errc::truncated);
    }
}

TEST(wire_data, rejects_empty_symbol_and_bad_indices) {
    std::vector<std::byte> packet(data_header_size + 8);
    data_packet d;
    d.k = 4;
    d.esi = 1;
    ASSERT_TRUE(encode_data_header(d, packet));
    EXPECT_TRUE(decode_data(packet));
    EXPECT_EQ(decode_data(std::span(packet).first(data_header_size)).err().code(), errc::truncated);
    packet[17] = std::byte{0};  // k = 0
    EXPECT_EQ(decode_data(packet).err().code(), errc::malformed);
    packet[17] = std::byte{4};
    packet[16] = std::byte{255};  // esi 255 is outside GF(2^8)'s 255 symbols
    EXPECT_EQ(decode_data(packet).err().code(), errc::malformed);
}

announce_packet sample_announce() {
    announce_packet a;
    a.hdr.session_id = 0xCAFE;
    a.hdr.seq = 5;
    a.phase = session_phase::main;
    a.k_max = 64;
    a.symbol_size = 1452;
    a.manifest_size = 4096;
    a.block_count = 1000;
    a.position = 10;
    a.receiver_count = 8;
    a.feedback_interval_us = 20000;
    a.rate_bps = 950'000'000;
    for (std::size_t i = 0; i < sha256_size; ++i) {
        a.manifest_sha256[i] = static_cast<std::uint8_t>(i * 7);
    }
    return a;
}

TEST(wire_announce, round_trip_under_the_right_key) {
    std::byte out[announce_size];
    auto n = encode_announce(sample_announce(), key_of("lab key"), out);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, announce_size);
    auto back = decode_announce(out, key_of("lab key"));
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(back->phase, session_phase::main);
    EXPECT_EQ(back->symbol_size, 1452);
    EXPECT_EQ(back->rate_bps, 950'000'000u);
    EXPECT_EQ(back->manifest_sha256, sample_announce().manifest_sha256);
}

TEST(wire_announce, wrong_key_or_any_flipped_bit_fails_the_tag) {
    std::byte out[announce_size];
    ASSERT_TRUE(encode_announce(sample_announce(), key_of("lab key"), out));
    auto wrong = decode_announce(out, key_of("other key"));
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.err().code(), errc::corrupt);
    for (std::size_t byte = header_size; byte < announce_size; ++byte) {
        std::byte copy[announce_size];
        std::memcpy(copy, out, announce_size);
        copy[byte] ^= std::byte{0x10};
        EXPECT_FALSE(decode_announce(copy, key_of("lab key"))) << "flipped byte " << byte;
    }
}

TEST(wire_announce, rejects_wrong_sizes) {
    std::byte out[announce_size + 1] = {};
    ASSERT_TRUE(encode_announce(sample_announce(), key_of("k"), out));
    EXPECT_EQ(decode_announce(std::span(out).first(announce_size - 1), key_of("k")).err().code(),
              errc::truncated);
    EXPECT_EQ(decode_announce(out, key_of("k")).err().code(), errc::malformed);
    std::byte tiny[10];
    EXPECT_EQ(encode_announce(sample_announce(), key_of("k"), tiny).err().code(), errc::no_space);
}

TEST(wire_status, golden_bytes_and_round_trip) {
    status_packet s;
    s.hdr.session_id = 1;
    s.hdr.seq = 2;
    s.receiver_id = 0x11223344;
    s.flags = status_flag_lagging;
    s.watermark = 5;
    s.blocks_complete = 6;
    s.bytes_written = 0x0102030405060708;
    s.loss_ppm = 10000;
    s.drain_rate_kBps = 20000;
    const loss_run runs[] = {{100, 3, 2}, {200, 1, 64}};
    std::byte out[200];
    auto n = encode_status(s, runs, out);
    ASSERT_TRUE(n);
    ASSERT_EQ(*n, status_fixed_size + 2 * loss_run_size);
    // the first run, at its fixed place after the 44-byte fixed part
    EXPECT_EQ(std::vector<std::byte>(out + 44, out + 52), bytes_of({0, 0, 0, 100, 0, 3, 2, 0}));
    auto back = decode_status(std::span(out).first(*n));
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(back->receiver_id, 0x11223344u);
    EXPECT_EQ(back->bytes_written, 0x0102030405060708u);
    ASSERT_EQ(back->run_count, 2);
    EXPECT_EQ(loss_run_at(*back, 1).first_block, 200u);
    EXPECT_EQ(loss_run_at(*back, 1).missing, 64);
}

TEST(wire_status, rejects_runs_that_do_not_fit_or_are_empty) {
    status_packet s;
    const loss_run runs[] = {{100, 3, 2}};
    std::byte out[100];
    auto n = encode_status(s, runs, out);
    ASSERT_TRUE(n);
    EXPECT_EQ(decode_status(std::span(out).first(*n - 1)).err().code(), errc::malformed);
    out[19] = std::byte{2};  // run_count 2, bytes for 1
    EXPECT_EQ(decode_status(std::span(out).first(*n)).err().code(), errc::malformed);
    out[19] = std::byte{1};
    out[50] = std::byte{0};  // missing 0
    EXPECT_EQ(decode_status(std::span(out).first(*n)).err().code(), errc::malformed);
    const loss_run wrapping[] = {{0xFFFFFFF0, 100, 1}};
    ASSERT_TRUE(encode_status(s, wrapping, out));
    EXPECT_EQ(decode_status(std::span(out).first(status_fixed_size + loss_run_size)).err().code(),
              errc::malformed);
}

TEST(wire_control, round_trip_and_forgery) {
    control_packet c;
    c.hdr.session_id = 9;
    c.receiver_id = 42;
    c.command = control_command::fall_back;
    c.rate_floor_kBps = 5000;
    std::byte out[control_size];
    ASSERT_TRUE(encode_control(c, key_of("k"), out));
    auto back = decode_control(out, key_of("k"));
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(back->receiver_id, 42u);
    EXPECT_EQ(back->command, control_command::fall_back);
    out[15] ^= std::byte{1};  // another receiver's id, without the key
    EXPECT_EQ(decode_control(out, key_of("k")).err().code(), errc::corrupt);
}

// Random bytes through every decoder: no crash, and anything accepted stays in bounds.
TEST(wire_hostile, random_packets_never_crash) {
    std::mt19937 rng(1234);
    std::vector<std::byte> packet;
    int accepted = 0;
    for (int i = 0; i < 20000; ++i) {
        packet.resize(rng() % 1600);
        for (auto& b : packet) {
            b = static_cast<std::byte>(rng());
        }
        if (packet.size() >= 4 && i % 2 == 0) {  // half look like ours, to get past the magic
            packet[0] = std::byte{0x53};
            packet[1] = std::byte{0x48};
            packet[2] = std::byte{1};
            packet[3] = static_cast<std::byte>(1 + rng() % 4);
        }
        if (auto d = decode_data(packet)) {
            ++accepted;
            EXPECT_LE(d->symbol.size() + data_header_size, packet.size());
        }
        if (auto s = decode_status(packet)) {
            for (std::size_t r = 0; r < s->run_count; ++r) {
                (void)loss_run_at(*s, r);
            }
        }
        EXPECT_FALSE(decode_announce(packet, key_of("k")));  // no forged tag gets through
        EXPECT_FALSE(decode_control(packet, key_of("k")));
        (void)decode_manifest(packet);
    }
    EXPECT_GT(accepted, 0);  // the generator does reach the decoders' bodies
}

session_manifest sample_manifest() {
    session_manifest m;
    m.target_size = 10u << 20;
    for (std::uint32_t i = 0; i < 3; ++i) {
        chunk_entry c;
        c.sha256.fill(static_cast<std::uint8_t>(i));
        c.raw_size = 1u << 20;
        c.wire_size = i == 1 ? 1000 : c.raw_size;
        c.codec = i == 1 ? chunk_codec::zstd : chunk_codec::raw;
        c.raw_sha256 = c.sha256;
        if (i == 1) {
            c.raw_sha256.fill(0xAB);
        }
        c.target_offset = std::uint64_t{i} * (2u << 20);
        m.chunks.push_back(c);
    }
    return m;
}

TEST(wire_manifest, round_trip) {
    auto bytes = encode_manifest(sample_manifest());
    ASSERT_TRUE(bytes);
    EXPECT_EQ(bytes->size(), manifest_header_size + 3 * manifest_entry_size);
    auto back = decode_manifest(*bytes);
    ASSERT_TRUE(back) << back.err().describe();
    ASSERT_EQ(back->chunks.size(), 3u);
    EXPECT_EQ(back->chunks[1].codec, chunk_codec::zstd);
    EXPECT_EQ(back->chunks[1].wire_size, 1000u);
    EXPECT_EQ(back->chunks[2].target_offset, 4u << 20);
    EXPECT_EQ(back->chunks[1].raw_sha256, sample_manifest().chunks[1].raw_sha256);
    EXPECT_EQ(back->chunks[2].raw_sha256, back->chunks[2].sha256);
    EXPECT_EQ(back->chunks[2].sha256[31], 2);
}

TEST(wire_manifest, rejects_overlap_overflow_and_truncation) {
    auto overlap = sample_manifest();
    overlap.chunks[1].target_offset = (1u << 20) - 1;
    EXPECT_EQ(encode_manifest(overlap).err().code(), errc::invalid_argument);

    auto past_end = sample_manifest();
    past_end.chunks[2].target_offset = past_end.target_size - 10;
    EXPECT_FALSE(encode_manifest(past_end));

    auto raw_mismatch = sample_manifest();
    raw_mismatch.chunks[0].wire_size = 5;
    EXPECT_FALSE(encode_manifest(raw_mismatch));
    auto raw_hashes_differ = sample_manifest();
    raw_hashes_differ.chunks[2].raw_sha256[0] ^= 1;
    EXPECT_FALSE(encode_manifest(raw_hashes_differ));

    auto bytes = *encode_manifest(sample_manifest());
    EXPECT_EQ(decode_manifest(std::span(bytes).first(bytes.size() - 1)).err().code(),
              errc::truncated);
    auto hostile = bytes;
    hostile[19] = std::byte{0xFF};  // chunk_count far beyond the bytes
    EXPECT_FALSE(decode_manifest(hostile));
    auto past = bytes;
    past[manifest_header_size + 2 * manifest_entry_size + 40] = std::byte{0x7F};  // offset huge
    auto r = decode_manifest(past);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().describe().find("chunk 2"), std::string::npos);
}

// Version 3's layout, byte for byte: the image manifest's length where version 2 had a
// reserved word, its bytes after the entries; version 2 is refused by name.
TEST(wire_manifest, image_session_encoding_is_golden) {
    session_manifest m;
    m.target_size = 3u << 20;
    chunk_entry a;
    a.sha256.fill(0x11);
    a.raw_sha256.fill(0x22);
    a.wire_size = 700;
    a.raw_size = 2u << 20;
    a.codec = chunk_codec::zstd;
    chunk_entry b = a;
    b.target_offset = 2u << 20;
    b.raw_size = 1u << 20;
    m.chunks = {a, b};
    m.image_manifest = {std::byte{'S'}, std::byte{'H'}, std::byte{'O'}, std::byte{'A'}, std::byte{'L'}};
    auto bytes = encode_manifest(m);
    ASSERT_TRUE(bytes) << bytes.err().describe();
    ASSERT_EQ(bytes->size(), manifest_header_size + 2 * manifest_entry_size + 5);
    const std::uint8_t header[] = {'S', 'H', 'M', 'F', 0, 3, 0, 0,  0, 0, 0, 0, 0, 0x30, 0, 0,
                                   0,   0,   0,   2,   0, 0, 0, 5};
    EXPECT_EQ(std::memcmp(bytes->data(), header, sizeof header), 0);
    EXPECT_EQ(std::memcmp(bytes->data() + bytes->size() - 5, "SHOAL", 5), 0);
    auto back = decode_manifest(*bytes);
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_TRUE(back->is_image());
    EXPECT_EQ(back->image_manifest, m.image_manifest);
    auto v2 = *bytes;
    v2[5] = std::byte{2};
    EXPECT_EQ(decode_manifest(v2).err().code(), errc::version);
    // An image session must tile [0, target_size): a hole or a short total is refused.
    auto hole = m;
    hole.chunks[1].target_offset += 512;
    hole.target_size += 512;
    EXPECT_FALSE(encode_manifest(hole));
    auto shorter = m;
    shorter.target_size += 1;
    EXPECT_FALSE(encode_manifest(shorter));
    // The same chunks without an image manifest may leave gaps (a flat target).
    hole.image_manifest.clear();
    EXPECT_TRUE(encode_manifest(hole));
}

}  // namespace
}  // namespace shoal::wire
