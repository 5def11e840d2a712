// The agent's library: the kernel command line, the inventory read from fake sysfs/procfs
// trees, the disk choice on a PC with NVMe, SATA and USB disks, wipes of disk files (bytes
// checked), and the disk surface test on a file and (root) on a device-mapper disk with an
// unreadable range.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/cmdline.h"
#include "agent/disk_choice.h"
#include "agent/disk_test.h"
#include "agent/inventory.h"
#include "agent/wipe.h"

namespace fs = std::filesystem;
using namespace shoal;
using namespace shoal::agent;

namespace {

class temp_dir {
public:
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "shoal-agent-XXXXXX").string();
        path = mkdtemp(t.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path path;
};

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

// A block device as sysfs shows it: /sys/block/<name> links into /sys/devices/<bus>.
void fake_disk(const fs::path& root, const std::string& bus_path, const std::string& name,
               std::uint64_t sectors, bool removable) {
    fs::path dev = root / "sys" / "devices" / bus_path / "block" / name;
    write(dev / "size", std::to_string(sectors) + "\n");
    write(dev / "removable", removable ? "1\n" : "0\n");
    write(dev / "ro", "0\n");
    write(dev / "queue" / "rotational", "0\n");
    fs::create_directories(root / "sys" / "block");
    fs::create_directory_symlink(fs::path("../devices") / bus_path / "block" / name,
                                 root / "sys" / "block" / name);
}

// NVMe 512 GB, SATA 1 TB, a USB stick of 16 GB, a loop device; two NICs and lo.
fs::path fake_pc(const fs::path& root) {
    fake_disk(root, "pci0000:00/0000:00:1d.0/nvme/nvme0", "nvme0n1", 1000215216, false);
    write(root / "sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/block/nvme0n1/device/model",
          "Samsung SSD 970 EVO Plus 500GB          \n");
    write(root / "sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/block/nvme0n1/device/serial",
          "S4EVNX0N123456 \n");
    std::string sata = "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0";
    fake_disk(root, sata, "sda", 1953525168, false);
    write(root / "sys/devices" / sata / "block/sda/device/model", "ST1000DM010-2EP1\n");
    write(root / "sys/devices" / sata / "block/sda/device/vendor", "ATA     \n");
    write(root / "sys/devices" / sata / "block/sda/device/vpd_pg80",
          std::string("\x00\x80\x00\x08", 4) + "Z9A0B1C2");
    std::string usb = "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0";
    fake_disk(root, usb, "sdb", 31266816, true);
    write(root / "sys/devices" / usb / "block/sdb/device/model", "DataTraveler 3.0\n");
    write(root / "sys/devices" / usb / "block/sdb/device/vendor", "Kingston\n");
    fake_disk(root, "virtual", "loop0", 2048, false);

    fs::path net = root / "sys" / "class" / "net";
    write(net / "lo" / "address", "00:00:00:00:00:00\n");
    write(net / "enp1s0" / "address", "52:54:00:AB:CD:EF\n");
    write(net / "enp1s0" / "speed", "1000\n");
    write(net / "enp1s0" / "operstate", "up\n");
    fs::create_directories(root / "sys/bus/pci/drivers/e1000e");
    fs::create_directories(net / "enp1s0" / "device");
    fs::create_directory_symlink(root / "sys/bus/pci/drivers/e1000e",
                                 net / "enp1s0" / "device" / "driver");
    write(net / "wlan0" / "address", "a4:c3:f0:00:11:22\n");
    write(net / "wlan0" / "operstate", "down\n");  // no speed file: unknown

    write(root / "proc" / "cpuinfo",
          "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz\n\n"
          "processor\t: 1\nmodel name\t: Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz\n\n"
          "processor\t: 2\nmodel name\t: Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz\n\n"
          "processor\t: 3\nmodel name\t: Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz\n\n");
    write(root / "proc" / "meminfo", "MemTotal:       16314028 kB\nMemFree:  100 kB\n");
    fs::path dmi = root / "sys" / "class" / "dmi" / "id";
    write(dmi / "sys_vendor", "Dell Inc.\n");
    write(dmi / "product_name", "OptiPlex 5060\n");
    write(dmi / "product_serial", "7XK9Q12\n");
    write(dmi / "board_serial", "/7XK9Q12/CNFCW0089A00E2/\n");
    return root;
}

const disk_info* find(const inventory& inv, const std::string& name) {
    for (const auto& d : inv.disks) {
        if (d.name == name) {
            return &d;
        }
    }
    return nullptr;
}

}  // namespace

// ---- kernel command line ----

TEST(cmdline, reads_shoal_parameters_and_ignores_the_rest) {
    auto p = parse_cmdline(
        "BOOT_IMAGE=vmlinuz initrd=initrd.img shoal.server=http://10.77.0.1:8080 "
        "shoal.mac=52:54:00:12:34:56 shoal.task=17 shoal.kind=wipe_fast shoal.key=ab12 "
        "shoal.disk=serial:S4EVNX0N123456 console=ttyS0,115200 quiet\n");
    ASSERT_TRUE(p) << p.err().describe();
    EXPECT_EQ(p->size(), 6u);
    EXPECT_EQ(p->at("server"), "http://10.77.0.1:8080");
    EXPECT_EQ(p->at("mac"), "52:54:00:12:34:56");
    EXPECT_EQ(p->at("task"), "17");
    EXPECT_EQ(p->at("kind"), "wipe_fast");
    EXPECT_EQ(p->at("key"), "ab12");
    EXPECT_EQ(p->at("disk"), "serial:S4EVNX0N123456");
}

TEST(cmdline, quotes_keep_blanks_and_the_last_word_wins) {
    auto p = parse_cmdline("shoal.name=\"lab pc\" shoal.task=1 shoal.task=2 shoal.flag");
    ASSERT_TRUE(p) << p.err().describe();
    EXPECT_EQ(p->at("name"), "lab pc");
    EXPECT_EQ(p->at("task"), "2");
    EXPECT_EQ(p->at("flag"), "");
}

TEST(cmdline, refuses_hostile_input) {
    for (std::string bad : {std::string("shoal.Server=x"), std::string("shoal.=x"),
                            std::string("shoal.a/b=x"), std::string("shoal.key=\"open"),
                            std::string("shoal.key=a\x01"
                                        "b"),
                            std::string("shoal.key=") + std::string(600, 'a'),
                            std::string(9000, ' ')}) {
        auto p = parse_cmdline(bad);
        EXPECT_FALSE(p) << bad.substr(0, 40);
        if (!p) {
            EXPECT_EQ(p.err().code(), errc::malformed);
        }
    }
    std::string many;
    for (int i = 0; i < 70; ++i) {
        many += "shoal.k" + std::to_string(i) + "=v ";
    }
    EXPECT_FALSE(parse_cmdline(many));
}

// ---- inventory ----

TEST(inventory, reads_a_pc_from_sysfs_and_procfs) {
    temp_dir t;
    auto inv = read_inventory(fake_pc(t.path).string(), "/dev");
    ASSERT_TRUE(inv) << inv.err().describe();
    EXPECT_EQ(inv->cpu_model, "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz");
    EXPECT_EQ(inv->cpu_count, 4u);
    EXPECT_EQ(inv->memory_bytes, 16314028ull * 1024);
    ASSERT_EQ(inv->disks.size(), 3u);  // the loop device is no disk to image
    const disk_info* nvme = find(*inv, "nvme0n1");
    ASSERT_NE(nvme, nullptr);
    EXPECT_EQ(nvme->transport, "nvme");
    EXPECT_EQ(nvme->size_bytes, 1000215216ull * 512);
    EXPECT_EQ(nvme->model, "Samsung SSD 970 EVO Plus 500GB");
    EXPECT_EQ(nvme->serial, "S4EVNX0N123456");
    EXPECT_EQ(nvme->dev_path, "/dev/nvme0n1");
    EXPECT_FALSE(nvme->removable);
    const disk_info* sda = find(*inv, "sda");
    ASSERT_NE(sda, nullptr);
    EXPECT_EQ(sda->transport, "sata");
    EXPECT_EQ(sda->model, "ST1000DM010-2EP1");  // "ATA" is no vendor
    EXPECT_EQ(sda->serial, "Z9A0B1C2");
    const disk_info* sdb = find(*inv, "sdb");
    ASSERT_NE(sdb, nullptr);
    EXPECT_EQ(sdb->transport, "usb");
    EXPECT_TRUE(sdb->removable);
    EXPECT_EQ(sdb->model, "Kingston DataTraveler 3.0");

    ASSERT_EQ(inv->nics.size(), 2u);  // lo left out
    EXPECT_EQ(inv->nics[0].name, "enp1s0");
    EXPECT_EQ(inv->nics[0].mac, "52:54:00:ab:cd:ef");
    EXPECT_EQ(inv->nics[0].speed_mbps, 1000);
    EXPECT_EQ(inv->nics[0].driver, "e1000e");
    EXPECT_TRUE(inv->nics[0].up);
    EXPECT_EQ(inv->nics[1].name, "wlan0");
    EXPECT_EQ(inv->nics[1].speed_mbps, -1);
    EXPECT_EQ(inv->nics[1].driver, "");
    EXPECT_FALSE(inv->nics[1].up);

    EXPECT_EQ(inv->dmi.at("sys_vendor"), "Dell Inc.");
    EXPECT_EQ(inv->dmi.at("product_serial"), "7XK9Q12");
    EXPECT_EQ(inv->dmi.count("chassis_serial"), 0u);

    auto j = to_json(*inv);
    EXPECT_EQ(j["cpu"]["count"], 4);
    EXPECT_EQ(j["disks"][0]["name"], "nvme0n1");
    EXPECT_EQ(j["disks"][0]["serial"], "S4EVNX0N123456");
    EXPECT_EQ(j["nics"][0]["mac"], "52:54:00:ab:cd:ef");
    EXPECT_EQ(j["dmi"]["product_name"], "OptiPlex 5060");
}

TEST(inventory, an_empty_tree_is_an_empty_pc_and_a_missing_root_an_error) {
    temp_dir t;
    fs::create_directories(t.path / "sys");
    auto inv = read_inventory(t.path.string());
    ASSERT_TRUE(inv);
    EXPECT_TRUE(inv->disks.empty());
    EXPECT_EQ(inv->cpu_count, 0u);
    auto missing = read_inventory((t.path / "nothing").string());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.err().code(), errc::not_found);
}

// ---- disk choice ----

class disk_choice_test : public ::testing::Test {
protected:
    void SetUp() override {
        auto inv = read_inventory(fake_pc(_tree.path).string(), "/dev");
        ASSERT_TRUE(inv);
        disks = inv->disks;
    }
    temp_dir _tree;
    std::vector<disk_info> disks;
};

TEST_F(disk_choice_test, auto_refuses_two_fixed_disks_and_names_every_candidate) {
    auto d = choose_disk(disks, "auto");
    ASSERT_FALSE(d);
    EXPECT_EQ(d.err().code(), errc::conflict);
    EXPECT_NE(d.err().describe().find("2 fixed disks"), std::string::npos) << d.err().describe();
    EXPECT_NE(d.err().describe().find("refusing to guess"), std::string::npos);
    std::string list = candidates(disks);
    for (const char* part : {"/dev/nvme0n1 (nvme, 512.1 GB", "S4EVNX0N123456",
                             "/dev/sda (sata, 1.0 TB, ST1000DM010-2EP1, Z9A0B1C2)",
                             "/dev/sdb (usb", "removable"}) {
        EXPECT_NE(list.find(part), std::string::npos) << part << " not in " << list;
    }
    EXPECT_FALSE(choose_disk(disks, ""));  // empty is auto
}

TEST_F(disk_choice_test, rules_pick_the_disk_they_name) {
    struct {
        const char* rule;
        const char* name;
    } cases[] = {{"nvme", "nvme0n1"},          {"sata", "sda"},
                 {"usb", "sdb"},               {"largest", "sda"},
                 {"smallest", "nvme0n1"},      {"serial:Z9A0B1C2", "sda"},
                 {"/dev/nvme0n1", "nvme0n1"},  {"sdb", "sdb"}};
    for (const auto& c : cases) {
        auto d = choose_disk(disks, c.rule);
        ASSERT_TRUE(d) << c.rule << ": " << d.err().describe();
        EXPECT_EQ(d->name, c.name) << c.rule;
    }
}

TEST_F(disk_choice_test, a_rule_matching_nothing_is_refused) {
    for (const char* rule : {"virtio", "serial:NOPE", "/dev/sdz", "scsi"}) {
        auto d = choose_disk(disks, rule);
        ASSERT_FALSE(d) << rule;
        EXPECT_EQ(d.err().code(), errc::not_found) << rule;
    }
    for (const char* rule : {"/dev/../etc/passwd", "serial:a b", "a;b", "/dev/"}) {
        auto d = choose_disk(disks, rule);
        ASSERT_FALSE(d) << rule;
        EXPECT_EQ(d.err().code(), errc::invalid_argument) << rule;
    }
}

TEST_F(disk_choice_test, auto_takes_the_only_fixed_disk_and_never_a_usb_stick) {
    std::vector<disk_info> two;
    for (const auto& d : disks) {
        if (d.name != "sda") {
            two.push_back(d);
        }
    }
    auto d = choose_disk(two, "auto");
    ASSERT_TRUE(d) << d.err().describe();
    EXPECT_EQ(d->name, "nvme0n1");
    std::vector<disk_info> stick_only;
    for (const auto& x : disks) {
        if (x.name == "sdb") {
            stick_only.push_back(x);
        }
    }
    auto none = choose_disk(stick_only, "auto");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.err().code(), errc::not_found);
    // Two disks of one size: largest refuses rather than picking one.
    std::vector<disk_info> twins = {disks[0], disks[0]};
    twins[1].name = "nvme1n1";
    twins[1].dev_path = "/dev/nvme1n1";
    auto tie = choose_disk(twins, "largest");
    ASSERT_FALSE(tie);
    EXPECT_EQ(tie.err().code(), errc::conflict);
    auto two_nvme = choose_disk(twins, "nvme");
    ASSERT_FALSE(two_nvme);
    EXPECT_EQ(two_nvme.err().code(), errc::conflict);
}

// ---- wipe ----

namespace {

constexpr std::uint64_t mib = 1 << 20;
constexpr std::uint64_t disk_bytes = 64 * mib;

// A 64 MiB disk file of 0xAA bytes with a GPT of two partitions (sfdisk).
fs::path make_disk(const fs::path& dir) {
    fs::path p = dir / "disk.img";
    {
        std::ofstream out(p, std::ios::binary);
        std::string block(mib, '\xAA');
        for (std::uint64_t i = 0; i < disk_bytes / mib; ++i) {
            out.write(block.data(), static_cast<std::streamsize>(block.size()));
        }
    }
    std::string cmd = "printf 'label: gpt\\nstart=2048, size=40960\\nstart=43008, size=61440\\n' "
                      "| sfdisk -q " +
                      p.string() + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
        return {};
    }
    return p;
}

std::vector<unsigned char> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

// Every byte of [from, to) is v.
bool all(const std::vector<unsigned char>& b, std::uint64_t from, std::uint64_t to,
         unsigned char v) {
    for (std::uint64_t i = from; i < to; ++i) {
        if (b[i] != v) {
            return false;
        }
    }
    return true;
}

}  // namespace

TEST(wipe, fast_zeroes_both_ends_of_the_disk_only) {
    temp_dir t;
    auto p = make_disk(t.path);
    if (p.empty()) {
        GTEST_SKIP() << "sfdisk is missing";
    }
    auto r = wipe_disk(p.string(), {.mode = wipe_mode::fast});
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(r->disk_size_bytes, disk_bytes);
    EXPECT_EQ(r->bytes_written, 4 * mib);
    auto b = read_all(p);
    ASSERT_EQ(b.size(), disk_bytes);
    EXPECT_TRUE(all(b, 0, 2 * mib, 0));
    EXPECT_TRUE(all(b, 2 * mib, disk_bytes - 2 * mib, 0xAA));
    EXPECT_TRUE(all(b, disk_bytes - 2 * mib, disk_bytes, 0));
}

TEST(wipe, normal_also_zeroes_the_ends_of_every_partition) {
    temp_dir t;
    auto p = make_disk(t.path);
    if (p.empty()) {
        GTEST_SKIP() << "sfdisk is missing";
    }
    auto r = wipe_disk(p.string(), {.mode = wipe_mode::normal});
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(r->partitions_wiped, 2u);
    auto b = read_all(p);
    std::uint64_t p1 = 2048 * 512, p1_end = p1 + 40960 * 512;
    std::uint64_t p2 = 43008 * 512, p2_end = p2 + 61440 * 512;
    EXPECT_TRUE(all(b, 0, 2 * mib, 0));
    EXPECT_TRUE(all(b, p1, p1 + mib, 0));
    EXPECT_TRUE(all(b, p1 + mib, p1_end - mib, 0xAA));
    EXPECT_TRUE(all(b, p1_end - mib, p1_end, 0));
    EXPECT_TRUE(all(b, p2, p2 + mib, 0));
    EXPECT_TRUE(all(b, p2 + mib, p2_end - mib, 0xAA));
    EXPECT_TRUE(all(b, p2_end - mib, p2_end, 0));
    EXPECT_TRUE(all(b, disk_bytes - 2 * mib, disk_bytes, 0));
    // The table is gone: sfdisk finds none.
    std::string cmd = "sfdisk -d " + p.string() + " >/dev/null 2>&1";
    EXPECT_NE(std::system(cmd.c_str()), 0);
}

TEST(wipe, full_zeroes_every_byte_with_progress_and_stops_when_cancelled) {
    temp_dir t;
    auto p = make_disk(t.path);
    if (p.empty()) {
        GTEST_SKIP() << "sfdisk is missing";
    }
    std::uint64_t last = 0;
    unsigned calls = 0;
    wipe_options o{.mode = wipe_mode::full};
    o.on_progress = [&](const wipe_progress& pr) {
        EXPECT_GT(pr.bytes_done, last);
        EXPECT_EQ(pr.bytes_total, disk_bytes);
        last = pr.bytes_done;
        ++calls;
    };
    auto r = wipe_disk(p.string(), o);
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(r->bytes_written, disk_bytes);
    EXPECT_EQ(last, disk_bytes);
    EXPECT_EQ(calls, 16u);  // 4 MiB writes
    auto b = read_all(p);
    EXPECT_TRUE(all(b, 0, disk_bytes, 0));

    // Cancelled after the third write: the rest is untouched and the report says so.
    auto q = make_disk(t.path);
    std::atomic<bool> cancel{false};
    wipe_options c{.mode = wipe_mode::full};
    c.cancel = &cancel;
    c.on_progress = [&](const wipe_progress& pr) {
        if (pr.bytes_done >= 12 * mib) {
            cancel = true;
        }
    };
    auto rc = wipe_disk(q.string(), c);
    ASSERT_TRUE(rc) << rc.err().describe();
    EXPECT_TRUE(rc->cancelled);
    EXPECT_EQ(rc->bytes_written, 12 * mib);
    auto bc = read_all(q);
    EXPECT_TRUE(all(bc, 0, 12 * mib, 0));
    EXPECT_TRUE(all(bc, 12 * mib, disk_bytes - 2 * mib, 0xAA));
}

TEST(wipe, a_missing_disk_is_an_error_naming_it) {
    auto r = wipe_disk("/nonexistent/disk", {.mode = wipe_mode::fast});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::not_found);
    EXPECT_NE(r.err().describe().find("/nonexistent/disk"), std::string::npos);
}

// ---- disk surface test ----

TEST(disk_test, a_good_file_reads_whole_with_progress) {
    temp_dir t;
    auto p = make_disk(t.path);
    if (p.empty()) {
        GTEST_SKIP() << "sfdisk is missing";
    }
    std::uint64_t last = 0;
    disk_test_options o;
    o.on_progress = [&](const disk_test_progress& pr) { last = pr.bytes_done; };
    auto r = test_disk(p.string(), o);
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(r->bytes_read, disk_bytes);
    EXPECT_EQ(last, disk_bytes);
    EXPECT_TRUE(r->bad.empty());
    EXPECT_EQ(r->bad_bytes, 0u);
}

namespace {

std::string run(const std::string& cmd) {
    std::string out;
    FILE* f = popen(cmd.c_str(), "r");
    if (f == nullptr) {
        return out;
    }
    char buf[256];
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
        out += buf;
    }
    if (pclose(f) != 0) {
        return {};
    }
    while (!out.empty() && out.back() == '\n') {
        out.pop_back();
    }
    return out;
}

}  // namespace

// A real unreadable range: device-mapper's error target in the middle of a loop device.
TEST(disk_test, reports_exactly_the_unreadable_sectors_of_a_device) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root (losetup, dmsetup)";
    }
    temp_dir t;
    auto p = make_disk(t.path);
    if (p.empty()) {
        GTEST_SKIP() << "sfdisk is missing";
    }
    std::string loop = run("losetup --find --show " + p.string());
    if (loop.empty()) {
        GTEST_SKIP() << "no loop device";
    }
    std::string name = "shoal-agent-test-" + std::to_string(getpid());
    std::uint64_t sectors = disk_bytes / 512;
    // Sectors 20000..20039 (and a lone 30001) fail; the rest maps to the loop device.
    std::string table = fmt::format(
        "0 20000 linear {0} 0\n20000 40 error\n20040 9961 linear {0} 20040\n"
        "30001 1 error\n30002 {1} linear {0} 30002\n",
        loop, sectors - 30002);
    std::string made = run("printf '" + table + "' | dmsetup create " + name + " && echo ok");
    if (made != "ok") {
        run("losetup -d " + loop);
        GTEST_SKIP() << "dmsetup create failed (no device-mapper here)";
    }
    auto r = test_disk("/dev/mapper/" + name, {});
    run("dmsetup remove " + name + " && echo ok");
    run("losetup -d " + loop + " && echo ok");
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(r->disk_size_bytes, disk_bytes);
    EXPECT_EQ(r->bytes_read, disk_bytes);
    ASSERT_EQ(r->bad.size(), 2u);
    EXPECT_EQ(r->bad[0].offset_bytes, 20000u * 512);
    EXPECT_EQ(r->bad[0].size_bytes, 40u * 512);
    EXPECT_EQ(r->bad[1].offset_bytes, 30001u * 512);
    EXPECT_EQ(r->bad[1].size_bytes, 512u);
    EXPECT_EQ(r->bad_bytes, 41u * 512);
}
