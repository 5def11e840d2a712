// The image format and store without root: manifest encoding (golden rules, hostile
// bytes), the chunk store (dedup, hash checks, atomic publish, sweep), the builder over
// in-memory sources, and partition tables through libfdisk on memory disks.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "image/builder.h"
#include "image/capture.h"
#include "image/manifest.h"
#include "image/resize.h"
#include "image/restore.h"
#include "image/source.h"
#include "image/store.h"
#include "image/table.h"
#include "image/usedmap.h"

using namespace shoal;
using namespace shoal::image;

namespace {

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/shoal-image-test.XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

std::vector<std::byte> pseudo_random(std::size_t n, std::uint32_t seed, bool compressible) {
    std::vector<std::byte> v(n);
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < n; ++i) {
        v[i] = std::byte(static_cast<std::uint8_t>(compressible ? (i / 64 + seed) % 7 : rng()));
    }
    return v;
}

manifest small_manifest() {
    manifest m;
    m.name = "lab-1";
    m.kind = image_kind::single_disk_resizable;
    m.created_unix_s = 1700000000;
    m.description = "test";
    disk d;
    d.index = 1;
    d.size_bytes = 64 << 20;
    d.source = "/dev/sda";
    d.table.kind = table_kind::mbr;
    d.table.id = "0x12345678";
    d.table.raw.push_back({0, std::vector<std::byte>(512, std::byte{0x55})});
    d.table.entries.push_back({1, 1 << 20, 32 << 20, "83", "", "", 0, true, false});
    region r;
    r.partition_number = 1;
    r.offset_bytes = 1 << 20;
    r.size_bytes = 32 << 20;
    r.fs_size_bytes = 32 << 20;
    r.minimum_size_bytes = 16 << 20;
    r.fs = fs_type::ext4;
    r.block_size_bytes = 4096;
    r.used = {{0, 4 << 20}, {8 << 20, 2 << 20}};
    r.chunk_size_bytes = 4 << 20;
    chunk_ref c1{};
    c1.stored_sha256[0] = 1;
    c1.stored_size = 100;
    c1.raw_size = 4 << 20;
    chunk_ref c2{};
    c2.stored_sha256[0] = 2;
    c2.stored_size = 50;
    c2.raw_size = 2 << 20;
    r.chunks = {c1, c2};
    d.regions.push_back(r);
    m.disks.push_back(d);
    return m;
}

TEST(manifest, round_trips_byte_for_byte) {
    const manifest m = small_manifest();
    auto bytes = encode_manifest(m);
    ASSERT_TRUE(bytes) << bytes.err().describe();
    auto back = decode_manifest(*bytes);
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(*back, m);
    auto again = encode_manifest(*back);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *bytes);
    // The header: magic, version 1, flags 0.
    EXPECT_EQ(std::memcmp(bytes->data(), "SHOALIMG", 8), 0);
    EXPECT_EQ(std::to_integer<int>((*bytes)[8]), 1);
}

TEST(manifest, every_flipped_byte_is_refused) {
    auto bytes = *encode_manifest(small_manifest());
    for (std::size_t i = 0; i < bytes.size(); i += 7) {
        auto bad = bytes;
        bad[i] ^= std::byte{0x40};
        EXPECT_FALSE(decode_manifest(bad)) << "byte " << i;
    }
}

TEST(manifest, every_truncation_is_refused) {
    auto bytes = *encode_manifest(small_manifest());
    for (std::size_t n = 0; n < bytes.size(); n += 5) {
        auto r = decode_manifest(std::span(bytes).first(n), "x.manifest");
        ASSERT_FALSE(r);
        EXPECT_NE(r.err().context().find("x.manifest"), std::string_view::npos);
    }
}

TEST(manifest, checksum_names_damage) {
    auto bytes = *encode_manifest(small_manifest());
    bytes[40] ^= std::byte{1};
    auto r = decode_manifest(bytes, "images/a.manifest");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::corrupt);
    EXPECT_NE(r.err().context().find("images/a.manifest: checksum"), std::string_view::npos);
}

TEST(manifest, encode_refuses_what_decode_would) {
    manifest m = small_manifest();
    m.disks[0].regions[0].used = {{8 << 20, 1 << 20}, {0, 4 << 20}};  // out of order
    EXPECT_FALSE(encode_manifest(m));
    m = small_manifest();
    m.disks[0].regions[0].chunks[1].raw_size = 1;  // chunks no longer cover the used bytes
    EXPECT_FALSE(encode_manifest(m));
    m = small_manifest();
    m.disks[0].regions[0].size_bytes = 128 << 20;  // past the disk
    EXPECT_FALSE(encode_manifest(m));
    m = small_manifest();
    m.name = "../etc";
    EXPECT_FALSE(encode_manifest(m));
    m = small_manifest();
    m.disks[0].regions[0].minimum_size_bytes = 1 << 20;  // below the last used byte
    EXPECT_FALSE(encode_manifest(m));
}

TEST(manifest, version_from_the_future) {
    auto bytes = *encode_manifest(small_manifest());
    bytes[8] = std::byte{2};
    auto r = decode_manifest(bytes);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::version);
}

TEST(extent_builder, coalesces_and_refuses_disorder) {
    extent_builder b;
    ASSERT_TRUE(b.add(0, 4096));
    ASSERT_TRUE(b.add(4096, 4096));
    ASSERT_TRUE(b.add(16384, 4096));
    EXPECT_FALSE(b.add(8192, 10));
    EXPECT_EQ(b.extents().size(), 2u);
    EXPECT_EQ(b.extents()[0], (extent{0, 8192}));
    EXPECT_EQ(b.total_bytes(), 12288u);
}

TEST(store, builds_publishes_dedups_and_sweeps) {
    temp_dir dir;
    auto store = chunk_store::open(dir.path, true);
    ASSERT_TRUE(store) << store.err().describe();
    const auto data = pseudo_random(5 << 20, 1, true);  // two chunks of 4 MiB + 1 MiB
    build_options opt;
    opt.threads = 2;
    std::uint64_t last_progress = 0;
    opt.on_progress = [&](std::uint64_t done) { last_progress = done; };
    for (const char* name : {"a", "b"}) {
        auto b = image_builder::create(**store, name, image_kind::multi_partition_single_disk, opt);
        ASSERT_TRUE(b);
        ASSERT_TRUE((*b)->begin_disk(1, 16 << 20, {}, "mem"));
        memory_source src(data, {});
        ASSERT_TRUE((*b)->add_region(0, 0, src));
        auto m = (*b)->publish();
        ASSERT_TRUE(m) << m.err().describe();
        EXPECT_EQ(m->disks[0].regions[0].chunks.size(), 2u);
    }
    EXPECT_EQ(last_progress, data.size());
    auto names = (*store)->list();
    ASSERT_TRUE(names);
    EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
    auto m = (*store)->load("a");
    ASSERT_TRUE(m) << m.err().describe();
    // Read back, check, and compare the data.
    std::vector<std::byte> got;
    std::vector<std::byte> frame;
    for (const auto& c : m->disks[0].regions[0].chunks) {
        ASSERT_TRUE((*store)->read_chunk(c, frame));
        EXPECT_EQ(sha256_of(frame), c.stored_sha256);
    }
    // Two images, one copy of each chunk.
    std::size_t files = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path + "/chunks")) {
        files += e.is_regular_file() ? 1 : 0;
    }
    EXPECT_EQ(files, 2u);
    store->reset();
    auto ex = chunk_store::open(dir.path, false, chunk_store::lock_mode::exclusive);
    ASSERT_TRUE(ex);
    auto freed = (*ex)->remove("a");
    ASSERT_TRUE(freed);
    EXPECT_EQ(*freed, 0u);  // b still uses both
    freed = (*ex)->remove("b");
    ASSERT_TRUE(freed);
    EXPECT_GT(*freed, 0u);
    EXPECT_FALSE((*ex)->load("b"));
}

TEST(store, damaged_chunk_is_named) {
    temp_dir dir;
    auto store = chunk_store::open(dir.path, true);
    ASSERT_TRUE(store);
    const auto data = pseudo_random(1 << 20, 2, false);
    auto b = image_builder::create(**store, "x", image_kind::raw, {});
    ASSERT_TRUE((*b)->begin_disk(1, 1 << 20, {}, "mem"));
    memory_source src(data, {});
    ASSERT_TRUE((*b)->add_region(0, 0, src));
    auto m = (*b)->publish();
    ASSERT_TRUE(m);
    const auto& c = m->disks[0].regions[0].chunks[0];
    const std::string p = (*store)->chunk_path(c.stored_sha256);
    {
        std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(100);
        f.put('x');
    }
    std::vector<std::byte> frame;
    auto st = (*store)->read_chunk(c, frame);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.err().code(), errc::corrupt);
    EXPECT_NE(st.err().context().find(p), std::string_view::npos);
    truncate(p.c_str(), 10);
    st = (*store)->read_chunk(c, frame);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.err().code(), errc::truncated);
}

// A source that fails half-way: nothing is published and the old image stays.
class failing_source final : public partition_source {
public:
    source_info describe() const override { return {}; }
    std::span<const extent> extents() const override { return _e; }
    result<std::size_t> read(std::span<std::byte> out) override {
        if (_done >= (6u << 20)) {
            return error(errc::truncated, "d1p1.img: stream cut short");
        }
        std::memset(out.data(), 7, out.size());
        _done += out.size();
        return out.size();
    }

private:
    std::vector<extent> _e{{0, 32 << 20}};
    std::size_t _done = 0;
};

TEST(store, failed_build_keeps_previous_version) {
    temp_dir dir;
    auto store = chunk_store::open(dir.path, true);
    ASSERT_TRUE(store);
    const auto data = pseudo_random(1 << 20, 3, true);
    {
        auto b = image_builder::create(**store, "keep", image_kind::raw, {});
        ASSERT_TRUE((*b)->begin_disk(1, 1 << 20, {}, "mem"));
        memory_source src(data, {});
        ASSERT_TRUE((*b)->add_region(0, 0, src));
        ASSERT_TRUE((*b)->publish());
    }
    auto before = (*store)->load("keep");
    ASSERT_TRUE(before);
    auto b = image_builder::create(**store, "keep", image_kind::raw, {});
    ASSERT_TRUE((*b)->begin_disk(1, 64 << 20, {}, "mem"));
    failing_source bad;
    auto st = (*b)->add_region(0, 0, bad);
    ASSERT_FALSE(st);
    EXPECT_NE(st.err().context().find("d1p1.img"), std::string_view::npos);
    auto after = (*store)->load("keep");
    ASSERT_TRUE(after);
    EXPECT_EQ(*after, *before);
}

TEST(table, sfdisk_dump_parses_and_writes_back) {
    const std::string dump =
        "label: dos\nlabel-id: 0xdeadbeef\nunit: sectors\n\n"
        "/dev/sda1 : start=2048, size=20480, type=83, bootable\n"
        "/dev/sda2 : start=22528, size=40960, type=7\n";
    auto t = parse_sfdisk_dump(dump, 64 << 20, "d1.partitions");
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->kind, table_kind::mbr);
    EXPECT_EQ(t->id, "0xdeadbeef");
    ASSERT_EQ(t->entries.size(), 2u);
    EXPECT_EQ(t->entries[0].start_bytes, 2048u * 512);
    EXPECT_EQ(t->entries[0].size_bytes, 20480u * 512);
    EXPECT_TRUE(t->entries[0].bootable);
    EXPECT_EQ(t->entries[1].type, "7");
    ASSERT_FALSE(t->raw.empty());
    EXPECT_EQ(t->raw[0].offset_bytes, 0u);
    EXPECT_EQ(std::to_integer<int>(t->raw[0].bytes[510]), 0x55);
    // The raw MBR parses to the same table.
    auto again = parse_partition_table(t->raw[0].bytes, 64 << 20, "d1.mbr");
    ASSERT_TRUE(again) << again.err().describe();
    EXPECT_EQ(again->entries, t->entries);
}

TEST(table, gpt_written_for_another_size_keeps_ids) {
    const std::string dump =
        "label: gpt\nlabel-id: 0F0E0D0C-0B0A-0908-0706-050403020100\nunit: sectors\n\n"
        "p1 : start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, "
        "uuid=11111111-2222-3333-4444-555555555555, name=\"EFI\"\n"
        "p2 : start=10240, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, "
        "uuid=66666666-7777-8888-9999-AAAAAAAAAAAA, name=\"root\"\n";
    auto t = parse_sfdisk_dump(dump, 64 << 20, "d1.partitions");
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->kind, table_kind::gpt);
    ASSERT_EQ(t->entries.size(), 2u);
    EXPECT_EQ(t->entries[1].name, "root");
    EXPECT_EQ(t->entries[1].uuid, "66666666-7777-8888-9999-AAAAAAAAAAAA");
    EXPECT_GE(t->raw.size(), 4u);  // PMBR, header, entries, backup
    // Onto a 128 MiB disk with partition 2 grown to the end.
    partition_table grown = *t;
    grown.entries[1].size_bytes = 0;  // to the end
    char tmpl[] = "/tmp/shoal-gpt.XXXXXX";
    const int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    unlink(tmpl);
    ASSERT_EQ(ftruncate(fd, 128 << 20), 0);
    auto st = write_partition_table(fd, grown, 128 << 20, false, "target");
    ASSERT_TRUE(st) << st.err().describe();
    auto back = read_partition_table(fd, "target");
    close(fd);
    ASSERT_TRUE(back) << back.err().describe();
    EXPECT_EQ(back->id, t->id);
    ASSERT_EQ(back->entries.size(), 2u);
    EXPECT_EQ(back->entries[0], t->entries[0]);
    EXPECT_EQ(back->entries[1].uuid, t->entries[1].uuid);
    EXPECT_EQ(back->entries[1].start_bytes, t->entries[1].start_bytes);
    // Ends at the last 1 MiB boundary (libfdisk's grain) before the backup GPT.
    EXPECT_EQ(back->entries[1].start_bytes + back->entries[1].size_bytes, 127ull << 20);
}

// --- Real filesystems, made without root: mkfs.ext4 -d, mkfs.vfat + mcopy, mkntfs + ntfscp.

bool have(const char* tool) {
    return std::system(fmt::format("command -v {} >/dev/null 2>&1", tool).c_str()) == 0;
}

// Runs a bash command line; 0 when it succeeded, else 1 (its output is printed).
int sh(const std::string& cmd) {
    auto r = run_program({"bash", "-c", "set -eo pipefail; " + cmd});
    if (!r) {
        std::fprintf(stderr, "%s\n", r.err().describe().c_str());
        return 1;
    }
    return 0;
}

std::string sh_out(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    for (std::size_t n; p != nullptr && (n = fread(buf, 1, sizeof buf, p)) > 0;) {
        out.append(buf, n);
    }
    if (p != nullptr) {
        pclose(p);
    }
    return out;
}

std::uint64_t used_of(const used_map& m) {
    std::uint64_t n = 0;
    for (const auto& e : m.extents) {
        n += e.size_bytes;
    }
    return n;
}

// Captures disk into a store, exports it to a new file, returns the file's path.
std::string capture_and_export(const temp_dir& dir, const std::string& disk, image_kind kind) {
    auto store = chunk_store::open(dir.path + "/store", true);
    EXPECT_TRUE(store);
    capture_options c;
    c.disks = {disk};
    c.kind = kind;
    c.shrink = false;
    auto m = capture_image(**store, "t", c);
    EXPECT_TRUE(m) << m.err().describe();
    const std::string out = dir.path + "/out.img";
    restore_options r;
    r.targets = {out};
    auto sum = restore_image(**store, *m, r);
    EXPECT_TRUE(sum) << sum.err().describe();
    EXPECT_EQ(sum->written_bytes, m->used_bytes());
    auto rep = verify_image(**store, *m, 2, nullptr);
    EXPECT_TRUE(rep);
    EXPECT_EQ(rep->bad_chunks, 0u);
    return out;
}

TEST(real_fs, ext4_used_map_matches_dumpe2fs_and_round_trips) {
    if (!have("mkfs.ext4") || !have("debugfs") || !have("sfdisk")) {
        GTEST_SKIP() << "e2fsprogs or sfdisk missing";
    }
    temp_dir dir;
    const std::string disk = dir.path + "/disk.img";
    ASSERT_EQ(
        sh(fmt::format(
            "mkdir -p {0}/ref && cp -r /usr/share/doc/bash {0}/ref/ && head -c 1000000 "
            "/dev/urandom > {0}/ref/random && truncate -s 48M {1} && echo 'start=2048, "
            "type=83' | sfdisk -q {1} && mkfs.ext4 -q -F -d {0}/ref -E offset=1048576 {1} 40M",
            dir.path, disk)),
        0);
    const int fd = open(disk.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    auto m = read_used_map(fd, disk, 1 << 20, 47 << 20);
    close(fd);
    ASSERT_TRUE(m) << m.err().describe();
    EXPECT_EQ(m->info.fs, fs_type::ext4);
    EXPECT_EQ(m->info.fs_size_bytes, 40u << 20);
    // dumpe2fs counts the same: blocks minus free blocks.
    const std::string h = sh_out(fmt::format("dumpe2fs -h '{}?offset=1048576' 2>/dev/null", disk));
    auto field = [&](const char* name) {
        const auto at = h.find(name);
        return at == std::string::npos
                   ? 0ull
                   : std::strtoull(h.c_str() + h.find(':', at) + 1, nullptr, 10);
    };
    EXPECT_EQ(used_of(*m), (field("Block count:") - field("Free blocks:")) * field("Block size:"));
    EXPECT_LT(used_of(*m), 12u << 20);  // only what is used, not the 40 MiB

    const std::string out = capture_and_export(dir, disk, image_kind::multi_partition_single_disk);
    EXPECT_EQ(sh(fmt::format("e2fsck -fn '{}?offset=1048576'", out)), 0);
    EXPECT_EQ(
        sh(fmt::format("mkdir {0}/got && debugfs -R 'rdump / {0}/got' '{1}?offset=1048576' && "
                       "diff -r {0}/ref {0}/got -x lost+found",
                       dir.path, out)),
        0);
    EXPECT_EQ(sh(fmt::format("cmp <(sfdisk -d {} | grep start | cut -d: -f2) <(sfdisk -d {} | grep "
                             "start | cut -d: -f2)",
                             disk, out)),
              0);
}

TEST(real_fs, fat_used_map_agrees_with_mtools_and_round_trips) {
    if (!have("mkfs.vfat") || !have("mcopy") || !have("fsck.vfat")) {
        GTEST_SKIP() << "dosfstools or mtools missing";
    }
    for (const char* bits : {"12", "16", "32"}) {
        SCOPED_TRACE(bits);
        temp_dir dir;
        const std::string disk = dir.path + "/disk.img";
        const int size_kib = std::string(bits) == "32"   ? 40960
                             : std::string(bits) == "16" ? 20480
                                                         : 4096;
        ASSERT_EQ(
            sh(fmt::format(
                "mkdir -p {0}/ref && cp -r /usr/share/doc/bash {0}/ref/ && truncate -s {2}K {1} "
                "&& mkfs.vfat -F {3} {1} && mcopy -s -i {1} {0}/ref/bash ::/",
                dir.path, disk, size_kib, bits)),
            0);
        const int fd = open(disk.c_str(), O_RDONLY);
        ASSERT_GE(fd, 0);
        auto m = read_used_map(fd, disk, 0, std::uint64_t(size_kib) << 10);
        close(fd);
        ASSERT_TRUE(m) << m.err().describe();
        EXPECT_EQ(fs_name(m->info.fs), std::string("fat") + bits);
        // Used plus mtools' free bytes is the filesystem, but for a last partial cluster.
        const std::string dirout = sh_out(fmt::format("mdir -i {} ::/ 2>/dev/null", disk));
        const auto at = dirout.find(" bytes free");
        ASSERT_NE(at, std::string::npos) << dirout;
        const auto start =
            dirout.rfind('\n', at) + 1;  // "  20 910 080 bytes free": digits in groups
        std::string digits;
        for (auto i = start; i < at; ++i) {
            if (dirout[i] >= '0' && dirout[i] <= '9') {
                digits += dirout[i];
            }
        }
        const std::uint64_t free_bytes = std::strtoull(digits.c_str(), nullptr, 10);
        const std::uint64_t rest = m->info.fs_size_bytes - used_of(*m) - free_bytes;
        EXPECT_LT(rest, 64u << 10) << "used " << used_of(*m) << " free " << free_bytes;

        const std::string out =
            capture_and_export(dir, disk, image_kind::multi_partition_single_disk);
        EXPECT_EQ(sh(fmt::format("fsck.vfat -n {}", out)), 0);
        EXPECT_EQ(sh(fmt::format(
                      "mkdir {0}/got && mcopy -s -i {1} ::/bash {0}/got/ && diff -r {0}/ref/bash "
                      "{0}/got/bash",
                      dir.path, out)),
                  0);
    }
}

TEST(real_fs, ntfs_round_trips) {
    if (!have("mkntfs") || !have("ntfscp") || !have("ntfscat") || !have("ntfsfix")) {
        GTEST_SKIP() << "ntfs-3g tools missing";
    }
    temp_dir dir;
    const std::string disk = dir.path + "/ntfs.img";
    ASSERT_EQ(
        sh(fmt::format("head -c 2000000 /dev/urandom > {0}/random && truncate -s 24M {1} && "
                       "mkntfs -F -Q -q {1} && ntfscp -f {1} {0}/random random && ntfscp -f {1} "
                       "/usr/share/common-licenses/GPL-2 gpl",
                       dir.path, disk)),
        0);
    const int fd = open(disk.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    auto m = read_used_map(fd, disk, 0, 24 << 20);
    close(fd);
    ASSERT_TRUE(m) << m.err().describe();
    EXPECT_EQ(m->info.fs, fs_type::ntfs);
    EXPECT_GT(used_of(*m), 2000000u);
    EXPECT_LT(used_of(*m), 12u << 20);
    const std::string out = capture_and_export(dir, disk, image_kind::multi_partition_single_disk);
    EXPECT_EQ(sh(fmt::format("ntfsfix -n {} | grep 'alternate boot sector... OK' >/dev/null", out)),
              0);
    EXPECT_EQ(sh(fmt::format("ntfscat {} random | cmp - {}/random", out, dir.path)), 0);
    EXPECT_EQ(sh(fmt::format("ntfscat {} gpl | cmp - /usr/share/common-licenses/GPL-2", out)), 0);
}

}  // namespace
