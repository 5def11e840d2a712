// The DHCP decoder and the responder on hostile bytes, in full and proxy mode, on port 67 and
// 4011. Promises: decode never reads outside the input; whatever it accepts, the responder
// answers with a reply that decodes again, fits the client's size limit, and in proxy mode
// never hands out an address. The first input byte picks the port; the rest is the packet.
#include <cstdint>
#include <optional>
#include <span>

#include "common/log.h"
#include "dhcp/leases.h"
#include "dhcp/packet.h"
#include "dhcp/responder.h"

namespace {

using namespace shoal;
using namespace shoal::dhcp;

struct state {
    config full_cfg;
    config proxy_cfg;
    std::optional<lease_table> table;
    std::optional<responder> full;
    std::optional<responder> proxy;
    message m;
    message back;
    std::array<std::uint8_t, packet_size_max> out{};

    state() {
        log::set_level(log::level::off);
        full_cfg.mode = mode::full;
        full_cfg.interfaces = {"eth0"};
        full_cfg.pools.push_back({0x0a4d020a, 0x0a4d0214, 0, 0x0a4d00fe, {0x0a4d0035}, "lab"});
        full_cfg.reservations.push_back({{0x52, 0x54, 0, 0x12, 0x34, 0x56}, 0x0a4d0205, "pc"});
        proxy_cfg.interfaces = {"eth0"};
        table.emplace(std::move(*lease_table::open(full_cfg, 1000)));
        full.emplace(full_cfg, &*table);
        proxy.emplace(proxy_cfg, nullptr);
    }
};

void check_reply(state& s, const std::optional<std::pair<std::size_t, destination>>& r,
                 bool proxy) {
    if (!r) {
        return;
    }
    if (r->first > reply_size_max(s.m) || r->first < reply_size_min) {
        __builtin_trap();
    }
    if (!decode({s.out.data(), r->first}, s.back) || s.back.op != op_reply ||
        s.back.xid != s.m.xid) {
        __builtin_trap();
    }
    if (proxy && s.back.yiaddr != 0) {
        __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static state s;
    if (size < 1) {
        return 0;
    }
    arrival in;
    in.interface_name = "eth0";
    in.server_address = 0x0a4d0001;
    in.interface_mask = 0xffff0000;
    in.local_port = data[0] & 1 ? 4011 : 67;
    in.source_address = 0x0a4d0303;
    if (!decode({data + 1, size - 1}, s.m)) {
        return 0;
    }
    // Every option the decoder reports lies in its own storage: reading it all is safe.
    volatile std::uint8_t sink = 0;
    for (int code = 0; code < 256; code++) {
        for (auto b : s.m.option(static_cast<std::uint8_t>(code))) {
            sink = sink ^ b;
        }
    }
    static std::int64_t now = 1000;
    now++;
    check_reply(s, s.full->handle(s.m, in, now, s.out), false);
    check_reply(s, s.proxy->handle(s.m, in, now, s.out), true);
    return 0;
}
