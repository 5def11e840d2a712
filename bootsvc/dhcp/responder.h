// The protocol logic of the DHCP server without sockets: one decoded request in, at most one
// encoded reply out, with where to send it. server.cpp feeds it from the sockets; unit tests
// feed it bytes and a clock.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>

#include "dhcp/config.h"
#include "dhcp/leases.h"
#include "dhcp/packet.h"
#include "dhcp/server.h"

namespace shoal::dhcp {

// Where a request came in.
struct arrival {
    int interface_index = 0;
    const char* interface_name = "";
    ipv4 server_address = 0;  // ours on that interface (option 54, URLs)
    ipv4 interface_mask = 0;  // the interface's subnet mask
    std::uint16_t local_port = 67;
    ipv4 source_address = 0;  // the client's (or relay's) source address
    std::uint16_t source_port = 68;
};

// Where the reply goes.
struct destination {
    ipv4 address = 0;  // 0xffffffff: broadcast on the arrival interface
    std::uint16_t port = 68;
};

// What a client is, from options 60, 77, 93 and 175, and the boot file or URL it gets.
struct boot_choice {
    enum class kind : std::uint8_t { none, pxe, ipxe, http } what = kind::none;
    std::optional<std::uint16_t> arch;
    std::string_view file;  // into the responder's buffer; empty: nothing to boot
};

class responder {
public:
    // table may be null in proxy mode. Both must outlive the responder.
    responder(const config& cfg, lease_table* table);

    // Handles one decoded request; writes the reply into out (at least packet_size_max bytes)
    // and returns its size and destination, or nullopt when nothing is to be sent (not for
    // us, or refused: the reason is logged at debug level).
    std::optional<std::pair<std::size_t, destination>> handle(const message& request,
                                                              const arrival& in, std::int64_t now_s,
                                                              std::span<std::uint8_t> out);

    // The boot file/URL for this client (exposed for tests).
    boot_choice choose_boot(const message& request, ipv4 server_address);

    // Counters, bumped with relaxed atomics so that another thread may read them.
    struct counters {
        std::atomic<std::uint64_t> received{0}, malformed{0}, ignored{0}, discovers{0}, requests{0},
            releases{0}, declines{0}, informs{0}, offers{0}, acks{0}, naks{0}, proxy_offers{0},
            proxy_acks{0}, pool_exhausted{0}, send_errors{0}, leases_active{0};
    };
    counters& count() noexcept { return _count; }
    struct stats snapshot() const noexcept;

private:
    using reply = std::optional<std::pair<std::size_t, destination>>;
    reply full(const message& m, const arrival& in, std::int64_t now_s,
               std::span<std::uint8_t> out);
    reply proxy(const message& m, const arrival& in, std::span<std::uint8_t> out);
    const reservation* reserved_for(const mac_address& mac) const noexcept;
    std::optional<std::size_t> pool_for(const message& m, const arrival& in) const noexcept;
    void add_boot(builder& b, const message& m, const boot_choice& boot, bool proxy_reply);
    void add_network(builder& b, const message& m, const arrival& in, std::size_t pool_index,
                     const reservation* res, bool with_lease);
    destination reply_to(const message& m, bool nak) const noexcept;
    std::string_view expand(std::string_view pattern, ipv4 server, const message& m,
                            std::string_view file);

    const config& _cfg;
    lease_table* _table;
    // Reservations by MAC (mac_key), built once: a lab may reserve every PC.
    std::unordered_map<std::uint64_t, const reservation*> _reserved;
    counters _count;
    std::array<char, 512> _url{};
};

}  // namespace shoal::dhcp
