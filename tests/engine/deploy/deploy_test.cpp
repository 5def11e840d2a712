// Image sessions without a network: the chunk -> extent map, the session manifest that
// carries an image (strict both ways), the sender's preparation from a store (a damaged
// store is refused before anything is sent), and the receiver's writer over a real ext4
// disk image captured with `image::capture_image`: the result equals `restore_image`'s
// byte for byte, the table appears only once every chunk is on the disk, resume keeps
// what is there, and bytes that fail their hash never reach the target.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "deploy/image_session.h"
#include "image/capture.h"
#include "image/resize.h"
#include "image/restore.h"
#include "image/store.h"
#include "session/writer.h"
#include "wire/manifest.h"

using namespace shoal;
using namespace shoal::deploy;
using image::piece;

namespace {

constexpr std::uint64_t mib = 1u << 20;

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/shoal-deploy-test.XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

image::chunk_ref chunk(std::uint8_t tag, std::uint32_t raw_size) {
    image::chunk_ref c{};
    c.stored_sha256[0] = tag;
    c.raw_sha256[0] = static_cast<std::uint8_t>(tag + 100);
    c.stored_size = 1000 + tag;
    c.raw_size = raw_size;
    return c;
}

// Two disks; disk 1 has a head region and a partition whose used extents the chunks
// straddle; disk 2 is raw.
image::manifest two_disk_manifest() {
    image::manifest m;
    m.name = "lab";
    m.kind = image::image_kind::multi_partition_all_disks;
    image::disk d1;
    d1.index = 1;
    d1.size_bytes = 64 * mib;
    d1.table.kind = image::table_kind::mbr;
    d1.table.id = "0x12345678";
    d1.table.entries.push_back({1, mib, 32 * mib, "83", "", "", 0, false, false});
    image::region head;
    head.partition_number = 0;
    head.offset_bytes = 0;
    head.size_bytes = mib;
    head.fs_size_bytes = mib;
    head.minimum_size_bytes = mib;
    head.used = {{0, mib}};
    head.chunk_size_bytes = 2 * mib;
    head.chunks = {chunk(1, mib)};
    image::region p1;
    p1.partition_number = 1;
    p1.offset_bytes = mib;
    p1.size_bytes = 32 * mib;
    p1.fs_size_bytes = 32 * mib;
    p1.minimum_size_bytes = 32 * mib;
    p1.fs = image::fs_type::ext4;
    p1.block_size_bytes = 4096;
    // 3 MiB + 1 MiB + 512 KiB used: chunks of 2 MiB straddle the first gap.
    p1.used = {{0, 3 * mib}, {5 * mib, mib}, {10 * mib, mib / 2}};
    p1.chunk_size_bytes = 2 * mib;
    p1.chunks = {chunk(2, 2 * mib), chunk(3, 2 * mib), chunk(4, mib / 2)};
    d1.regions = {head, p1};
    image::disk d2;
    d2.index = 2;
    d2.size_bytes = 8 * mib;
    image::region raw;
    raw.size_bytes = 8 * mib;
    raw.fs_size_bytes = 8 * mib;
    raw.minimum_size_bytes = 8 * mib;
    raw.used = {{0, 8 * mib}};
    raw.chunk_size_bytes = 4 * mib;
    raw.chunks = {chunk(5, 4 * mib), chunk(6, 4 * mib)};
    d2.regions = {raw};
    m.disks = {d1, d2};
    return m;
}

bool have(const char* tool) {
    return std::system(fmt::format("command -v {} >/dev/null 2>&1", tool).c_str()) == 0;
}

int sh(const std::string& cmd) {
    auto r = image::run_program({"bash", "-c", "set -eo pipefail; " + cmd});
    if (!r) {
        std::fprintf(stderr, "%s\n", r.err().describe().c_str());
        return 1;
    }
    return 0;
}

std::vector<char> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A 64 MiB disk image: an MBR with one Linux partition at 1 MiB holding ext4 with files.
std::string make_ext4_disk(const temp_dir& dir) {
    const std::string disk = dir.path + "/disk.img";
    const std::string files = dir.path + "/files";
    std::filesystem::create_directories(files + "/etc");
    {
        std::ofstream(files + "/etc/motd") << "room 204\n";
        std::ofstream big(files + "/big.bin", std::ios::binary);
        std::mt19937 rng(7);
        for (int i = 0; i < (3 << 20) / 4; ++i) {
            const std::uint32_t v = rng();
            big.write(reinterpret_cast<const char*>(&v), 4);
        }
        std::ofstream text(files + "/notes.txt");
        for (int i = 0; i < 100000; ++i) {
            text << "line " << i << " of the lab's notes\n";
        }
    }
    EXPECT_EQ(sh(fmt::format("truncate -s 64M {0} && echo 'start=2048, type=83' | sfdisk -q {0} && "
                             "mkfs.ext4 -q -F -E offset=1048576 -d {1} {0} 60M",
                             disk, files)),
              0);
    return disk;
}

// Feeds chunks (by session index, in the order given) through a writer until each is
// reported; returns the reports.
std::vector<session::write_done> feed(
    session::writer& w, const session::prepared_session& p, const std::vector<std::uint32_t>& order,
    const std::vector<std::span<const std::byte>>* wire = nullptr) {
    std::vector<session::write_done> out;
    std::size_t next = 0;
    const std::int64_t deadline = time::monotonic_ns() + 60 * time::ns_per_s;
    while (out.size() < order.size() && time::monotonic_ns() < deadline && w.failure() == nullptr) {
        if (next < order.size() &&
            w.submit(order[next],
                     wire != nullptr ? (*wire)[order[next]] : p.chunk_wire[order[next]])) {
            ++next;
        }
        session::write_done d[16];
        const std::size_t n = w.collect(d, 16);
        out.insert(out.end(), d, d + n);
        if (n == 0) {
            time::sleep_for_ns(1'000'000);
        }
    }
    return out;
}

}  // namespace

TEST(image_layout, chunks_map_to_their_extents_across_gaps_and_disks) {
    const auto m = two_disk_manifest();
    ASSERT_TRUE(image::encode_manifest(m)) << image::encode_manifest(m).err().describe();
    const image_layout layout(m);
    ASSERT_EQ(layout.chunk_count(), 6u);
    std::vector<piece> p;
    layout.pieces(0, p);  // the head
    EXPECT_EQ(p, (std::vector<piece>{{0, 0, mib}}));
    layout.pieces(1, p);  // p1 stream [0, 2M): inside the first extent
    EXPECT_EQ(p, (std::vector<piece>{{mib, 0, 2 * mib}}));
    layout.pieces(2, p);  // stream [2M, 4M): the first extent's last MiB, the second's
    EXPECT_EQ(p, (std::vector<piece>{{3 * mib, 0, mib}, {6 * mib, mib, mib}}));
    layout.pieces(3, p);  // stream [4M, 4.5M): the third extent
    EXPECT_EQ(p, (std::vector<piece>{{11 * mib, 0, mib / 2}}));
    EXPECT_EQ(layout.place(4).disk, 1u);
    layout.pieces(5, p);  // disk 2, second chunk
    EXPECT_EQ(p, (std::vector<piece>{{4 * mib, 0, 4 * mib}}));

    const auto s = layout.session_manifest();
    ASSERT_EQ(s.chunks.size(), 6u);
    const std::uint64_t offsets[] = {
        0, mib, 3 * mib, 5 * mib, 5 * mib + mib / 2, 9 * mib + mib / 2};
    for (std::size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(s.chunks[i].target_offset, offsets[i]) << i;
        EXPECT_EQ(s.chunks[i].sha256, layout.ref(static_cast<std::uint32_t>(i)).stored_sha256);
        EXPECT_EQ(s.chunks[i].raw_sha256, layout.ref(static_cast<std::uint32_t>(i)).raw_sha256);
        EXPECT_EQ(s.chunks[i].codec, wire::chunk_codec::zstd);
    }
    EXPECT_EQ(s.target_size, m.used_bytes());
}

TEST(image_session, manifest_carries_the_image_and_both_sides_are_strict) {
    const auto m = two_disk_manifest();
    auto s = image_layout(m).session_manifest();
    s.image_manifest = *image::encode_manifest(m);
    auto bytes = wire::encode_manifest(s);
    ASSERT_TRUE(bytes) << bytes.err().describe();
    auto back = wire::decode_manifest(*bytes);
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(back->image_manifest, s.image_manifest);
    auto image = image_of_session(*back);
    ASSERT_TRUE(image) << image.err().describe();
    EXPECT_EQ(*image, m);

    // Every truncation is refused; so is a byte more.
    for (std::size_t n = 0; n < bytes->size(); n += 997) {
        EXPECT_FALSE(wire::decode_manifest(std::span(*bytes).first(n))) << n;
    }
    auto longer = *bytes;
    longer.push_back(std::byte{0});
    EXPECT_FALSE(wire::decode_manifest(longer));

    // An image session's chunks tile the used streams: a gap is refused on both sides.
    auto gap = s;
    gap.chunks[2].target_offset += 4096;
    EXPECT_EQ(wire::encode_manifest(gap).err().code(), errc::invalid_argument);
    auto short_total = s;
    short_total.target_size += 1;
    EXPECT_FALSE(wire::encode_manifest(short_total));

    // A chunk that is not the image's (another hash) is refused by the receiver's check.
    auto other = s;
    other.chunks[3].sha256[5] ^= 1;
    auto r = image_of_session(other);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().describe().find("session chunk 3"), std::string::npos) << r.err().describe();
    // A damaged image manifest (its own checksum) is refused.
    auto damaged = s;
    damaged.image_manifest[40] ^= std::byte{1};
    EXPECT_EQ(image_of_session(damaged).err().code(), errc::corrupt);
    // A plain session is not an image.
    wire::session_manifest plain;
    EXPECT_FALSE(image_of_session(plain));
}

class image_session_disk : public ::testing::Test {
protected:
    void SetUp() override {
        if (!have("mkfs.ext4") || !have("sfdisk")) {
            GTEST_SKIP() << "e2fsprogs or sfdisk missing";
        }
        disk = make_ext4_disk(dir);
        auto s = image::chunk_store::open(dir.path + "/store", true);
        ASSERT_TRUE(s) << s.err().describe();
        store = std::move(*s);
        image::capture_options c;
        c.disks = {disk};
        c.kind = image::image_kind::multi_partition_single_disk;
        c.shrink = false;
        c.build.chunk_size_bytes = 256u << 10;  // many chunks, some straddling extents
        auto m = image::capture_image(*store, "lab", c);
        ASSERT_TRUE(m) << m.err().describe();
        manifest = *m;
        // What `shoal image restore` makes of it, to compare against.
        image::restore_options r;
        r.targets = {dir.path + "/restored.img"};
        auto sum = image::restore_image(*store, manifest, r);
        ASSERT_TRUE(sum) << sum.err().describe();
    }

    temp_dir dir;
    std::string disk;
    std::unique_ptr<image::chunk_store> store;
    image::manifest manifest;
};

TEST_F(image_session_disk, writer_writes_what_restore_writes_table_last_and_resumes) {
    auto p = prepare_image_session(*store, "lab", 2);
    ASSERT_TRUE(p) << p.err().describe();
    const std::size_t n = p->chunk_wire.size();
    ASSERT_GT(n, 4u);
    // What receivers decode from the wire.
    auto wire_manifest = wire::decode_manifest(p->manifest_bytes);
    ASSERT_TRUE(wire_manifest) << wire_manifest.err().describe();
    auto image = image_of_session(*wire_manifest);
    ASSERT_TRUE(image) << image.err().describe();
    // Some chunk must straddle extents, or the map is not exercised.
    const image_layout layout(*image);
    std::size_t straddling = 0;
    std::vector<piece> pieces;
    for (std::uint32_t i = 0; i < n; ++i) {
        layout.pieces(i, pieces);
        straddling += pieces.size() > 1;
    }
    EXPECT_GT(straddling, 0u);

    const std::string target = dir.path + "/received.img";
    // An old disk's content at the target: a stale table must not survive.
    ASSERT_EQ(sh(fmt::format("cp {} {}", disk, target)), 0);
    auto placement = open_image_targets(*image, {target}, 0, false);
    ASSERT_TRUE(placement) << placement.err().describe();
    auto opened = session::writer::open(std::move(*placement), *wire_manifest);
    ASSERT_TRUE(opened) << opened.err().describe();
    auto w = std::move(*opened);
    // Every chunk but the first (the head, holding the MBR), last to first.
    std::vector<std::uint32_t> order;
    for (std::uint32_t i = static_cast<std::uint32_t>(n) - 1; i >= 1; --i) {
        order.push_back(i);
    }
    auto done = feed(*w, *p, order);
    ASSERT_EQ(done.size(), n - 1);
    for (const auto& d : done) {
        EXPECT_TRUE(d.written);
    }
    // Not complete yet: no partition table on the target.
    EXPECT_NE(sh(fmt::format("sfdisk -d {} >/dev/null 2>&1", target)), 0);
    done = feed(*w, *p, {0});
    ASSERT_EQ(done.size(), 1u);
    EXPECT_TRUE(done[0].written);
    EXPECT_EQ(w->failure(), nullptr);
    w.reset();
    EXPECT_EQ(file_bytes(target), file_bytes(dir.path + "/restored.img"));
    EXPECT_EQ(sh(fmt::format("sfdisk -d {} | grep -q 'start=        2048'", target)), 0);

    // Resume on the complete target: every chunk found in place, nothing to receive.
    auto again = open_image_targets(*image, {target}, 0, true);
    ASSERT_TRUE(again);
    auto opened2 = session::writer::open(std::move(*again), *wire_manifest, 0, true);
    ASSERT_TRUE(opened2);
    auto w2 = std::move(*opened2);
    std::vector<session::write_done> present;
    const std::int64_t deadline = time::monotonic_ns() + 30 * time::ns_per_s;
    while (present.size() < n && time::monotonic_ns() < deadline) {
        session::write_done d[64];
        const std::size_t k = w2->collect(d, 64);
        present.insert(present.end(), d, d + k);
        time::sleep_for_ns(1'000'000);
    }
    ASSERT_EQ(present.size(), n);
    for (const auto& d : present) {
        EXPECT_TRUE(d.present);
    }
    w2.reset();
    EXPECT_EQ(file_bytes(target), file_bytes(dir.path + "/restored.img"));
}

TEST_F(image_session_disk, bytes_that_fail_their_hash_never_reach_the_target) {
    auto p = prepare_image_session(*store, "lab", 1);
    ASSERT_TRUE(p) << p.err().describe();
    auto wire_manifest = wire::decode_manifest(p->manifest_bytes);
    ASSERT_TRUE(wire_manifest);
    auto image = image_of_session(*wire_manifest);
    ASSERT_TRUE(image);
    const std::string target = dir.path + "/received.img";
    auto placement = open_image_targets(*image, {target}, 0, false);
    ASSERT_TRUE(placement) << placement.err().describe();
    auto opened = session::writer::open(std::move(*placement), *wire_manifest);
    ASSERT_TRUE(opened);
    auto w = std::move(*opened);
    // Chunk 1 (the partition's first) with one flipped byte.
    std::vector<std::vector<std::byte>> copies(p->chunk_wire.size());
    std::vector<std::span<const std::byte>> wire(p->chunk_wire.size());
    for (std::size_t i = 0; i < wire.size(); ++i) {
        copies[i].assign(p->chunk_wire[i].begin(), p->chunk_wire[i].end());
        wire[i] = copies[i];
    }
    copies[1][copies[1].size() / 2] ^= std::byte{0x40};
    auto done = feed(*w, *p, {1}, &wire);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_FALSE(done[0].written);
    w.reset();
    // The partition's first bytes on the target are still the new file's zeros.
    std::vector<piece> pieces;
    image_layout(*image).pieces(1, pieces);
    const auto bytes = file_bytes(target);
    ASSERT_GE(bytes.size(), pieces[0].offset_bytes + pieces[0].size);
    EXPECT_TRUE(std::all_of(
        bytes.begin() + static_cast<std::ptrdiff_t>(pieces[0].offset_bytes),
        bytes.begin() + static_cast<std::ptrdiff_t>(pieces[0].offset_bytes + pieces[0].size),
        [](char c) { return c == 0; }));
}

TEST_F(image_session_disk, damaged_store_is_refused_before_anything_is_sent) {
    const auto& c = manifest.disks[0].regions[1].chunks[0];
    const std::string path = store->chunk_path(c.stored_sha256);
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(10);
        f.put('\x5a');
    }
    auto p = prepare_image_session(*store, "lab");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.err().code(), errc::corrupt);
    EXPECT_NE(p.err().describe().find(path.substr(path.size() - 20)), std::string::npos)
        << p.err().describe();
    std::filesystem::remove(path);
    p = prepare_image_session(*store, "lab");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.err().code(), errc::not_found);
    EXPECT_EQ(prepare_image_session(*store, "no-such-image").err().code(), errc::not_found);
}

TEST_F(image_session_disk, target_too_small_is_refused_untouched) {
    const std::string target = dir.path + "/small.img";
    {
        std::ofstream f(target, std::ios::binary);
        const std::string block(mib, '\xaa');
        for (int i = 0; i < 16; ++i) {
            f << block;
        }
    }
    auto r = open_image_targets(manifest, {target}, 0, false);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::no_space);
    EXPECT_NE(r.err().describe().find("needs at least"), std::string::npos) << r.err().describe();
    const auto bytes = file_bytes(target);
    EXPECT_EQ(bytes.size(), 16 * mib);
    EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == '\xaa'; }));
    // One target for a one-disk image.
    EXPECT_EQ(open_image_targets(manifest, {target, target}, 0, false).err().code(),
              errc::invalid_argument);
}
