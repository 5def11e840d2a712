// The import into a store, without root: a FOG directory made of synthetic partclone
// streams (zstd, gzip, split) and real sfdisk dumps, imported, then every region's bytes
// read back from the store's chunks and compared with what the streams held.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fog/fog_dir.h"
#include "fog/importer.h"
#include "image/store.h"

namespace shoal::fog {
namespace {

using bytes = std::vector<std::byte>;
namespace fsys = std::filesystem;

std::uint32_t pc_crc(std::uint32_t state, std::span<const std::byte> b) {
    return partclone_crc32(state, b);
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

// A partclone stream (CRC32 every 5 blocks) of a device whose block i holds `blocks[i]`
// when used[i]; block 0 and 1 may carry a superblock.
bytes make_stream(std::string_view fs, std::uint32_t bs, const std::vector<bytes>& blocks,
                  const std::vector<bool>& used, std::uint64_t device_size) {
    bytes s;
    put_text(s, "partclone-image", 16);
    put_text(s, "0.3.23", 14);
    put_text(s, "0002", 4);
    put(s, 0xC0DE, 2);
    put_text(s, fs, 16);
    put(s, device_size, 8);
    put(s, blocks.size(), 8);
    put(s, 0, 8);
    put(s, 0, 8);
    put(s, bs, 4);
    put(s, 18, 4);
    put(s, 2, 2);
    put(s, 64, 2);
    put(s, 0x20, 2);
    put(s, 4, 2);
    put(s, 5, 4);
    put(s, 1, 1);
    put(s, 1, 1);
    put(s, pc_crc(partclone_crc32_seed, s), 4);
    bytes bm((blocks.size() + 7) / 8);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        if (used[i]) {
            bm[i / 8] |= static_cast<std::byte>(1u << (i % 8));
        }
    }
    s.insert(s.end(), bm.begin(), bm.end());
    put(s, pc_crc(partclone_crc32_seed, bm), 4);
    std::uint32_t crc = partclone_crc32_seed;
    int n = 0;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        if (!used[i]) {
            continue;
        }
        s.insert(s.end(), blocks[i].begin(), blocks[i].end());
        crc = pc_crc(crc, blocks[i]);
        if (++n == 5) {
            put(s, crc, 4);
            crc = partclone_crc32_seed;
            n = 0;
        }
    }
    if (n > 0) {
        put(s, crc, 4);
    }
    return s;
}

bytes zstd_of(std::span<const std::byte> in) {
    bytes out(ZSTD_compressBound(in.size()));
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
    return out;
}

bytes gzip_of(std::span<const std::byte> in) {
    z_stream z{};
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    bytes out(deflateBound(&z, in.size()) + 64);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

void write_file(const std::string& path, std::span<const std::byte> b) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_text(const std::string& path, std::string_view s) {
    write_file(path, {reinterpret_cast<const std::byte*>(s.data()), s.size()});
}

// The device a stream describes, block by block: patterned, with an ext4 superblock.
struct device {
    std::uint32_t bs = 1024;
    std::vector<bytes> blocks;
    std::vector<bool> used;
};

device make_device(std::size_t count, std::uint32_t bs, unsigned seed, bool ext4) {
    device d;
    d.bs = bs;
    for (std::size_t i = 0; i < count; ++i) {
        bytes b(bs);
        for (std::uint32_t k = 0; k < bs; ++k) {
            b[k] = static_cast<std::byte>((i * 37 + k * 11 + seed) & 0xFF);
        }
        d.blocks.push_back(std::move(b));
        d.used.push_back(i < 3 || (i % 4 != 1 && i % 9 != 0));
    }
    if (ext4) {
        // Superblock at byte 1024 (block 1 of 1 KiB blocks): magic, ext4 features, label.
        bytes& sb = d.blocks[1];
        std::fill(sb.begin(), sb.end(), std::byte{0});
        sb[0x38] = std::byte{0x53};
        sb[0x39] = std::byte{0xEF};
        sb[0x5C] = std::byte{0x04};  // has_journal
        sb[0x60] = std::byte{0x40};  // extents: ext4
        std::memcpy(sb.data() + 0x78, "fogroot", 7);
    }
    return d;
}

class temp_dir {
public:
    temp_dir() {
        char t[] = "/tmp/shoal-fog-import-XXXXXX";
        _path = ::mkdtemp(t);
    }
    ~temp_dir() { fsys::remove_all(_path); }
    std::string operator/(const std::string& n) const { return _path + "/" + n; }
    const std::string& path() const { return _path; }

private:
    std::string _path;
};

// The used stream of a region, decompressed from the store's chunks.
bytes region_bytes(const image::chunk_store& store, const image::region& r) {
    bytes out;
    for (const image::chunk_ref& c : r.chunks) {
        std::vector<std::byte> frame;
        EXPECT_TRUE(store.read_chunk(c, frame));
        bytes raw(c.raw_size);
        const std::size_t n = ZSTD_decompress(raw.data(), raw.size(), frame.data(), frame.size());
        EXPECT_EQ(n, c.raw_size);
        out.insert(out.end(), raw.begin(), raw.end());
    }
    return out;
}

bytes used_stream(const device& d) {
    bytes out;
    for (std::size_t i = 0; i < d.blocks.size(); ++i) {
        if (d.used[i]) {
            out.insert(out.end(), d.blocks[i].begin(), d.blocks[i].end());
        }
    }
    return out;
}

constexpr const char* dump =
    "label: dos\nlabel-id: 0x5eed0f06\ndevice: /dev/sda\nunit: sectors\nsector-size: 512\n\n"
    "/dev/sda1 : start=2048, size=8192, type=83, bootable\n"
    "/dev/sda2 : start=10240, size=8192, type=7\n"
    "/dev/sda3 : start=18432, size=8192, type=82\n";

struct fixture {
    temp_dir dir;
    temp_dir store_dir;
    device p1 = make_device(3000, 1024, 1, true);  // ext4 in 4 MiB, 3000 KiB of it
    device p2 = make_device(900, 4096, 2, false);  // NTFS, 3.5 MiB of 4
    bytes mbr;

    fixture() {
        mbr.resize(2048 * 512);
        std::memcpy(mbr.data(), "BOOTCODE", 8);
        mbr[510] = std::byte{0x55};
        mbr[511] = std::byte{0xAA};
        mbr[446] =
            std::byte{0x77};  // a stale table entry: the import must lay the real one over it
        write_file(dir / "d1.mbr", mbr);
        write_text(dir / "d1.partitions", dump);
        write_text(dir / "d1.original.swapuuids", "3 0a1b2c3d-1111-4222-8333-123456789abc\n");
        // p1: zstd, split in pieces of 7000 bytes (FOG's in-progress layout).
        const bytes z = zstd_of(make_stream("EXTFS", 1024, p1.blocks, p1.used, 4u << 20));
        for (std::size_t at = 0, k = 0; at < z.size(); at += 7000, ++k) {
            write_file(dir / fmt::format("d1p1.img.{:03}", k),
                       std::span(z).subspan(at, std::min<std::size_t>(7000, z.size() - at)));
        }
        // p2: gzip, whole.
        write_file(dir / "d1p2.img",
                   gzip_of(make_stream("NTFS", 4096, p2.blocks, p2.used, 4u << 20)));
    }
};

TEST(fog_import, every_region_holds_what_the_streams_held) {
    fixture f;
    auto fog = read_fog_image(f.dir.path());
    ASSERT_TRUE(fog) << fog.err().describe();
    EXPECT_EQ(fog->kind, fog_image_kind::multiple_partitions);
    auto plan = plan_fog_import(*fog);
    ASSERT_TRUE(plan) << plan.err().describe();
    ASSERT_EQ(plan->regions.size(), 4u);  // head, p1, p2, swap
    EXPECT_NE(plan->regions[1].what.find("zstd"), std::string::npos);
    EXPECT_NE(plan->regions[2].what.find("gzip"), std::string::npos);

    auto store = image::chunk_store::open(f.store_dir.path(), true);
    ASSERT_TRUE(store) << store.err().describe();
    std::uint64_t last_progress = 0;
    image::build_options o;
    o.chunk_size_bytes = 64 << 10;  // several chunks per region
    o.threads = 2;
    o.on_progress = [&](std::uint64_t done) {
        EXPECT_GE(done, last_progress);
        last_progress = done;
    };
    auto m = import_fog_image(**store, *fog, "fogtest", o);
    ASSERT_TRUE(m) << m.err().describe();
    EXPECT_EQ(m->kind, image::image_kind::multi_partition_single_disk);
    auto loaded = (*store)->load("fogtest");
    ASSERT_TRUE(loaded) << loaded.err().describe();
    EXPECT_EQ(*loaded, *m);
    EXPECT_EQ(m->used_bytes(), plan->used_bytes);

    ASSERT_EQ(m->disks.size(), 1u);
    const image::disk& d = m->disks[0];
    EXPECT_EQ(d.size_bytes, (18432u + 8192u) * 512u);  // where the last partition ends
    EXPECT_EQ(d.table.kind, image::table_kind::mbr);
    EXPECT_EQ(d.table.id, "0x5eed0f06");
    ASSERT_EQ(d.table.entries.size(), 3u);
    EXPECT_TRUE(d.table.entries[0].bootable);
    ASSERT_EQ(d.regions.size(), 4u);

    // The head: d1.mbr up to the first partition, its boot code kept, the table laid over.
    const image::region& head = d.regions[0];
    EXPECT_EQ(head.partition_number, 0u);
    EXPECT_EQ(head.size_bytes, 2048u * 512u);
    const bytes hb = region_bytes(**store, head);
    ASSERT_EQ(hb.size(), 2048u * 512u);
    EXPECT_EQ(std::memcmp(hb.data(), "BOOTCODE", 8), 0);
    ASSERT_FALSE(d.table.raw.empty());
    EXPECT_EQ(d.table.raw[0].offset_bytes, 0u);
    EXPECT_EQ(std::memcmp(hb.data() + 446, d.table.raw[0].bytes.data() + 446, 64), 0);
    EXPECT_NE(hb[446], std::byte{0x77});
    // The table's own sector 0 carries the boot code too, as one read from a disk would.
    EXPECT_EQ(std::memcmp(d.table.raw[0].bytes.data(), "BOOTCODE", 8), 0);

    // Partition 1: ext4 (from the superblock), its extents the bitmap, its bytes the blocks.
    const image::region& r1 = d.regions[1];
    EXPECT_EQ(r1.partition_number, 1u);
    EXPECT_EQ(r1.offset_bytes, 2048u * 512u);
    EXPECT_EQ(r1.size_bytes, 8192u * 512u);
    EXPECT_EQ(r1.fs_size_bytes, 4u << 20);
    EXPECT_EQ(r1.fs, image::fs_type::ext4);
    EXPECT_EQ(r1.label, "fogroot");
    EXPECT_EQ(r1.block_size_bytes, 1024u);
    std::uint64_t covered = 0;
    for (const image::extent& e : r1.used) {
        EXPECT_EQ(e.offset_bytes % 1024, 0u);
        for (std::uint64_t b = e.offset_bytes / 1024; b < (e.offset_bytes + e.size_bytes) / 1024;
             ++b) {
            EXPECT_TRUE(f.p1.used[b]) << b;
            ++covered;
        }
    }
    EXPECT_EQ(covered,
              static_cast<std::uint64_t>(std::count(f.p1.used.begin(), f.p1.used.end(), true)));
    EXPECT_EQ(region_bytes(**store, r1), used_stream(f.p1));

    const image::region& r2 = d.regions[2];
    EXPECT_EQ(r2.fs, image::fs_type::ntfs);
    EXPECT_EQ(region_bytes(**store, r2), used_stream(f.p2));

    // Swap: mkswap's header with FOG's UUID.
    const image::region& r3 = d.regions[3];
    EXPECT_EQ(r3.fs, image::fs_type::swap);
    const bytes swap = region_bytes(**store, r3);
    ASSERT_EQ(swap.size(), 4096u);
    EXPECT_EQ(std::memcmp(swap.data() + 4086, "SWAPSPACE2", 10), 0);
    EXPECT_EQ(std::to_integer<unsigned>(swap[1036]), 0x0au);
    EXPECT_EQ(std::to_integer<unsigned>(swap[1051]), 0xbcu);
    EXPECT_EQ(std::to_integer<unsigned>(swap[1028]) | (std::to_integer<unsigned>(swap[1029]) << 8),
              8192u * 512u / 4096u - 1);
}

TEST(fog_import, a_broken_stream_publishes_nothing) {
    fixture f;
    // Flip one byte deep in p2's gzip data: the CRC of its member fails at its end.
    bytes g;
    {
        std::ifstream in(f.dir / "d1p2.img", std::ios::binary);
        std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        g.resize(c.size());
        std::memcpy(g.data(), c.data(), c.size());
    }
    g[g.size() - 100] ^= std::byte{0x10};
    write_file(f.dir / "d1p2.img", g);
    auto fog = read_fog_image(f.dir.path());
    ASSERT_TRUE(fog);
    auto store = image::chunk_store::open(f.store_dir.path(), true);
    ASSERT_TRUE(store);
    auto m = import_fog_image(**store, *fog, "broken", {});
    ASSERT_FALSE(m);
    EXPECT_NE(m.err().context().find("d1p2.img"), std::string_view::npos) << m.err().describe();
    EXPECT_FALSE((*store)->load("broken"));
    auto names = (*store)->list();
    ASSERT_TRUE(names);
    EXPECT_TRUE(names->empty());
}

TEST(fog_import, a_stream_bigger_than_its_partition_is_refused) {
    fixture f;
    write_file(f.dir / "d1p2.img",
               zstd_of(make_stream("NTFS", 4096, f.p2.blocks, f.p2.used, 8u << 20)));
    auto fog = read_fog_image(f.dir.path());
    ASSERT_TRUE(fog);
    auto plan = plan_fog_import(*fog);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.err().context().find("larger than its partition"), std::string_view::npos)
        << plan.err().describe();
}

TEST(fog_import, fs_types_from_partclone_names_and_superblocks) {
    partclone_header h;
    bytes sb(4096);
    sb[1024 + 0x38] = std::byte{0x53};
    sb[1024 + 0x39] = std::byte{0xEF};
    h.fs = "EXTFS";
    EXPECT_EQ(fs_type_of(h, sb), image::fs_type::ext2);
    sb[1024 + 0x5C] = std::byte{0x04};
    EXPECT_EQ(fs_type_of(h, sb), image::fs_type::ext3);
    sb[1024 + 0x64] = std::byte{0x08};  // huge_file
    EXPECT_EQ(fs_type_of(h, sb), image::fs_type::ext4);
    EXPECT_EQ(fs_type_of(h, {}), image::fs_type::ext4);  // cannot tell
    h.fs = "FAT32";
    EXPECT_EQ(fs_type_of(h, {}), image::fs_type::fat32);
    h.fs = "NTFS";
    EXPECT_EQ(fs_type_of(h, {}), image::fs_type::ntfs);
    h.fs = "XFS";
    EXPECT_EQ(fs_type_of(h, {}), image::fs_type::raw);
}

}  // namespace
}  // namespace shoal::fog
