// DHCP wire format with golden bytes and hostile packets, the lease table and its file, and
// the responder's answers to PXE, iPXE, UEFI HTTP and plain clients in both modes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "dhcp/config.h"
#include "dhcp/leases.h"
#include "dhcp/packet.h"
#include "dhcp/responder.h"

namespace shoal::dhcp {
namespace {

using bytes = std::vector<std::uint8_t>;

constexpr ipv4 ip(int a, int b, int c, int d) {
    return (static_cast<ipv4>(a) << 24) | (static_cast<ipv4>(b) << 16) |
           (static_cast<ipv4>(c) << 8) | static_cast<ipv4>(d);
}

const mac_address mac_a = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
const mac_address mac_b = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

// A client's request, byte by byte as it goes on the wire.
struct request_bytes {
    bytes b = bytes(options_offset, 0);

    explicit request_bytes(const mac_address& mac, std::uint32_t xid = 0x11223344) {
        b[0] = op_request;
        b[1] = 1;
        b[2] = 6;
        b[4] = static_cast<std::uint8_t>(xid >> 24);
        b[5] = static_cast<std::uint8_t>(xid >> 16);
        b[6] = static_cast<std::uint8_t>(xid >> 8);
        b[7] = static_cast<std::uint8_t>(xid);
        std::copy(mac.begin(), mac.end(), b.begin() + 28);
        b[236] = 0x63;
        b[237] = 0x82;
        b[238] = 0x53;
        b[239] = 0x63;
    }
    request_bytes& option(std::uint8_t code, const bytes& value) {
        b.push_back(code);
        b.push_back(static_cast<std::uint8_t>(value.size()));
        b.insert(b.end(), value.begin(), value.end());
        return *this;
    }
    request_bytes& text(std::uint8_t code, std::string_view s) {
        return option(code, bytes(s.begin(), s.end()));
    }
    request_bytes& type(message_type t) {
        return option(opt::message_type, {static_cast<std::uint8_t>(t)});
    }
    request_bytes& addr(std::uint8_t code, ipv4 a) {
        return option(code, {static_cast<std::uint8_t>(a >> 24), static_cast<std::uint8_t>(a >> 16),
                             static_cast<std::uint8_t>(a >> 8), static_cast<std::uint8_t>(a)});
    }
    request_bytes& arch(std::uint16_t a) {
        return option(opt::client_arch,
                      {static_cast<std::uint8_t>(a >> 8), static_cast<std::uint8_t>(a)});
    }
    request_bytes& ciaddr(ipv4 a) {
        b[12] = static_cast<std::uint8_t>(a >> 24);
        b[13] = static_cast<std::uint8_t>(a >> 16);
        b[14] = static_cast<std::uint8_t>(a >> 8);
        b[15] = static_cast<std::uint8_t>(a);
        return *this;
    }
    bytes done() const {
        bytes out = b;
        out.push_back(opt::end);
        return out;
    }
};

status decode_bytes(const bytes& b, message& m) { return decode({b.data(), b.size()}, m); }

// ---- wire format -------------------------------------------------------------------------

TEST(dhcp_packet, decodes_a_pxe_discover) {
    // A BIOS PXE ROM's DISCOVER as iPXE's undionly would send it, trimmed.
    auto b = request_bytes(mac_a)
                 .type(message_type::discover)
                 .option(opt::parameter_list, {1, 3, 6, 66, 67})
                 .option(opt::max_message_size, {0x05, 0xc0})
                 .text(opt::vendor_class, "PXEClient:Arch:00000:UNDI:002001")
                 .option(opt::client_arch, {0, 0})
                 .option(opt::client_ndi, {1, 2, 1})
                 .done();
    message m;
    ASSERT_TRUE(decode_bytes(b, m));
    EXPECT_EQ(m.op, op_request);
    EXPECT_EQ(m.xid, 0x11223344u);
    EXPECT_EQ(m.type, message_type::discover);
    EXPECT_EQ(m.mac(), mac_a);
    EXPECT_EQ(client_arch(m), std::optional<std::uint16_t>(0));
    EXPECT_EQ(reply_size_max(m), 0x5c0u - 28);
    EXPECT_TRUE(vendor_class_starts_with(m, "PXEClient"));
    EXPECT_FALSE(user_class_is(m, "iPXE"));
    EXPECT_EQ(m.option(opt::client_ndi).size(), 3u);
}

TEST(dhcp_packet, repeated_options_are_joined_and_overload_is_read) {
    auto r = request_bytes(mac_a).type(message_type::discover);
    r.text(opt::vendor_class, "PXECl").text(opt::vendor_class, "ient");
    r.option(opt::overload, {3});
    bytes b = r.done();
    // file field (108..235) carries option 77 "iPXE", sname (44..107) carries 60's tail.
    const std::uint8_t in_file[] = {opt::user_class, 4, 'i', 'P', 'X', 'E', opt::end};
    std::copy(std::begin(in_file), std::end(in_file), b.begin() + 108);
    const std::uint8_t in_sname[] = {opt::vendor_class, 2, ':', 'X', opt::end};
    std::copy(std::begin(in_sname), std::end(in_sname), b.begin() + 44);
    message m;
    ASSERT_TRUE(decode_bytes(b, m));
    EXPECT_EQ(m.option_text(opt::vendor_class), "PXEClient:X");  // options, then file, then sname
    EXPECT_TRUE(user_class_is(m, "iPXE"));
    EXPECT_TRUE(m.file.empty());
    EXPECT_TRUE(m.sname.empty());
}

TEST(dhcp_packet, user_class_as_rfc3004_list) {
    auto b = request_bytes(mac_a)
                 .type(message_type::discover)
                 .option(opt::user_class, {3, 'a', 'b', 'c', 4, 'i', 'P', 'X', 'E'})
                 .done();
    message m;
    ASSERT_TRUE(decode_bytes(b, m));
    EXPECT_TRUE(user_class_is(m, "iPXE"));
    EXPECT_FALSE(user_class_is(m, "gPXE"));
}

struct hostile_case {
    const char* name;
    bytes packet;
    errc code;
};

std::vector<hostile_case> hostile_cases() {
    std::vector<hostile_case> cases;
    auto ok = request_bytes(mac_a).type(message_type::discover).done();
    cases.push_back({"empty", {}, errc::truncated});
    cases.push_back({"header only", bytes(ok.begin(), ok.begin() + 236), errc::truncated});
    {
        auto b = ok;
        b[236] = 0;
        cases.push_back({"no magic cookie", b, errc::malformed});
    }
    {
        auto b = ok;
        b[2] = 17;
        cases.push_back({"hlen over 16", b, errc::malformed});
    }
    {
        auto b = ok;
        b[0] = 9;
        cases.push_back({"bad op", b, errc::malformed});
    }
    {
        auto b = request_bytes(mac_a).type(message_type::discover).b;
        b.push_back(opt::vendor_class);
        b.push_back(200);  // claims 200 bytes, has 3
        b.insert(b.end(), {'P', 'X', 'E'});
        cases.push_back({"option longer than the packet", b, errc::truncated});
    }
    {
        auto b = request_bytes(mac_a).type(message_type::discover).b;
        b.push_back(opt::vendor_class);  // no length byte
        cases.push_back({"option without length", b, errc::truncated});
    }
    cases.push_back({"message type of 2 bytes",
                     request_bytes(mac_a).option(opt::message_type, {1, 1}).done(),
                     errc::malformed});
    cases.push_back({"message type 0", request_bytes(mac_a).option(opt::message_type, {0}).done(),
                     errc::malformed});
    cases.push_back({"message type 200",
                     request_bytes(mac_a).option(opt::message_type, {200}).done(),
                     errc::malformed});
    cases.push_back({"requested address of 3 bytes",
                     request_bytes(mac_a)
                         .type(message_type::request)
                         .option(opt::requested_address, {1, 2, 3})
                         .done(),
                     errc::malformed});
    cases.push_back({"arch of 3 bytes",
                     request_bytes(mac_a)
                         .type(message_type::discover)
                         .option(opt::client_arch, {0, 0, 7})
                         .done(),
                     errc::malformed});
    cases.push_back(
        {"overload value 4",
         request_bytes(mac_a).type(message_type::discover).option(opt::overload, {4}).done(),
         errc::malformed});
    {
        auto b =
            request_bytes(mac_a).type(message_type::discover).option(opt::overload, {1}).done();
        const std::uint8_t bad[] = {opt::vendor_class, 250, 'x'};  // runs past the file field
        std::copy(std::begin(bad), std::end(bad), b.begin() + 108 + 120);
        cases.push_back({"overloaded file with an overflowing option", b, errc::truncated});
    }
    {
        auto b =
            request_bytes(mac_a).type(message_type::discover).option(opt::overload, {1}).done();
        const std::uint8_t nested[] = {opt::overload, 1, 2, opt::end};
        std::copy(std::begin(nested), std::end(nested), b.begin() + 108);
        cases.push_back({"overload inside the file field", b, errc::malformed});
    }
    cases.push_back({"oversized",
                     [] {
                         auto b = request_bytes(mac_a).type(message_type::discover).done();
                         b.resize(packet_size_max + 1, 0);
                         return b;
                     }(),
                     errc::malformed});
    return cases;
}

TEST(dhcp_packet, hostile_packets_are_refused_with_a_reason) {
    for (const auto& c : hostile_cases()) {
        message m;
        auto st = decode_bytes(c.packet, m);
        ASSERT_FALSE(st) << c.name;
        EXPECT_EQ(st.err().code(), c.code) << c.name << ": " << st.err().context();
        EXPECT_FALSE(st.err().context().empty()) << c.name;
    }
}

TEST(dhcp_packet, every_truncation_of_a_real_request_is_safe) {
    auto b = request_bytes(mac_a)
                 .type(message_type::request)
                 .addr(opt::requested_address, ip(10, 77, 2, 10))
                 .addr(opt::server_id, ip(10, 77, 0, 1))
                 .text(opt::vendor_class, "PXEClient:Arch:00007:UNDI:003016")
                 .done();
    message m;
    for (std::size_t n = 0; n <= b.size(); n++) {
        auto st = decode_bytes(bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)), m);
        if (n < options_offset) {
            EXPECT_FALSE(st) << n;
        }
        // Past the header, a cut inside an option must be refused, a cut between options is
        // tolerated (no END), and never may an option be read beyond the cut.
        if (st) {
            EXPECT_LE(m.option(opt::vendor_class).size(), n);
        }
    }
    EXPECT_TRUE(decode_bytes(b, m));
}

TEST(dhcp_packet, builder_golden_bytes) {
    auto req = request_bytes(mac_a, 0xdeadbeef).type(message_type::discover).done();
    req[10] = 0x80;  // broadcast flag
    message m;
    ASSERT_TRUE(decode_bytes(req, m));
    std::array<std::uint8_t, packet_size_max> out{};
    builder b(out, 576);
    b.reply_header(m, ip(10, 77, 2, 10), ip(10, 77, 0, 1));
    ASSERT_TRUE(b.set_file("undionly.kpxe"));
    ASSERT_TRUE(b.add_u8(opt::message_type, 2));
    ASSERT_TRUE(b.add_ipv4(opt::server_id, ip(10, 77, 0, 1)));
    ASSERT_TRUE(b.add_u32(opt::lease_time, 3600));
    ASSERT_TRUE(b.add_text(opt::vendor_class, "PXEClient"));
    std::size_t n = b.finish();
    ASSERT_EQ(n, reply_size_min);
    const bytes header = {2, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0,    0,   0x80, 0,
                          0, 0, 0, 0, 10,   77,   2,    10,   10,   77,  0,    1,
                          0, 0, 0, 0, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    EXPECT_EQ(bytes(out.begin(), out.begin() + 34), header);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()) + 108), "undionly.kpxe");
    const bytes options = {0x63, 0x82, 0x53, 0x63, 53,  1,   2,    54,   4,  10, 77,
                           0,    1,    51,   4,    0,   0,   0x0e, 0x10, 60, 9,  'P',
                           'X',  'E',  'C',  'l',  'i', 'e', 'n',  't',  255};
    EXPECT_EQ(
        bytes(out.begin() + 236, out.begin() + 236 + static_cast<std::ptrdiff_t>(options.size())),
        options);
    EXPECT_TRUE(std::all_of(out.begin() + 236 + static_cast<std::ptrdiff_t>(options.size()),
                            out.begin() + 300, [](std::uint8_t x) { return x == 0; }));
    // It decodes as what it says.
    message back;
    ASSERT_TRUE(decode({out.data(), n}, back));
    EXPECT_EQ(back.type, message_type::offer);
    EXPECT_EQ(back.yiaddr, ip(10, 77, 2, 10));
    EXPECT_EQ(back.file, "undionly.kpxe");
}

TEST(dhcp_packet, builder_splits_long_options_and_refuses_what_does_not_fit) {
    auto req = request_bytes(mac_a).type(message_type::discover).done();
    message m;
    ASSERT_TRUE(decode_bytes(req, m));
    std::array<std::uint8_t, packet_size_max> out{};
    builder b(out, 576);
    b.reply_header(m, 0, 0);
    std::string long_url(300, 'u');
    ASSERT_TRUE(b.add_text(opt::bootfile, long_url));                // 255 + 45, RFC 3396
    EXPECT_FALSE(b.add_text(opt::hostname, std::string(255, 'h')));  // 240+302+257 > 576
    std::size_t n = b.finish();
    message back;
    ASSERT_TRUE(decode({out.data(), n}, back));
    EXPECT_EQ(back.option_text(opt::bootfile), long_url);
    EXPECT_FALSE(back.has(opt::hostname));
    EXPECT_LE(n, 576u);
}

TEST(dhcp_config, parse_and_validate) {
    EXPECT_EQ(*parse_ipv4("10.77.0.1"), ip(10, 77, 0, 1));
    EXPECT_FALSE(parse_ipv4("10.77.0"));
    EXPECT_FALSE(parse_ipv4("10.77.0.256"));
    EXPECT_FALSE(parse_ipv4("10.77.0.1x"));
    EXPECT_EQ(*parse_mac("52:54:00:12:34:56"), mac_a);
    EXPECT_EQ(*parse_mac("52-54-00-AB-cd-EF"), mac_b);
    EXPECT_FALSE(parse_mac("52:54:00:12:34"));
    EXPECT_FALSE(parse_mac("52:54:00:12:34:5g"));
    EXPECT_EQ(format_mac(mac_b), "52:54:00:ab:cd:ef");
    config cfg;
    EXPECT_FALSE(validate(cfg).empty());  // no interface
    cfg.interfaces = {"eth1"};
    EXPECT_TRUE(validate(cfg).empty()) << validate(cfg).front();
    cfg.mode = mode::full;
    EXPECT_FALSE(validate(cfg).empty());  // no pool
    cfg.pools.push_back({ip(10, 77, 2, 10), ip(10, 77, 2, 20), 0, 0, {}, {}});
    EXPECT_TRUE(validate(cfg).empty());
    cfg.reservations.push_back({mac_a, ip(10, 77, 2, 5), ""});
    cfg.reservations.push_back({mac_a, ip(10, 77, 2, 5), ""});
    EXPECT_EQ(validate(cfg).size(), 2u);
}

// ---- lease table -------------------------------------------------------------------------

config full_config(std::string leases_path = {}) {
    config cfg;
    cfg.mode = mode::full;
    cfg.interfaces = {"eth0"};
    cfg.pools.push_back(
        {ip(10, 77, 2, 10), ip(10, 77, 2, 13), 0, ip(10, 77, 0, 254), {ip(10, 77, 0, 53)}, "lab"});
    cfg.reservations.push_back({mac_b, ip(10, 77, 2, 12), "pc-b"});
    cfg.leases_path = std::move(leases_path);
    cfg.lease_time_s = 600;
    cfg.offer_hold_s = 10;
    return cfg;
}

mac_address nth_mac(std::uint32_t n) {
    return {0x02,
            0x00,
            static_cast<std::uint8_t>(n >> 24),
            static_cast<std::uint8_t>(n >> 16),
            static_cast<std::uint8_t>(n >> 8),
            static_cast<std::uint8_t>(n)};
}

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/shoal-dhcp-test.XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

TEST(dhcp_leases, offers_skip_reservations_and_flood_cannot_take_leases) {
    config cfg = full_config();
    auto t = lease_table::open(cfg, 1000);
    ASSERT_TRUE(t);
    auto a = t->offer(mac_a, 0, 0, 1000, 10);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, ip(10, 77, 2, 10));
    ASSERT_TRUE(t->bind(mac_a, *a, 1000, 600));
    // 10 DISCOVERs from made-up MACs: three addresses left (13 is .12 reserved), offers
    // recycle among them, mac_a's lease and the reservation stay untouched.
    for (std::uint32_t i = 0; i < 10; i++) {
        auto o = t->offer(nth_mac(i), 0, 0, 1001, 10);
        ASSERT_TRUE(o);
        EXPECT_NE(*o, ip(10, 77, 2, 10));
        EXPECT_NE(*o, ip(10, 77, 2, 12));
    }
    EXPECT_EQ(t->bound_address(mac_a, 1002), std::optional<ipv4>(ip(10, 77, 2, 10)));
    // A real client among the flood still gets an offer and can bind it at once.
    auto c = t->offer(nth_mac(99), 0, 0, 1002, 10);
    ASSERT_TRUE(c);
    EXPECT_TRUE(t->bind(nth_mac(99), *c, 1002, 600));
    // The MAC that lost its offer cannot take c.
    EXPECT_FALSE(t->bind(nth_mac(9), *c, 1002, 600));
    // A reserved address is never bound from the pool by someone else.
    EXPECT_FALSE(t->bind(mac_a, ip(10, 77, 2, 12), 1002, 600));
}

TEST(dhcp_leases, the_same_mac_gets_its_address_back) {
    auto t = lease_table::open(full_config(), 1000);
    ASSERT_TRUE(t);
    auto a = t->offer(mac_a, 0, 0, 1000, 10);
    ASSERT_TRUE(t->bind(mac_a, *a, 1000, 600));
    t->release(mac_a, *a);
    EXPECT_FALSE(t->bound_address(mac_a, 1001));
    auto again = t->offer(mac_a, 0, 0, 1001, 10);
    EXPECT_EQ(again, a);
    // Declined addresses are skipped.
    t->decline(mac_a, *a, 1002);
    auto other = t->offer(mac_a, 0, 0, 1003, 10);
    ASSERT_TRUE(other);
    EXPECT_NE(*other, *a);
}

TEST(dhcp_leases, survive_a_restart_and_a_torn_last_line) {
    temp_dir dir;
    std::string path = dir.path + "/leases";
    ipv4 first = 0;
    {
        auto t = lease_table::open(full_config(path), 1000);
        ASSERT_TRUE(t) << t.err().describe();
        first = *t->offer(mac_a, 0, 0, 1000, 10);
        ASSERT_TRUE(t->bind(mac_a, first, 1000, 600));
        auto second = *t->offer(nth_mac(1), 0, 0, 1000, 10);
        ASSERT_TRUE(t->bind(nth_mac(1), second, 1000, 600));
        t->release(nth_mac(1), second);
    }
    {
        std::ofstream f(path, std::ios::app);
        f << "bind 02:00:00:00:00:07 10.77";  // a crash mid-write
    }
    auto t = lease_table::open(full_config(path), 1100);
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->bound_address(mac_a, 1100), std::optional<ipv4>(first));
    EXPECT_FALSE(t->bound_address(nth_mac(1), 1100));
    EXPECT_FALSE(t->bound_address(nth_mac(7), 1100));
    // Another MAC cannot take mac_a's address after the restart.
    EXPECT_FALSE(t->bind(nth_mac(2), first, 1100, 600));
    // The rewritten file is clean: exactly the magic line and the two remembered addresses.
    std::ifstream f(path);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(f, line)) {
        lines.push_back(line);
    }
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "shoal-leases 1");
    EXPECT_EQ(lines[1], "bind 52:54:00:12:34:56 10.77.2.10 1600");
}

TEST(dhcp_leases, a_foreign_file_is_refused) {
    temp_dir dir;
    std::string path = dir.path + "/leases";
    std::ofstream(path) << "1700000000 52:54:00:12:34:56 10.77.2.10 pc *\n";  // dnsmasq's format
    auto t = lease_table::open(full_config(path), 1000);
    ASSERT_FALSE(t);
    EXPECT_EQ(t.err().code(), errc::version);
}

// ---- responder ---------------------------------------------------------------------------

arrival on_eth0(std::uint16_t port = 67) {
    arrival in;
    in.interface_index = 2;
    in.interface_name = "eth0";
    in.server_address = ip(10, 77, 0, 1);
    in.interface_mask = 0xffff0000;
    in.local_port = port;
    return in;
}

struct exchange {
    config cfg;
    std::optional<lease_table> table;
    std::unique_ptr<responder> r;
    std::array<std::uint8_t, packet_size_max> out{};
    message reply;
    destination to;

    explicit exchange(config c) : cfg(std::move(c)) {
        if (cfg.mode == mode::full) {
            table.emplace(std::move(*lease_table::open(cfg, 1000)));
        }
        r = std::make_unique<responder>(cfg, table ? &*table : nullptr);
    }
    // Sends bytes in; true if a reply came out (decoded into `reply`).
    bool send(const bytes& b, arrival in = on_eth0(), std::int64_t now = 1000) {
        message m;
        EXPECT_TRUE(decode_bytes(b, m));
        auto res = r->handle(m, in, now, out);
        if (!res) {
            return false;
        }
        to = res->second;
        EXPECT_TRUE(decode({out.data(), res->first}, reply));
        return true;
    }
};

TEST(dhcp_responder, full_mode_discover_offer_request_ack) {
    exchange x(full_config());
    ASSERT_TRUE(x.send(request_bytes(mac_a).type(message_type::discover).done()));
    EXPECT_EQ(x.reply.type, message_type::offer);
    EXPECT_EQ(x.reply.yiaddr, ip(10, 77, 2, 10));
    EXPECT_EQ(option_ipv4(x.reply, opt::server_id), ip(10, 77, 0, 1));
    EXPECT_EQ(option_ipv4(x.reply, opt::subnet_mask), 0xffff0000u);
    EXPECT_EQ(option_ipv4(x.reply, opt::router), ip(10, 77, 0, 254));
    EXPECT_EQ(x.reply.option_text(opt::domain_name), "lab");
    EXPECT_EQ(x.to.address, 0xffffffffu);  // no address yet: broadcast
    EXPECT_EQ(x.to.port, 68);
    EXPECT_TRUE(x.reply.file.empty());  // not a PXE client: no boot file
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::request)
                           .addr(opt::requested_address, ip(10, 77, 2, 10))
                           .addr(opt::server_id, ip(10, 77, 0, 1))
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::ack);
    EXPECT_EQ(x.reply.yiaddr, ip(10, 77, 2, 10));
    EXPECT_EQ(x.table->bound_address(mac_a, 1000), std::optional<ipv4>(ip(10, 77, 2, 10)));
    // Renewal: unicast to the client's address.
    ASSERT_TRUE(
        x.send(request_bytes(mac_a).type(message_type::request).ciaddr(ip(10, 77, 2, 10)).done()));
    EXPECT_EQ(x.reply.type, message_type::ack);
    EXPECT_EQ(x.to.address, ip(10, 77, 2, 10));
    // Another MAC asking for that address is refused.
    ASSERT_TRUE(x.send(request_bytes(nth_mac(3))
                           .type(message_type::request)
                           .addr(opt::requested_address, ip(10, 77, 2, 10))
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::nak);
    EXPECT_EQ(x.to.address, 0xffffffffu);
    // A wrong network is refused.
    ASSERT_TRUE(x.send(request_bytes(nth_mac(4))
                           .type(message_type::request)
                           .addr(opt::requested_address, ip(192, 168, 1, 5))
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::nak);
    // Release frees it.
    EXPECT_FALSE(x.send(request_bytes(mac_a)
                            .type(message_type::release)
                            .ciaddr(ip(10, 77, 2, 10))
                            .addr(opt::server_id, ip(10, 77, 0, 1))
                            .done()));
    EXPECT_FALSE(x.table->bound_address(mac_a, 1000));
    auto s = x.r->snapshot();
    EXPECT_EQ(s.offers, 1u);
    EXPECT_EQ(s.acks, 2u);
    EXPECT_EQ(s.naks, 2u);
    EXPECT_EQ(s.releases, 1u);
}

TEST(dhcp_responder, reservation_and_hostname) {
    exchange x(full_config());
    ASSERT_TRUE(x.send(request_bytes(mac_b).type(message_type::discover).done()));
    EXPECT_EQ(x.reply.yiaddr, ip(10, 77, 2, 12));
    EXPECT_EQ(x.reply.option_text(opt::hostname), "pc-b");
    ASSERT_TRUE(x.send(request_bytes(mac_b)
                           .type(message_type::request)
                           .addr(opt::requested_address, ip(10, 77, 2, 11))
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::nak);
    ASSERT_TRUE(x.send(request_bytes(mac_b)
                           .type(message_type::request)
                           .addr(opt::requested_address, ip(10, 77, 2, 12))
                           .addr(opt::server_id, ip(10, 77, 0, 1))
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::ack);
    EXPECT_EQ(x.reply.yiaddr, ip(10, 77, 2, 12));
}

TEST(dhcp_responder, request_for_another_server_frees_our_offer) {
    exchange x(full_config());
    ASSERT_TRUE(x.send(request_bytes(mac_a).type(message_type::discover).done()));
    ipv4 offered = x.reply.yiaddr;
    EXPECT_FALSE(x.send(request_bytes(mac_a)
                            .type(message_type::request)
                            .addr(opt::requested_address, offered)
                            .addr(opt::server_id, ip(10, 77, 0, 99))
                            .done()));
    EXPECT_TRUE(x.table->bind(nth_mac(5), offered, 1000, 600));
}

TEST(dhcp_responder, relayed_inform_and_decline) {
    config cfg = full_config();
    cfg.pools.push_back(
        {ip(10, 78, 5, 10), ip(10, 78, 5, 20), 0xffffff00, ip(10, 78, 5, 1), {}, {}});
    exchange x(cfg);
    // Relayed from 10.78.5.1: served from that subnet's pool, answered to the relay on 67.
    auto relayed = request_bytes(mac_a).type(message_type::discover).done();
    relayed[24] = 10;
    relayed[25] = 78;
    relayed[26] = 5;
    relayed[27] = 1;
    ASSERT_TRUE(x.send(relayed));
    EXPECT_EQ(x.reply.yiaddr, ip(10, 78, 5, 10));
    EXPECT_EQ(x.reply.giaddr, ip(10, 78, 5, 1));
    EXPECT_EQ(option_ipv4(x.reply, opt::subnet_mask), 0xffffff00u);
    EXPECT_EQ(x.to.address, ip(10, 78, 5, 1));
    EXPECT_EQ(x.to.port, 67);
    // INFORM: configuration and boot file, no address and no lease, unicast to ciaddr.
    ASSERT_TRUE(x.send(request_bytes(mac_b)
                           .type(message_type::inform)
                           .ciaddr(ip(10, 77, 9, 9))
                           .text(opt::vendor_class, "PXEClient")
                           .arch(7)
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::ack);
    EXPECT_EQ(x.reply.yiaddr, 0u);
    EXPECT_EQ(x.reply.ciaddr, ip(10, 77, 9, 9));
    EXPECT_FALSE(x.reply.has(opt::lease_time));
    EXPECT_EQ(x.reply.file, "ipxe.efi");
    EXPECT_EQ(x.to.address, ip(10, 77, 9, 9));
    // DECLINE: the address is parked, the next DISCOVER gets another one.
    ASSERT_TRUE(x.send(request_bytes(nth_mac(1)).type(message_type::discover).done()));
    ipv4 first = x.reply.yiaddr;
    ASSERT_TRUE(x.send(request_bytes(nth_mac(1))
                           .type(message_type::request)
                           .addr(opt::requested_address, first)
                           .addr(opt::server_id, ip(10, 77, 0, 1))
                           .done()));
    EXPECT_FALSE(x.send(request_bytes(nth_mac(1))
                            .type(message_type::decline)
                            .addr(opt::requested_address, first)
                            .addr(opt::server_id, ip(10, 77, 0, 1))
                            .done()));
    ASSERT_TRUE(x.send(request_bytes(nth_mac(1)).type(message_type::discover).done()));
    EXPECT_NE(x.reply.yiaddr, first);
    EXPECT_EQ(x.r->snapshot().declines, 1u);
}

TEST(dhcp_responder, boot_file_by_architecture_in_full_mode) {
    exchange x(full_config());
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient:Arch:00000:UNDI:002001")
                           .arch(0)
                           .done()));
    EXPECT_EQ(x.reply.file, "undionly.kpxe");
    EXPECT_EQ(x.reply.siaddr, ip(10, 77, 0, 1));
    EXPECT_FALSE(x.reply.has(opt::vendor_class));  // full mode: a plain DHCP offer with a file
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient:Arch:00007:UNDI:003016")
                           .arch(7)
                           .done()));
    EXPECT_EQ(x.reply.file, "ipxe.efi");
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient:Arch:00009:UNDI:003016")
                           .done()));
    EXPECT_EQ(x.reply.file, "ipxe.efi");  // arch from the vendor class when 93 is missing
    // iPXE: the script URL with the MAC, and "no ProxyDHCP" so it does not wait 3 s.
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient:Arch:00000:UNDI:002001")
                           .arch(0)
                           .text(opt::user_class, "iPXE")
                           .option(opt::parameter_list, {1, 3, 67})
                           .done()));
    EXPECT_EQ(x.reply.file, "http://10.77.0.1:8080/boot?mac=52:54:00:12:34:56");
    EXPECT_EQ(x.reply.option_text(opt::bootfile),
              "http://10.77.0.1:8080/boot?mac=52:54:00:12:34:56");
    auto eb = x.reply.option(opt::ipxe);
    ASSERT_EQ(eb.size(), 3u);
    EXPECT_EQ(eb[0], ipxe_opt::no_pxedhcp);
    EXPECT_EQ(eb[2], 1);
    // UEFI HTTP boot: a URL and the HTTPClient vendor class.
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "HTTPClient:Arch:00016:UNDI:003001")
                           .arch(16)
                           .done()));
    EXPECT_EQ(x.reply.file, "http://10.77.0.1:8080/ipxe.efi");
    EXPECT_EQ(x.reply.option_text(opt::vendor_class), "HTTPClient");
}

TEST(dhcp_responder, snponly_is_configurable) {
    config cfg = full_config();
    cfg.boot_files.uefi_x64 = "snponly.efi";
    exchange x(cfg);
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient")
                           .arch(9)
                           .done()));
    EXPECT_EQ(x.reply.file, "snponly.efi");
}

config proxy_config() {
    config cfg;
    cfg.interfaces = {"eth0"};
    return cfg;
}

TEST(dhcp_responder, proxy_offer_to_pxe_clients_only) {
    exchange x(proxy_config());
    auto uuid = bytes(17, 0xab);
    uuid[0] = 0;
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient:Arch:00000:UNDI:002001")
                           .arch(0)
                           .option(opt::client_uuid, uuid)
                           .done()));
    EXPECT_EQ(x.reply.type, message_type::offer);
    EXPECT_EQ(x.reply.yiaddr, 0u);  // proxyDHCP never hands out addresses
    EXPECT_EQ(x.reply.siaddr, ip(10, 77, 0, 1));
    EXPECT_EQ(x.reply.file, "undionly.kpxe");
    EXPECT_EQ(x.reply.option_text(opt::vendor_class), "PXEClient");
    EXPECT_EQ(option_ipv4(x.reply, opt::server_id), ip(10, 77, 0, 1));
    EXPECT_EQ(bytes(x.reply.option(opt::vendor_options).begin(),
                    x.reply.option(opt::vendor_options).end()),
              (bytes{6, 1, 8, 255}));
    EXPECT_EQ(
        bytes(x.reply.option(opt::client_uuid).begin(), x.reply.option(opt::client_uuid).end()),
        uuid);
    EXPECT_FALSE(x.reply.has(opt::lease_time));
    EXPECT_EQ(x.to.address, 0xffffffffu);
    // A plain client (no vendor class) and a REQUEST on 67 are the site server's business.
    EXPECT_FALSE(x.send(request_bytes(mac_b).type(message_type::discover).done()));
    EXPECT_FALSE(x.send(request_bytes(mac_a)
                            .type(message_type::request)
                            .text(opt::vendor_class, "PXEClient")
                            .addr(opt::requested_address, ip(10, 77, 3, 3))
                            .done()));
    // The boot server request on 4011, unicast back to where it came from.
    arrival pxe = on_eth0(4011);
    pxe.source_address = ip(10, 77, 3, 3);
    pxe.source_port = 68;
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::request)
                           .ciaddr(ip(10, 77, 3, 3))
                           .text(opt::vendor_class, "PXEClient:Arch:00007:UNDI:003016")
                           .arch(7)
                           .done(),
                       pxe));
    EXPECT_EQ(x.reply.type, message_type::ack);
    EXPECT_EQ(x.reply.file, "ipxe.efi");
    EXPECT_EQ(x.to.address, ip(10, 77, 3, 3));
    EXPECT_EQ(x.to.port, 68);
    // iPXE beside a site server gets its script URL from us (no 175: proxy replies do not
    // tell iPXE to skip ProxyDHCP, since that is what they are).
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::vendor_class, "PXEClient:Arch:00000:UNDI:002001")
                           .arch(0)
                           .text(opt::user_class, "iPXE")
                           .done()));
    EXPECT_EQ(x.reply.file, "http://10.77.0.1:8080/boot?mac=52:54:00:12:34:56");
    EXPECT_FALSE(x.reply.has(opt::ipxe));
    auto s = x.r->snapshot();
    EXPECT_EQ(s.proxy_offers, 2u);
    EXPECT_EQ(s.proxy_acks, 1u);
    EXPECT_EQ(s.ignored, 2u);
}

TEST(dhcp_responder, unknown_architecture_is_not_answered_in_proxy_mode) {
    exchange x(proxy_config());
    EXPECT_FALSE(x.send(request_bytes(mac_a)
                            .type(message_type::discover)
                            .text(opt::vendor_class, "PXEClient")
                            .arch(0x1234)
                            .done()));
}

TEST(dhcp_responder, replies_never_exceed_the_clients_limit) {
    config cfg = full_config();
    cfg.ipxe_script_url = std::string(400, 'x') + "{mac}";
    exchange x(cfg);
    ASSERT_TRUE(x.send(
        request_bytes(mac_a).type(message_type::discover).text(opt::user_class, "iPXE").done()));
    // A 576-byte client: the 417-byte URL fits neither the file field nor beside the other
    // options; the reply leaves it out (and says so in the log) rather than overflowing.
    EXPECT_EQ(x.reply.type, message_type::offer);
    EXPECT_TRUE(x.reply.file.empty());
    EXPECT_FALSE(x.reply.has(opt::bootfile));
    EXPECT_EQ(x.reply.yiaddr, ip(10, 77, 2, 10));
    // A client that takes 1500 bytes gets it, split over two option 67 instances.
    ASSERT_TRUE(x.send(request_bytes(mac_a)
                           .type(message_type::discover)
                           .text(opt::user_class, "iPXE")
                           .option(opt::max_message_size, {0x05, 0xdc})
                           .done()));
    EXPECT_EQ(x.reply.option_text(opt::bootfile), std::string(400, 'x') + "52:54:00:12:34:56");
}

TEST(dhcp_responder, random_requests_never_crash) {
    // Valid headers with random option soup, through decode and the responder in both modes.
    std::mt19937 rng(42);
    exchange full(full_config());
    exchange proxy(proxy_config());
    std::array<std::uint8_t, packet_size_max> out{};
    for (int i = 0; i < 20000; i++) {
        auto r = request_bytes(nth_mac(static_cast<std::uint32_t>(rng() % 50)));
        r.type(static_cast<message_type>(1 + rng() % 8));
        int n = static_cast<int>(rng() % 8);
        for (int k = 0; k < n; k++) {
            static const std::uint8_t codes[] = {50, 54, 60, 61, 77, 93, 97, 43, 175, 55, 57, 12};
            std::uint8_t code = codes[rng() % sizeof codes];
            bytes v(rng() % 20);
            for (auto& byte : v) {
                byte = static_cast<std::uint8_t>(rng());
            }
            if (code == 60 && rng() % 2) {
                v = bytes({'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't'});
            }
            r.option(code, v);
        }
        bytes b = r.done();
        message m;
        if (!decode_bytes(b, m)) {
            continue;
        }
        arrival in = on_eth0(rng() % 2 ? 67 : 4011);
        if (auto res = full.r->handle(m, in, 1000 + i / 100, out)) {
            message back;
            ASSERT_TRUE(decode({out.data(), res->first}, back));
            ASSERT_LE(res->first, reply_size_max(m));
        }
        if (auto res = proxy.r->handle(m, in, 1000, out)) {
            message back;
            ASSERT_TRUE(decode({out.data(), res->first}, back));
            ASSERT_EQ(back.yiaddr, 0u);
        }
    }
}

}  // namespace
}  // namespace shoal::dhcp
