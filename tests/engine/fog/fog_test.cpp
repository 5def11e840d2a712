// The FOG import readers: partclone streams (golden bytes from the real partclone 0.3.23
// and hostile input), gzip/zstd pieces, FOG's sidecars and directory layout.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "fog/byte_stream.h"
#include "fog/fog_dir.h"
#include "fog/partclone.h"
#include "fog/sidecars.h"

namespace shoal::fog {
namespace {

using bytes = std::vector<std::byte>;

std::string data_path(const std::string& name) { return std::string(FOG_TEST_DATA) + "/" + name; }

bytes read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    EXPECT_TRUE(f.good()) << path;
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    bytes out(c.size());
    std::memcpy(out.data(), c.data(), c.size());
    return out;
}

void write_file(const std::string& path, std::span<const std::byte> b) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_text(const std::string& path, std::string_view s) {
    write_file(path, {reinterpret_cast<const std::byte*>(s.data()), s.size()});
}

// Everything a stream holds, through decoded_stream (detects gzip/zstd/none).
result<bytes> decode_all(std::span<const std::byte> in, const std::string& name = "mem") {
    auto d = decoded_stream::open(std::make_unique<memory_stream>(in, name));
    if (!d) {
        return d.err();
    }
    bytes out;
    std::byte buf[7777];  // an odd size, so reads end at odd places
    for (;;) {
        auto n = (*d)->read(buf);
        if (!n) {
            return n.err();
        }
        if (*n == 0) {
            return out;
        }
        out.insert(out.end(), buf, buf + *n);
    }
}

// ---- an independent encoder of partclone streams, for hostile and synthetic cases ----

// Bit by bit, without a table, so it shares nothing with the code under test.
std::uint32_t ref_crc(std::uint32_t c, std::span<const std::byte> b) {
    for (std::byte x : b) {
        c ^= std::to_integer<std::uint32_t>(x);
        for (int k = 0; k < 8; ++k) {
            c = (c & 1u) != 0 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        }
    }
    return c;
}

void put(bytes& out, std::uint64_t v, int size) {
    for (int i = 0; i < size; ++i) {
        out.push_back(static_cast<std::byte>(v >> (8 * i)));
    }
}
void put_text(bytes& out, std::string_view s, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(i < s.size() ? static_cast<std::byte>(s[i]) : std::byte{0});
    }
}

struct pc_params {
    std::string_view image_version = "0002";
    std::string_view fs = "EXTFS";
    std::uint32_t block_size = 512;
    std::uint64_t total_blocks = 40;
    std::uint64_t device_size = 0;  // 0: total_blocks * block_size
    std::uint32_t options_size = 18;
    std::uint16_t options_version = 2;
    std::uint16_t endian = 0xC0DE;
    std::uint16_t checksum_mode = 0x20;
    std::uint16_t checksum_size = 4;
    std::uint32_t blocks_per_checksum = 3;
    std::uint8_t reseed = 1;
    std::uint8_t bitmap_mode = 1;
};

bytes header_v2(const pc_params& p) {
    bytes h;
    put_text(h, "partclone-image", 16);
    put_text(h, "0.3.23", 14);
    put_text(h, p.image_version, 4);
    put(h, p.endian, 2);
    put_text(h, p.fs, 16);
    put(h, p.device_size != 0 ? p.device_size : p.total_blocks * p.block_size, 8);
    put(h, p.total_blocks, 8);
    put(h, 0, 8);  // used blocks by the fs: informative
    put(h, 0, 8);
    put(h, p.block_size, 4);
    put(h, p.options_size, 4);
    put(h, p.options_version, 2);
    put(h, 64, 2);
    put(h, p.checksum_mode, 2);
    put(h, p.checksum_size, 2);
    put(h, p.blocks_per_checksum, 4);
    put(h, p.reseed, 1);
    put(h, p.bitmap_mode, 1);
    put(h, ref_crc(0xFFFFFFFF, h), 4);
    return h;
}

// Block i's bytes: a pattern that names the block, so misplaced data shows.
bytes block_bytes(std::uint64_t i, std::uint32_t size) {
    bytes b(size);
    for (std::uint32_t k = 0; k < size; ++k) {
        b[k] = static_cast<std::byte>((i * 131 + k * 7 + (k >> 8)) & 0xFF);
    }
    return b;
}

bytes make_stream(const pc_params& p, const std::vector<bool>& used) {
    bytes s = header_v2(p);
    bytes bitmap((p.total_blocks + 7) / 8);
    for (std::uint64_t i = 0; i < p.total_blocks; ++i) {
        if (used[i]) {
            bitmap[i / 8] |= static_cast<std::byte>(1u << (i % 8));
        }
    }
    s.insert(s.end(), bitmap.begin(), bitmap.end());
    put(s, ref_crc(0xFFFFFFFF, bitmap), 4);
    std::uint32_t crc = 0xFFFFFFFF;
    std::uint32_t in_crc = 0;
    for (std::uint64_t i = 0; i < p.total_blocks; ++i) {
        if (!used[i]) {
            continue;
        }
        const bytes b = block_bytes(i, p.block_size);
        s.insert(s.end(), b.begin(), b.end());
        if (p.checksum_mode == 0) {
            continue;
        }
        crc = ref_crc(crc, b);
        if (++in_crc == p.blocks_per_checksum) {
            put(s, crc, 4);
            in_crc = 0;
            if (p.reseed != 0) {
                crc = 0xFFFFFFFF;
            }
        }
    }
    if (p.checksum_mode != 0 && in_crc > 0) {
        put(s, crc, 4);
    }
    return s;
}

std::vector<bool> pattern(std::uint64_t n) {
    std::vector<bool> used(n);
    for (std::uint64_t i = 0; i < n; ++i) {
        used[i] = (i % 5 != 2) && (i < 20 || i > 27);  // runs, gaps and a hole
    }
    return used;
}

// Reads a whole partclone stream; returns the device image (unused blocks zero).
result<bytes> restore(std::span<const std::byte> stream, partclone_header* header_out = nullptr) {
    memory_stream in(stream, "test.img");
    auto r = partclone_reader::open(in, "test.img");
    if (!r) {
        return r.err();
    }
    if (header_out != nullptr) {
        *header_out = r->header();
    }
    const std::uint32_t bs = r->header().block_size_bytes;
    bytes dev(r->header().total_blocks * bs);
    std::uint64_t block = 0;
    std::uint64_t left_in_run = 0;
    for (;;) {
        auto span = r->next();
        if (!span) {
            return span.err();
        }
        if (span->empty()) {
            break;
        }
        EXPECT_EQ(span->size() % bs, 0u);
        for (std::size_t off = 0; off < span->size(); off += bs) {
            if (left_in_run == 0) {
                auto run = r->bitmap().next_run(block);
                EXPECT_GT(run.count, 0u);
                block = run.first;
                left_in_run = run.count;
            }
            std::memcpy(dev.data() + block * bs, span->data() + off, bs);
            ++block;
            --left_in_run;
        }
    }
    return dev;
}

// ---- CRC and golden bytes from the real partclone ----

TEST(partclone_crc, matches_partclone_rules) {
    const char* s = "123456789";
    const std::span<const std::byte> b(reinterpret_cast<const std::byte*>(s), 9);
    // The standard CRC-32 check value is 0xCBF43926; partclone skips the final inversion.
    EXPECT_EQ(partclone_crc32(partclone_crc32_seed, b), ~0xCBF43926u);
    EXPECT_EQ(partclone_crc32(partclone_crc32_seed, b), ref_crc(0xFFFFFFFF, b));
    // Updating in two parts is updating once.
    EXPECT_EQ(partclone_crc32(partclone_crc32(partclone_crc32_seed, b.first(4)), b.subspan(4)),
              partclone_crc32(partclone_crc32_seed, b));
}

TEST(partclone_header, golden_ext4_header_from_partclone_0_3_23) {
    const bytes h = read_file(data_path("ext4-header.bin"));
    ASSERT_EQ(h.size(), partclone_v2_header_size);
    EXPECT_EQ(partclone_crc32(partclone_crc32_seed, std::span(h).first(106)), 0x74c51106u);
    // The header alone: the bitmap that should follow is missing.
    memory_stream in(h, "ext4.img");
    auto r = partclone_reader::open(in, "ext4.img");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::truncated);
    EXPECT_NE(r.err().context().find("ext4.img"), std::string_view::npos);
    EXPECT_NE(r.err().context().find("byte 110"), std::string_view::npos);
    EXPECT_NE(r.err().context().find("bitmap"), std::string_view::npos);
}

TEST(partclone_header, golden_ext4_header_fields) {
    bytes s = read_file(data_path("ext4-header.bin"));
    // Give it an all-free bitmap of 16384 blocks so that open() succeeds.
    const bytes bitmap(16384 / 8);
    s.insert(s.end(), bitmap.begin(), bitmap.end());
    put(s, ref_crc(0xFFFFFFFF, bitmap), 4);
    memory_stream in(s, "ext4.img");
    auto r = partclone_reader::open(in, "ext4.img");
    ASSERT_TRUE(r) << r.err().describe();
    const partclone_header& ph = r->header();
    EXPECT_EQ(ph.image_version, 2);
    EXPECT_EQ(ph.partclone_version, "0.3.23");
    EXPECT_EQ(ph.fs, "EXTFS");
    EXPECT_EQ(ph.device_size_bytes, 16u << 20);
    EXPECT_EQ(ph.total_blocks, 16384u);
    EXPECT_EQ(ph.used_blocks_fs, 0x915u);
    EXPECT_EQ(ph.block_size_bytes, 1024u);
    EXPECT_EQ(ph.checksum, partclone_checksum::crc32);
    EXPECT_EQ(ph.checksum_size_bytes, 4);
    EXPECT_EQ(ph.blocks_per_checksum, 1024u);  // 1 MiB / 1 KiB blocks
    EXPECT_TRUE(ph.reseed);
    EXPECT_EQ(ph.cpu_bits, 64);
    EXPECT_EQ(r->bitmap().used_count(), 0u);
    auto end = r->next();
    ASSERT_TRUE(end) << end.err().describe();
    EXPECT_TRUE(end->empty());
}

TEST(partclone_header, every_flipped_header_byte_is_refused) {
    const bytes good = read_file(data_path("ext4-header.bin"));
    for (std::size_t i = 0; i < good.size(); ++i) {
        bytes h = good;
        h[i] ^= std::byte{0x01};
        memory_stream in(h, "x.img");
        auto r = partclone_reader::open(in, "x.img");
        ASSERT_FALSE(r) << "byte " << i;
        // The CRC catches a flip anywhere; the magic and the version are judged first.
        const errc c = r.err().code();
        EXPECT_TRUE(c == errc::corrupt || c == errc::malformed || c == errc::version ||
                    c == errc::unsupported)
            << i << ": " << r.err().describe();
    }
}

// Decodes each real stream and checks every used block against the filesystem it came from.
class real_partclone_fat : public ::testing::TestWithParam<const char*> {};

TEST_P(real_partclone_fat, restores_the_used_blocks_of_the_original) {
    auto original = decode_all(read_file(data_path("small.img.gz")), "small.img.gz");
    ASSERT_TRUE(original) << original.err().describe();
    ASSERT_EQ(original->size(), 4u << 20);
    const std::string name = std::string("small.") + GetParam() + ".pc.zst";
    auto stream = decode_all(read_file(data_path(name)), name);
    ASSERT_TRUE(stream) << stream.err().describe();
    partclone_header ph;
    auto dev = restore(*stream, &ph);
    ASSERT_TRUE(dev) << dev.err().describe();
    EXPECT_EQ(ph.fs, "FAT16");
    EXPECT_EQ(ph.block_size_bytes, 512u);
    EXPECT_EQ(ph.device_size_bytes, 4u << 20);
    const std::string v = GetParam();
    if (v == "a0") {
        EXPECT_EQ(ph.checksum, partclone_checksum::none);
    } else {
        EXPECT_EQ(ph.checksum, partclone_checksum::crc32);
        EXPECT_EQ(ph.blocks_per_checksum, v == "def" ? 2048u : 7u);
        EXPECT_EQ(ph.reseed, v != "k7K");
    }
    // Re-read the bitmap to compare only used blocks (free ones hold stale bytes).
    memory_stream in(*stream, name);
    auto r = partclone_reader::open(in, name);
    ASSERT_TRUE(r);
    std::uint64_t used = 0;
    for (std::uint64_t b = 0; b < ph.total_blocks; ++b) {
        if (!r->bitmap().test(b)) {
            continue;
        }
        ++used;
        ASSERT_EQ(std::memcmp(dev->data() + b * 512, original->data() + b * 512, 512), 0)
            << "block " << b;
    }
    EXPECT_GT(used, 30u);  // boot sector, two FATs, root directory, three files
    // The files themselves are in there: numbers.txt starts with "1\n2\n3\n".
    const std::string_view all(reinterpret_cast<const char*>(dev->data()), dev->size());
    EXPECT_NE(all.find("1\n2\n3\n4\n5\n"), std::string_view::npos);
    EXPECT_NE(all.find("hello\n"), std::string_view::npos);
}

INSTANTIATE_TEST_SUITE_P(variants, real_partclone_fat, ::testing::Values("def", "k7", "k7K", "a0"));

TEST(partclone_stream, a_flipped_data_byte_fails_the_crc_of_its_group) {
    auto stream = decode_all(read_file(data_path("small.k7.pc.zst")));
    ASSERT_TRUE(stream);
    // The first used block's data starts after the header, bitmap (8192 blocks) and CRC.
    const std::size_t data_at = 110 + 8192 / 8 + 4;
    for (std::size_t at : {data_at, data_at + 512 * 7 + 4 + 100, stream->size() - 6}) {
        bytes bad = *stream;
        bad[at] ^= std::byte{0x40};
        auto dev = restore(bad);
        ASSERT_FALSE(dev) << at;
        EXPECT_EQ(dev.err().code(), errc::corrupt) << dev.err().describe();
        EXPECT_NE(dev.err().context().find("CRC32"), std::string_view::npos);
        EXPECT_NE(dev.err().context().find("test.img"), std::string_view::npos);
    }
}

// ---- synthetic streams: the rules, and hostile input ----

TEST(partclone_stream, synthetic_round_trips_for_each_checksum_rule) {
    for (std::uint32_t bpc : {1u, 2u, 3u, 7u, 100u}) {
        for (std::uint8_t reseed : {0, 1}) {
            pc_params p;
            p.blocks_per_checksum = bpc;
            p.reseed = reseed;
            const auto used = pattern(p.total_blocks);
            auto dev = restore(make_stream(p, used));
            ASSERT_TRUE(dev) << bpc << " " << int(reseed) << ": " << dev.err().describe();
            for (std::uint64_t i = 0; i < p.total_blocks; ++i) {
                const bytes want = used[i] ? block_bytes(i, 512) : bytes(512);
                ASSERT_EQ(std::memcmp(dev->data() + i * 512, want.data(), 512), 0) << i;
            }
        }
    }
    pc_params none;
    none.checksum_mode = 0;
    none.checksum_size = 0;
    none.blocks_per_checksum = 0;
    auto dev = restore(make_stream(none, pattern(none.total_blocks)));
    ASSERT_TRUE(dev) << dev.err().describe();
}

TEST(partclone_stream, every_truncation_is_an_error_naming_the_offset) {
    pc_params p;
    const bytes full = make_stream(p, pattern(p.total_blocks));
    ASSERT_TRUE(restore(full));
    for (std::size_t n = 0; n < full.size(); ++n) {
        auto dev = restore(std::span(full).first(n));
        ASSERT_FALSE(dev) << n;
        ASSERT_EQ(dev.err().code(), errc::truncated) << n << ": " << dev.err().describe();
        ASSERT_NE(dev.err().context().find("test.img"), std::string_view::npos);
        ASSERT_NE(dev.err().context().find(fmt::format("byte {}", n)), std::string_view::npos)
            << dev.err().describe();
    }
}

TEST(partclone_stream, trailing_bytes_and_wrong_bitmap_crc_are_refused) {
    pc_params p;
    bytes s = make_stream(p, pattern(p.total_blocks));
    s.push_back(std::byte{0});
    auto dev = restore(s);
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.err().code(), errc::malformed);
    EXPECT_NE(dev.err().context().find("after the last used block"), std::string_view::npos);

    bytes b = make_stream(p, pattern(p.total_blocks));
    b[110 + 2] ^= std::byte{0x80};  // a bitmap bit
    dev = restore(b);
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.err().code(), errc::corrupt);
    EXPECT_NE(dev.err().context().find("bitmap CRC32"), std::string_view::npos);
}

struct hostile_case {
    const char* what;
    pc_params p;
    errc code;
    const char* says;
};

TEST(partclone_stream, hostile_headers_get_clear_errors) {
    std::vector<hostile_case> cases;
    auto add = [&](const char* what, auto change, errc code, const char* says) {
        pc_params p;
        change(p);
        cases.push_back({what, p, code, says});
    };
    add(
        "version", [](pc_params& p) { p.image_version = "0003"; }, errc::version, "0003");
    add(
        "big endian", [](pc_params& p) { p.endian = 0xDEC0; }, errc::unsupported, "big-endian");
    add(
        "options size", [](pc_params& p) { p.options_size = 20; }, errc::unsupported, "options");
    add(
        "options version", [](pc_params& p) { p.options_version = 3; }, errc::unsupported,
        "options");
    add(
        "byte bitmap", [](pc_params& p) { p.bitmap_mode = 8; }, errc::unsupported, "bitmap mode");
    add(
        "xxh64",
        [](pc_params& p) {
            p.checksum_mode = 0x30;
            p.checksum_size = 8;
        },
        errc::unsupported, "XXH64");
    add(
        "unknown checksum", [](pc_params& p) { p.checksum_mode = 0x21; }, errc::malformed,
        "checksum mode");
    add(
        "crc32 size 8", [](pc_params& p) { p.checksum_size = 8; }, errc::malformed, "CRC32");
    add(
        "crc32 every 0", [](pc_params& p) { p.blocks_per_checksum = 0; }, errc::malformed, "CRC32");
    add(
        "none with interval",
        [](pc_params& p) {
            p.checksum_mode = 0;
            p.checksum_size = 0;
        },
        errc::malformed, "no checksum");
    add(
        "block size 0",
        [](pc_params& p) {
            p.block_size = 0;
            p.device_size = 1;
        },
        errc::malformed, "block size");
    add(
        "block size huge", [](pc_params& p) { p.block_size = 1u << 30; }, errc::malformed,
        "block size");
    add(
        "too many blocks", [](pc_params& p) { p.total_blocks = 1ull << 40; }, errc::unsupported,
        "blocks");
    add(
        "blocks past device",
        [](pc_params& p) {
            p.total_blocks = 100;
            p.device_size = 100 * 512 - 1;
        },
        errc::malformed, "do not fit");
    add(
        "group too big", [](pc_params& p) { p.blocks_per_checksum = 1u << 30; }, errc::unsupported,
        "MiB");
    for (const hostile_case& c : cases) {
        // The header alone, with a valid CRC: the field checks must refuse it, not the CRC.
        const bytes h = header_v2(c.p);
        memory_stream in(h, "hostile.img");
        auto r = partclone_reader::open(in, "hostile.img");
        ASSERT_FALSE(r) << c.what;
        EXPECT_EQ(r.err().code(), c.code) << c.what << ": " << r.err().describe();
        EXPECT_NE(r.err().context().find(c.says), std::string_view::npos)
            << c.what << ": " << r.err().describe();
        EXPECT_NE(r.err().context().find("hostile.img"), std::string_view::npos);
    }
}

TEST(partclone_stream, bad_magic_and_partimage_are_named) {
    bytes junk(200, std::byte{'x'});
    memory_stream in(junk, "d1p1.img");
    auto r = partclone_reader::open(in, "d1p1.img");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::malformed);
    EXPECT_NE(r.err().context().find("not a partclone image"), std::string_view::npos);
    bytes pi(200, std::byte{0});
    std::memcpy(pi.data(), "PaRtImAgE-VoLuMe", 16);
    memory_stream in2(pi, "d1p1.img");
    r = partclone_reader::open(in2, "d1p1.img");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::unsupported);
    EXPECT_NE(r.err().context().find("partimage"), std::string_view::npos);
}

TEST(partclone_stream, a_huge_bitmap_over_a_short_stream_costs_little) {
    pc_params p;
    p.total_blocks = partclone_total_blocks_max;  // a 1 GiB bitmap, promised
    const bytes h = header_v2(p);
    memory_stream in(h, "big.img");
    auto r = partclone_reader::open(in, "big.img");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::truncated);  // and no 1 GiB allocation on the way
}

// Format 0001, from partclone's rules: a byte per block, "BiTmAgIc", and after each used
// block a CRC fed the block's first byte block-size times, never reseeded.
TEST(partclone_stream, format_0001_round_trips) {
    const std::uint32_t bs = 512;
    const std::uint64_t total = 30;
    const auto used = pattern(total);
    bytes s;
    put_text(s, "partclone-image", 15);
    put_text(s, "EXTFS", 15);
    put_text(s, "0001", 4);
    put(s, 0, 2);
    put(s, bs, 4);
    put(s, total * bs + 7, 8);  // partclone trusts blocks × size over this
    put(s, total, 8);
    put(s, 0, 8);
    s.resize(partclone_v1_header_size);
    for (std::uint64_t i = 0; i < total; ++i) {
        s.push_back(used[i] ? std::byte{1} : std::byte{0});
    }
    put_text(s, "BiTmAgIc", 8);
    std::uint32_t crc = 0xFFFFFFFF;
    for (std::uint64_t i = 0; i < total; ++i) {
        if (!used[i]) {
            continue;
        }
        const bytes b = block_bytes(i, bs);
        s.insert(s.end(), b.begin(), b.end());
        const bytes first(bs, b[0]);
        crc = ref_crc(crc, first);
        put(s, crc, 4);
    }
    partclone_header ph;
    auto dev = restore(s, &ph);
    ASSERT_TRUE(dev) << dev.err().describe();
    EXPECT_EQ(ph.image_version, 1);
    EXPECT_EQ(ph.device_size_bytes, total * bs);
    for (std::uint64_t i = 0; i < total; ++i) {
        const bytes want = used[i] ? block_bytes(i, bs) : bytes(bs);
        ASSERT_EQ(std::memcmp(dev->data() + i * bs, want.data(), bs), 0) << i;
    }
    bytes bad = s;
    bad[partclone_v1_header_size + 3] = std::byte{2};
    EXPECT_EQ(restore(bad).err().code(), errc::malformed);
    bad = s;
    bad[partclone_v1_header_size + total] = std::byte{'b'};
    EXPECT_EQ(restore(bad).err().code(), errc::corrupt);
}

TEST(block_bitmap, runs_and_counts_ignore_bits_past_the_end) {
    std::vector<std::uint8_t> bits = {0b11110000, 0xFF, 0x00, 0b11111101};
    block_bitmap bm(bits, 27);  // the last byte's bits 3..7 are past the end
    EXPECT_EQ(bm.used_count(), 4u + 8u + 2u);
    auto r = bm.next_run(0);
    EXPECT_EQ(r.first, 4u);
    EXPECT_EQ(r.count, 12u);
    r = bm.next_run(16);
    EXPECT_EQ(r.first, 24u);
    EXPECT_EQ(r.count, 1u);
    r = bm.next_run(25);
    EXPECT_EQ(r.first, 26u);
    EXPECT_EQ(r.count, 1u);
    r = bm.next_run(27);
    EXPECT_EQ(r.count, 0u);
}

// ---- decompression ----

bytes gzip_member(std::span<const std::byte> in) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    bytes out(deflateBound(&z, in.size()) + 64);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

// With a content checksum, as the zstd command writes by default.
bytes zstd_frame(std::span<const std::byte> in) {
    bytes out(ZSTD_compressBound(in.size()));
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    const std::size_t n = ZSTD_compress2(c, out.data(), out.size(), in.data(), in.size());
    ZSTD_freeCCtx(c);
    EXPECT_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

bytes random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    bytes b(n);
    for (auto& x : b) {
        x = static_cast<std::byte>(rng() % 7 == 0 ? rng() : 'a' + rng() % 3);
    }
    return b;
}

TEST(decoded_stream, concatenated_gzip_members_and_zstd_frames_decode_whole) {
    const bytes a = random_bytes(3 << 20, 1);
    const bytes b = random_bytes(100000, 2);
    bytes want = a;
    want.insert(want.end(), b.begin(), b.end());
    for (auto codec : {gzip_member, zstd_frame}) {
        bytes in = codec(a);
        const bytes second = codec(b);
        in.insert(in.end(), second.begin(), second.end());
        auto out = decode_all(in);
        ASSERT_TRUE(out) << out.err().describe();
        EXPECT_EQ(*out, want);
    }
    auto out = decode_all(want);  // no magic: stored as is
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, want);
}

TEST(decoded_stream, truncated_or_corrupt_compressed_data_is_an_error) {
    const bytes a = random_bytes(1 << 20, 3);
    for (auto codec : {gzip_member, zstd_frame}) {
        const bytes full = codec(a);
        for (std::size_t cut : {std::size_t{10}, full.size() / 2, full.size() - 1}) {
            auto out = decode_all(std::span(full).first(cut), "d1p1.img.000");
            ASSERT_FALSE(out) << cut;
            EXPECT_EQ(out.err().code(), errc::truncated) << out.err().describe();
            EXPECT_NE(out.err().context().find("d1p1.img.000"), std::string_view::npos);
        }
        bytes bad = full;
        bad[bad.size() / 2] ^= std::byte{0xFF};
        bad[bad.size() / 2 + 1] ^= std::byte{0x55};
        auto out = decode_all(bad);
        ASSERT_FALSE(out);
        EXPECT_EQ(out.err().code(), errc::corrupt) << out.err().describe();
    }
    bytes trailing = gzip_member(a);
    trailing.push_back(std::byte{'x'});
    trailing.push_back(std::byte{'y'});
    auto out = decode_all(trailing);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.err().code(), errc::malformed);
    EXPECT_NE(out.err().context().find("not gzip"), std::string_view::npos);
}

// ---- pieces and directories ----

class temp_dir {
public:
    temp_dir() {
        char t[] = "/tmp/shoal-fog-test-XXXXXX";
        _path = ::mkdtemp(t);
    }
    ~temp_dir() { std::filesystem::remove_all(_path); }
    const std::string& path() const { return _path; }
    std::string operator/(const std::string& name) const { return _path + "/" + name; }

private:
    std::string _path;
};

std::vector<std::string> names_of(const fog_stream& s) {
    std::vector<std::string> out;
    for (const auto& p : s.pieces) {
        out.push_back(std::filesystem::path(p).filename());
    }
    return out;
}

TEST(fog_pieces, both_layouts_are_found_in_order) {
    temp_dir d;
    const bytes piece(1000, std::byte{1});
    for (const char* n :
         {"d1p1.img.000", "d1p1.img.001", "d1p1.img.002", "d1p2.img", "d1p3.img", "d1p3.img.001"}) {
        write_file(d / n,
                   std::span(piece).first(std::string_view(n) == "d1p1.img.002" ? 10 : 1000));
    }
    auto s = find_pieces(d.path(), "d1p1.img");
    ASSERT_TRUE(s) << s.err().describe();
    EXPECT_EQ(names_of(*s),
              (std::vector<std::string>{"d1p1.img.000", "d1p1.img.001", "d1p1.img.002"}));
    EXPECT_EQ(s->size_bytes, 2010u);
    s = find_pieces(d.path(), "d1p2.img");
    ASSERT_TRUE(s);
    EXPECT_EQ(names_of(*s), (std::vector<std::string>{"d1p2.img"}));
    s = find_pieces(d.path(), "d1p3.img");  // FOG renames .000 once a capture completes
    ASSERT_TRUE(s);
    EXPECT_EQ(names_of(*s), (std::vector<std::string>{"d1p3.img", "d1p3.img.001"}));
    s = find_pieces(d.path(), "d1p4.img");
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->empty());
}

TEST(fog_pieces, gaps_leftovers_and_short_pieces_are_named) {
    temp_dir d;
    const bytes piece(1000, std::byte{1});
    write_file(d / "d1p1.img.000", piece);
    write_file(d / "d1p1.img.002", piece);
    auto s = find_pieces(d.path(), "d1p1.img");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().code(), errc::not_found);
    EXPECT_NE(s.err().context().find("d1p1.img.001 is missing"), std::string_view::npos)
        << s.err().describe();

    write_file(d / "d1p2.img.001", piece);
    s = find_pieces(d.path(), "d1p2.img");
    ASSERT_FALSE(s);
    EXPECT_NE(s.err().context().find("d1p2.img.000 is missing"), std::string_view::npos);

    write_file(d / "d1p3.img", piece);
    write_file(d / "d1p3.img.000", piece);
    s = find_pieces(d.path(), "d1p3.img");
    ASSERT_FALSE(s);
    EXPECT_NE(s.err().context().find("both"), std::string_view::npos);

    write_file(d / "d1p4.img.000", piece);
    write_file(d / "d1p4.img.001", std::span(piece).first(999));
    write_file(d / "d1p4.img.002", std::span(piece).first(5));
    s = find_pieces(d.path(), "d1p4.img");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().code(), errc::truncated);
    EXPECT_NE(s.err().context().find("d1p4.img.001"), std::string_view::npos);
}

TEST(fog_pieces, a_stream_cut_after_its_last_piece_says_so) {
    // zstd of a partclone stream split in three; the last piece is lost: the split looks
    // complete, but the stream ends inside a frame.
    pc_params p;
    p.total_blocks = 4000;
    std::vector<bool> used(p.total_blocks, true);
    const bytes z = zstd_frame(make_stream(p, used));
    temp_dir d;
    const std::size_t piece = z.size() / 3 + 1;
    write_file(d / "d1p1.img.000", std::span(z).first(piece));
    write_file(d / "d1p1.img.001", std::span(z).subspan(piece, piece));
    auto s = find_pieces(d.path(), "d1p1.img");
    ASSERT_TRUE(s) << s.err().describe();
    auto pieces = piece_stream::open(s->pieces);
    ASSERT_TRUE(pieces);
    auto dec = decoded_stream::open(std::move(*pieces));
    ASSERT_TRUE(dec);
    auto r = partclone_reader::open(**dec, "d1p1.img");
    ASSERT_TRUE(r) << r.err().describe();
    for (;;) {
        auto span = r->next();
        if (!span) {
            EXPECT_EQ(span.err().code(), errc::truncated);
            EXPECT_NE(span.err().context().find("d1p1.img.001"), std::string_view::npos)
                << span.err().describe();
            return;
        }
        ASSERT_FALSE(span->empty()) << "a cut stream read to the end";
    }
}

// ---- sidecars ----

TEST(sidecars, real_sfdisk_dumps_parse) {
    const bytes dos = read_file(data_path("dos.partitions"));
    auto t =
        parse_sfdisk_dump({reinterpret_cast<const char*>(dos.data()), dos.size()}, "d1.partitions");
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->label, "dos");
    EXPECT_EQ(t->label_id, "0xdf5d3994");
    EXPECT_EQ(t->sector_size_bytes, 512u);
    ASSERT_EQ(t->partitions.size(), 3u);
    EXPECT_EQ(t->partitions[0].number, 1u);
    EXPECT_EQ(t->partitions[0].start_sector, 2048u);
    EXPECT_EQ(t->partitions[0].size_sectors, 32768u);
    EXPECT_EQ(t->partitions[0].type, "83");
    EXPECT_EQ(t->partitions[1].type, "c");
    EXPECT_EQ(t->partitions[2].type, "7");
    EXPECT_EQ(t->partitions[2].start_sector, 67584u);

    const bytes gpt = read_file(data_path("gpt.partitions"));
    t = parse_sfdisk_dump({reinterpret_cast<const char*>(gpt.data()), gpt.size()}, "d1.partitions");
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->label, "gpt");
    EXPECT_EQ(t->label_id, "23949080-C272-E04F-ABD6-345532DC0660");
    EXPECT_EQ(t->first_lba, 2048u);
    EXPECT_EQ(t->last_lba, 131038u);
    ASSERT_EQ(t->partitions.size(), 3u);
    EXPECT_EQ(t->partitions[0].type, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    EXPECT_EQ(t->partitions[0].name, "root");
    EXPECT_EQ(t->partitions[0].uuid, "68F40349-EAF3-E142-83D4-9C712E9D2BF5");
    EXPECT_EQ(t->partitions[2].attrs, "RequiredPartition");
}

TEST(sidecars, bad_sfdisk_dumps_are_refused_with_the_file_name) {
    const char* bad[] = {
        "",
        "garbage\n",
        "label: sun\n",
        "label: dos\nunit: cylinders\n",
        "label: dos\nsector-size: 1000\n",
        "label: dos\n/dev/sda1 : start=2048, size=100, type=83\n"
        "/dev/sda2 : start=2100, size=100, type=83\n",  // overlap
        "label: dos\n/dev/sda1 : start=2048, size=100, type=83\n"
        "/dev/sda1 : start=4096, size=100, type=83\n",  // twice
        "label: dos\n/dev/sda1 : start=2048, size=0, type=83\n",
        "label: dos\nfoo : bar=baz\n",
    };
    for (const char* text : bad) {
        auto t = parse_sfdisk_dump(text, "d1.partitions");
        ASSERT_FALSE(t) << text;
        EXPECT_NE(t.err().context().find("d1.partitions"), std::string_view::npos)
            << t.err().describe();
    }
    // A logical partition inside its extended one is not an overlap.
    auto t = parse_sfdisk_dump(
        "label: dos\nunit: sectors\n/dev/sda1 : start=2048, size=2048, type=83\n"
        "/dev/sda2 : start=4096, size=8192, type=5\n"
        "/dev/sda5 : start=6144, size=2048, type=83\n",
        "d1.partitions");
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->partitions.back().number, 5u);
}

TEST(sidecars, small_files) {
    auto f = parse_fixed_size_partitions(":3:1:3\n", "d1.fixed_size_partitions");
    ASSERT_TRUE(f);
    EXPECT_EQ(*f, (std::vector<std::uint32_t>{1, 3}));
    f = parse_fixed_size_partitions(std::string_view("\0\n", 2), "x");
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->empty());
    EXPECT_FALSE(parse_fixed_size_partitions("1:x", "x"));
    EXPECT_FALSE(parse_fixed_size_partitions("0", "x"));
    EXPECT_FALSE(parse_fixed_size_partitions("99999999999", "x"));

    auto t = parse_original_fstypes("/dev/sda1 ntfs\n/dev/nvme0n1p3 extfs\n", "x");
    ASSERT_TRUE(t) << t.err().describe();
    ASSERT_EQ(t->size(), 2u);
    EXPECT_EQ((*t)[1].number, 3u);
    EXPECT_EQ((*t)[1].fstype, "extfs");
    EXPECT_FALSE(parse_original_fstypes("/dev/sda ntfs\n", "x"));
    EXPECT_FALSE(parse_original_fstypes("ntfs\n", "x"));

    auto s = parse_swap_uuids("5 0a1b2c3d-0000-4000-8000-123456789abc\n", "x");
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)[0].number, 5u);
    EXPECT_FALSE(parse_swap_uuids("5 not-a-uuid!\n", "x"));

    auto size = parse_disk_size("2:500107862016\n", 2, "d2.size");
    ASSERT_TRUE(size);
    EXPECT_EQ(*size, 500107862016u);
    EXPECT_FALSE(parse_disk_size("1:500107862016", 2, "d2.size"));
    EXPECT_FALSE(parse_disk_size("2:", 2, "d2.size"));
}

bytes an_mbr(std::size_t size) {
    bytes m(size);
    m[510] = std::byte{0x55};
    m[511] = std::byte{0xAA};
    return m;
}

TEST(fog_dir, a_resizable_image_with_swap_and_an_uncaptured_partition) {
    temp_dir d;
    write_file(d / "d1.mbr", an_mbr(1 << 20));
    write_text(d / "d1.partitions",
               "label: dos\nunit: sectors\n\n/dev/sda1 : start=2048, size=204800, type=7, "
               "bootable\n/dev/sda2 : start=206848, size=8000000, type=7\n"
               "/dev/sda3 : start=8206848, size=2000000, type=82\n"
               "/dev/sda4 : start=10206848, size=100000, type=83\n");
    write_text(d / "d1.minimum.partitions",
               "label: dos\nunit: sectors\n\n/dev/sda1 : start=2048, size=204800, type=7, "
               "bootable\n/dev/sda2 : start=206848, size=3000000, type=7\n"
               "/dev/sda3 : start=8206848, size=2000000, type=82\n"
               "/dev/sda4 : start=10206848, size=100000, type=83\n");
    write_text(d / "d1.fixed_size_partitions", ":1");
    write_text(d / "d1.original.fstypes", "/dev/sda2 ntfs\n");
    write_text(d / "d1.original.swapuuids", "3 0a1b2c3d-0000-4000-8000-123456789abc\n");
    write_text(d / "d1p1.img", "x");
    write_text(d / "d1p2.img", "y");
    auto img = read_fog_image(d.path());
    ASSERT_TRUE(img) << img.err().describe();
    EXPECT_EQ(img->kind, fog_image_kind::resizable);
    ASSERT_EQ(img->disks.size(), 1u);
    const fog_disk& disk = img->disks[0];
    EXPECT_EQ(disk.mbr.size(), 1u << 20);
    EXPECT_FALSE(disk.mbr_is_sgdisk_backup);
    ASSERT_EQ(disk.partitions.size(), 4u);
    EXPECT_EQ(disk.partitions[0].content, fog_content::image);
    EXPECT_TRUE(disk.partitions[0].fixed_size);
    EXPECT_TRUE(disk.table.partitions[0].bootable);
    EXPECT_EQ(disk.partitions[1].content, fog_content::image);
    EXPECT_EQ(disk.partitions[1].fog_fstype, "ntfs");
    EXPECT_EQ(disk.partitions[1].minimum_size_sectors, 3000000u);
    EXPECT_EQ(names_of(disk.partitions[1].stream), (std::vector<std::string>{"d1p2.img"}));
    EXPECT_EQ(disk.partitions[2].content, fog_content::swap);
    EXPECT_EQ(disk.partitions[2].swap_uuid, "0a1b2c3d-0000-4000-8000-123456789abc");
    EXPECT_EQ(disk.partitions[3].content, fog_content::none);
}

TEST(fog_dir, kinds_and_broken_directories) {
    {
        temp_dir d;  // raw: one stream named after the image
        write_text(d / "win10.000", "a");
        write_text(d / "win10.001", "b");
        auto img = read_fog_image(d.path());
        ASSERT_TRUE(img) << img.err().describe();
        EXPECT_EQ(img->kind, fog_image_kind::raw);
        EXPECT_EQ(img->raw_name, "win10");
        EXPECT_EQ(img->raw.pieces.size(), 2u);
    }
    {
        temp_dir d;  // all disks: two of them
        for (int n : {1, 2}) {
            write_file(d / fmt::format("d{}.mbr", n), an_mbr(512));
            write_text(d / fmt::format("d{}.partitions", n),
                       "label: dos\n/dev/sdX1 : start=2048, size=4096, type=83\n");
            write_text(d / fmt::format("d{}p1.img", n), "x");
            write_text(d / fmt::format("d{}.size", n), fmt::format("{}:1048576000", n));
        }
        auto img = read_fog_image(d.path());
        ASSERT_TRUE(img) << img.err().describe();
        EXPECT_EQ(img->kind, fog_image_kind::all_disks);
        EXPECT_EQ(img->disks.size(), 2u);
        EXPECT_EQ(img->disks[1].size_bytes.value_or(0), 1048576000u);
    }
    auto expect_error = [](const temp_dir& d, errc code, std::string_view says) {
        auto img = read_fog_image(d.path());
        ASSERT_FALSE(img) << says;
        EXPECT_EQ(img.err().code(), code) << img.err().describe();
        EXPECT_NE(img.err().context().find(says), std::string_view::npos) << img.err().describe();
    };
    {
        temp_dir d;
        write_text(d / "d1p1.img", "x");
        write_file(d / "d1.mbr", an_mbr(512));
        expect_error(d, errc::not_found, "d1.partitions is missing");
    }
    {
        temp_dir d;
        write_text(d / "d1.partitions", "label: dos\n/dev/sdX1 : start=2048, size=4096, type=83\n");
        write_text(d / "d1p1.img", "x");
        expect_error(d, errc::not_found, "d1.mbr is missing");
        write_file(d / "d1.mbr", bytes(512));
        expect_error(d, errc::malformed, "55 AA");
        write_file(d / "d1.mbr", an_mbr(512));
        write_text(d / "d1p2.img", "x");
        expect_error(d, errc::malformed, "d1p2.img has no partition 2");
    }
    {
        temp_dir d;
        write_text(d / "d1.partitions", "label: dos\n/dev/sdX1 : start=2048, size=4096, type=8e\n");
        write_file(d / "d1.mbr", an_mbr(512));
        write_text(d / "d1p1.lvm", "LVMFORMAT 2");
        expect_error(d, errc::unsupported, "LVM");
    }
    {
        temp_dir d;
        write_text(d / "d1.partitions",
                   "label: gpt\n/dev/sdX1 : start=2048, size=4096, "
                   "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n");
        write_file(d / "d1.mbr", an_mbr(512));
        expect_error(d, errc::malformed, "sgdisk");
    }
    {
        temp_dir d;
        expect_error(d, errc::not_found, "not a FOG image");
    }
}

}  // namespace
}  // namespace shoal::fog
