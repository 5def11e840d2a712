#include "dhcp/responder.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace shoal::dhcp {
namespace {

constexpr ipv4 broadcast_address = 0xffffffff;

// Debug lines format MACs and addresses: build them only when someone reads them.
bool debug_on() { return spdlog::should_log(spdlog::level::debug); }

ipv4 mask_or(ipv4 mask, ipv4 fallback) { return mask ? mask : fallback; }

bool requested(const message& m, std::uint8_t code) {
    auto list = m.option(opt::parameter_list);
    return std::find(list.begin(), list.end(), code) != list.end();
}

// "PXEClient:Arch:00007:UNDI:003016" carries the architecture too, for clients without 93.
std::optional<std::uint16_t> arch_from_vendor_class(std::string_view vc) {
    constexpr std::string_view key = ":Arch:";
    auto at = vc.find(key);
    if (at == std::string_view::npos || vc.size() < at + key.size() + 5) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (char c : vc.substr(at + key.size(), 5)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value <= 0xffff ? std::optional<std::uint16_t>(static_cast<std::uint16_t>(value))
                           : std::nullopt;
}

}  // namespace

responder::responder(const config& cfg, lease_table* table) : _cfg(cfg), _table(table) {
    for (const reservation& r : _cfg.reservations) {
        _reserved.emplace(mac_key(r.mac), &r);
    }
}

struct stats responder::snapshot() const noexcept {
    struct stats s;
    auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.received = r(_count.received);
    s.malformed = r(_count.malformed);
    s.ignored = r(_count.ignored);
    s.discovers = r(_count.discovers);
    s.requests = r(_count.requests);
    s.releases = r(_count.releases);
    s.declines = r(_count.declines);
    s.informs = r(_count.informs);
    s.offers = r(_count.offers);
    s.acks = r(_count.acks);
    s.naks = r(_count.naks);
    s.proxy_offers = r(_count.proxy_offers);
    s.proxy_acks = r(_count.proxy_acks);
    s.pool_exhausted = r(_count.pool_exhausted);
    s.send_errors = r(_count.send_errors);
    s.leases_active = r(_count.leases_active);
    return s;
}

std::string_view responder::expand(std::string_view pattern, ipv4 server, const message& m,
                                   std::string_view file) {
    // Formatted in place into _url (cut at its size): nothing is allocated per client.
    char* const begin = _url.data();
    char* const end = begin + _url.size();
    char* out = begin;
    auto put = [&](std::string_view s) {
        std::size_t n = std::min(s.size(), static_cast<std::size_t>(end - out));
        std::memcpy(out, s.data(), n);
        out += n;
    };
    while (!pattern.empty()) {
        if (pattern.starts_with("{server}")) {
            out = fmt::format_to_n(out, static_cast<std::size_t>(end - out), "{}.{}.{}.{}",
                                   server >> 24, (server >> 16) & 0xff, (server >> 8) & 0xff,
                                   server & 0xff)
                      .out;
            pattern.remove_prefix(8);
        } else if (pattern.starts_with("{mac}")) {
            const auto& c = m.chaddr;
            out = fmt::format_to_n(out, static_cast<std::size_t>(end - out),
                                   "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", c[0], c[1], c[2],
                                   c[3], c[4], c[5])
                      .out;
            pattern.remove_prefix(5);
        } else if (pattern.starts_with("{file}")) {
            put(file);
            pattern.remove_prefix(6);
        } else {
            put(pattern.substr(0, 1));
            pattern.remove_prefix(1);
        }
    }
    return {begin, static_cast<std::size_t>(out - begin)};
}

boot_choice responder::choose_boot(const message& m, ipv4 server_address) {
    boot_choice c;
    c.arch = client_arch(m);
    if (!c.arch) {
        c.arch = arch_from_vendor_class(m.option_text(opt::vendor_class));
    }
    bool is_ipxe = user_class_is(m, "iPXE") || m.has(opt::ipxe);
    bool is_http = vendor_class_starts_with(m, "HTTPClient") ||
                   (c.arch && (*c.arch == arch::http_ia32 || *c.arch == arch::http_x64 ||
                               *c.arch == arch::http_arm64));
    bool is_pxe = vendor_class_starts_with(m, "PXEClient");
    auto uefi_file = [&](std::uint16_t a) -> std::string_view {
        switch (a) {
        case arch::efi_ia32:
        case arch::http_ia32: return _cfg.boot_files.uefi_ia32;
        case arch::efi_bc:
        case arch::efi_x64:
        case arch::http_x64: return _cfg.boot_files.uefi_x64;
        case arch::efi_arm64:
        case arch::http_arm64: return _cfg.boot_files.uefi_arm64;
        default: return {};
        }
    };
    if (is_ipxe) {
        // Already iPXE: never undionly.kpxe again (it would chainload itself forever).
        c.what = boot_choice::kind::ipxe;
        c.file = expand(_cfg.ipxe_script_url, server_address, m, {});
    } else if (is_http) {
        c.what = boot_choice::kind::http;
        std::string_view f =
            c.arch ? uefi_file(*c.arch) : std::string_view(_cfg.boot_files.uefi_x64);
        if (!f.empty()) {
            c.file = expand(_cfg.http_boot_url, server_address, m, f);
        }
    } else if (is_pxe || c.arch) {
        c.what = boot_choice::kind::pxe;
        if (c.arch && *c.arch == arch::bios) {
            c.file = _cfg.boot_files.bios;
        } else if (c.arch) {
            c.file = uefi_file(*c.arch);
        } else {
            c.file = _cfg.boot_files.bios;  // PXE ROMs too old to send option 93 are BIOS ones
        }
    }
    return c;
}

const reservation* responder::reserved_for(const mac_address& mac) const noexcept {
    auto it = _reserved.find(mac_key(mac));
    return it == _reserved.end() ? nullptr : it->second;
}

std::optional<std::size_t> responder::pool_for(const message& m, const arrival& in) const noexcept {
    // Relayed: the relay's address names the subnet; else the interface's own subnet.
    ipv4 anchor = m.giaddr ? m.giaddr : in.server_address;
    for (std::size_t i = 0; i < _cfg.pools.size(); i++) {
        const pool& p = _cfg.pools[i];
        ipv4 mask = mask_or(p.subnet_mask, in.interface_mask);
        if ((p.first & mask) == (anchor & mask)) {
            return i;
        }
    }
    return std::nullopt;
}

destination responder::reply_to(const message& m, bool nak) const noexcept {
    if (m.giaddr) {
        return {m.giaddr, _cfg.server_port};
    }
    if (!nak && m.ciaddr) {
        return {m.ciaddr, _cfg.client_port};
    }
    // No address yet (or a NAK): broadcast, which every firmware hears (OVMF needs it).
    return {broadcast_address, _cfg.client_port};
}

void responder::add_boot(builder& b, const message& m, const boot_choice& boot, bool proxy_reply) {
    if (boot.what == boot_choice::kind::http) {
        b.add_text(opt::vendor_class, "HTTPClient");
    } else if (proxy_reply) {
        // A ProxyDHCP reply is recognised by "PXEClient" (PXE spec, and iPXE's test).
        b.add_text(opt::vendor_class, "PXEClient");
    }
    if (boot.file.empty()) {
        return;
    }
    bool in_field = b.set_file(boot.file);
    if (!in_field || requested(m, opt::bootfile)) {
        if (!b.add_text(opt::bootfile, boot.file)) {
            log::warn("dhcp: boot file '{}' does not fit the reply to {}", boot.file,
                      format_mac(m.mac()));
        }
    }
    if (proxy_reply && boot.what == boot_choice::kind::pxe) {
        // PXE discovery control: "boot the file in this offer", no boot server discovery.
        const std::uint8_t vendor[] = {pxe_opt::discovery_control, 1, pxe_opt::skip_discovery,
                                       opt::end};
        b.add(opt::vendor_options, vendor);
    }
    if (proxy_reply && m.has(opt::client_uuid)) {
        b.add(opt::client_uuid, m.option(opt::client_uuid));  // PXE wants its UUID echoed
    }
    if (!proxy_reply && boot.what == boot_choice::kind::ipxe) {
        // iPXE need not wait ~3 s for ProxyDHCP offers: this server says all there is.
        const std::uint8_t eb[] = {ipxe_opt::no_pxedhcp, 1, 1};
        b.add(opt::ipxe, eb);
    }
}

void responder::add_network(builder& b, const message& m, const arrival& in, std::size_t pool_index,
                            const reservation* res, bool with_lease) {
    const pool* p = pool_index < _cfg.pools.size() ? &_cfg.pools[pool_index] : nullptr;
    ipv4 mask = mask_or(p ? p->subnet_mask : 0, in.interface_mask);
    b.add_ipv4(opt::subnet_mask, mask);
    if (p && p->router) {
        b.add_ipv4(opt::router, p->router);
    }
    if (p && !p->dns_servers.empty()) {
        std::uint8_t v[4 * 16];
        std::size_t n = std::min<std::size_t>(p->dns_servers.size(), 16);
        for (std::size_t i = 0; i < n; i++) {
            ipv4 a = p->dns_servers[i];
            v[4 * i] = static_cast<std::uint8_t>(a >> 24);
            v[4 * i + 1] = static_cast<std::uint8_t>(a >> 16);
            v[4 * i + 2] = static_cast<std::uint8_t>(a >> 8);
            v[4 * i + 3] = static_cast<std::uint8_t>(a);
        }
        b.add(opt::dns_servers, std::span<const std::uint8_t>(v, 4 * n));
    }
    if (p && !p->domain_name.empty()) {
        b.add_text(opt::domain_name, p->domain_name);
    }
    if (res && !res->hostname.empty()) {
        b.add_text(opt::hostname, res->hostname);
    }
    if (with_lease) {
        b.add_u32(opt::lease_time, _cfg.lease_time_s);
        b.add_u32(opt::renewal_time, _cfg.lease_time_s / 2);
        b.add_u32(opt::rebinding_time, static_cast<std::uint32_t>(_cfg.lease_time_s * 7ull / 8));
    }
    (void)m;
}

responder::reply responder::handle(const message& m, const arrival& in, std::int64_t now_s,
                                   std::span<std::uint8_t> out) {
    SHOAL_ASSERT(out.size() >= packet_size_max);
    if (m.op != op_request) {
        _count.ignored.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;  // another server's reply, broadcast on the link
    }
    if (m.type == message_type::none) {
        _count.ignored.fetch_add(1, std::memory_order_relaxed);
        if (debug_on())
            log::debug("dhcp: {} on {}: BOOTP request (no option 53) ignored", format_mac(m.mac()),
                       in.interface_name);
        return std::nullopt;
    }
    if (!m.has_mac()) {
        _count.ignored.fetch_add(1, std::memory_order_relaxed);
        if (debug_on())
            log::debug(
                "dhcp: request on {} with hardware type {} length {} ignored: only Ethernet is "
                "served",
                in.interface_name, m.htype, m.hlen);
        return std::nullopt;
    }
    if (_cfg.mode == mode::proxy || in.local_port == _cfg.pxe_port) {
        return proxy(m, in, out);
    }
    return full(m, in, now_s, out);
}

responder::reply responder::proxy(const message& m, const arrival& in,
                                  std::span<std::uint8_t> out) {
    bool on_pxe_port = in.local_port == _cfg.pxe_port;
    // Boot server discovery may come broadcast to 67 too: a REQUEST naming a boot item (43.71).
    bool boot_item = !sub_option(m.option(opt::vendor_options), pxe_opt::boot_item).empty();
    bool asks = m.type == message_type::discover ||
                ((m.type == message_type::request || m.type == message_type::inform) &&
                 (on_pxe_port || boot_item));
    bool pxe_like =
        vendor_class_starts_with(m, "PXEClient") || vendor_class_starts_with(m, "HTTPClient");
    if (!asks || !pxe_like) {
        _count.ignored.fetch_add(1, std::memory_order_relaxed);
        if (debug_on())
            log::debug("dhcp: {} {} on {}:{} is not a PXE request: left to the site's DHCP server",
                       format_mac(m.mac()), message_type_name(m.type), in.interface_name,
                       in.local_port);
        return std::nullopt;
    }
    if (m.type == message_type::discover) {
        _count.discovers.fetch_add(1, std::memory_order_relaxed);
    } else {
        _count.requests.fetch_add(1, std::memory_order_relaxed);
    }
    boot_choice boot = choose_boot(m, in.server_address);
    if (boot.file.empty()) {
        _count.ignored.fetch_add(1, std::memory_order_relaxed);
        log::info("dhcp: {} on {}: no boot file for architecture {}: not answered",
                  format_mac(m.mac()), in.interface_name,
                  boot.arch ? static_cast<int>(*boot.arch) : -1);
        return std::nullopt;
    }
    ipv4 tftp = _cfg.tftp_server ? _cfg.tftp_server : in.server_address;
    builder b(out, reply_size_max(m));
    // siaddr is set even when the boot file is a URL: iPXE drops a ProxyDHCPACK that has
    // no next-server (its dhcp_has_pxeopts() wants siaddr and a boot file, or a boot menu),
    // and then has nothing to boot.
    b.reply_header(m, 0, tftp);
    bool ack = m.type != message_type::discover;
    b.add_u8(opt::message_type,
             static_cast<std::uint8_t>(ack ? message_type::ack : message_type::offer));
    b.add_ipv4(opt::server_id, in.server_address);
    add_boot(b, m, boot, true);
    if (boot_item) {
        // Echo the boot item, as a boot server's ACK must (PXE 2.1, 2.2.6).
        std::uint8_t v[2 + 4 + 1] = {pxe_opt::boot_item, 4, 0, 0, 0, 0, opt::end};
        auto item = sub_option(m.option(opt::vendor_options), pxe_opt::boot_item);
        std::memcpy(v + 2, item.data(), std::min<std::size_t>(item.size(), 4));
        b.add(opt::vendor_options, v);
    }
    std::size_t size = b.finish();
    destination to;
    if (on_pxe_port || (ack && m.ciaddr)) {
        // The client has its address by now and asked us directly: answer where it asked from.
        to = {in.source_address ? in.source_address : m.ciaddr, in.source_port};
        if (!to.address) {
            to = {broadcast_address, _cfg.client_port};
        }
        _count.proxy_acks.fetch_add(1, std::memory_order_relaxed);
    } else {
        to = {broadcast_address, _cfg.client_port};
        _count.proxy_offers.fetch_add(1, std::memory_order_relaxed);
    }
    if (debug_on())
        log::debug("dhcp: {} {} on {}:{} arch {} -> proxy {} '{}'", format_mac(m.mac()),
                   message_type_name(m.type), in.interface_name, in.local_port,
                   boot.arch ? static_cast<int>(*boot.arch) : -1, ack ? "ACK" : "OFFER", boot.file);
    return std::pair{size, to};
}

responder::reply responder::full(const message& m, const arrival& in, std::int64_t now_s,
                                 std::span<std::uint8_t> out) {
    mac_address mac = m.mac();
    const reservation* res = reserved_for(mac);
    std::optional<std::size_t> pool_index = pool_for(m, in);
    ipv4 server_id = option_ipv4(m, opt::server_id);
    ipv4 wanted = option_ipv4(m, opt::requested_address);
    auto ignore = [&](const char* why) -> reply {
        _count.ignored.fetch_add(1, std::memory_order_relaxed);
        if (debug_on())
            log::debug("dhcp: {} {} on {}: {}", format_mac(mac), message_type_name(m.type),
                       in.interface_name, why);
        return std::nullopt;
    };
    auto in_subnet = [&](ipv4 a) {
        const pool* p = pool_index ? &_cfg.pools[*pool_index] : nullptr;
        ipv4 mask = mask_or(p ? p->subnet_mask : 0, in.interface_mask);
        ipv4 anchor = m.giaddr ? m.giaddr : in.server_address;
        return (a & mask) == (anchor & mask);
    };
    if (res && !in_subnet(res->address)) {
        log::warn("dhcp: {} is reserved {}, which is not on {}'s subnet: reservation ignored here",
                  format_mac(mac), format_ipv4(res->address), in.interface_name);
        res = nullptr;
    }
    auto answer = [&](message_type type, ipv4 yiaddr, bool with_lease) -> reply {
        boot_choice boot = choose_boot(m, in.server_address);
        ipv4 tftp = _cfg.tftp_server ? _cfg.tftp_server : in.server_address;
        builder b(out, reply_size_max(m));
        b.reply_header(m, yiaddr,
                       boot.what == boot_choice::kind::pxe && !boot.file.empty() ? tftp : 0);
        if (type == message_type::ack && m.type == message_type::inform) {
            b.set_ciaddr(m.ciaddr);
        }
        b.add_u8(opt::message_type, static_cast<std::uint8_t>(type));
        b.add_ipv4(opt::server_id, in.server_address);
        add_network(b, m, in, pool_index.value_or(SIZE_MAX), res, with_lease);
        add_boot(b, m, boot, false);
        if (requested(m, opt::tftp_server) && boot.what == boot_choice::kind::pxe &&
            !boot.file.empty()) {
            b.add_text(opt::tftp_server, format_ipv4(tftp));
        }
        std::size_t size = b.finish();
        (type == message_type::offer ? _count.offers : _count.acks)
            .fetch_add(1, std::memory_order_relaxed);
        if (debug_on())
            log::debug("dhcp: {} {} on {} -> {} {}{}{}", format_mac(mac), message_type_name(m.type),
                       in.interface_name, message_type_name(type),
                       format_ipv4(yiaddr ? yiaddr : m.ciaddr), boot.file.empty() ? "" : " boot ",
                       boot.file);
        return std::pair{size, reply_to(m, false)};
    };
    auto nak = [&](const char* why) -> reply {
        builder b(out, reply_size_max(m));
        b.reply_header(m, 0, 0);
        b.add_u8(opt::message_type, static_cast<std::uint8_t>(message_type::nak));
        b.add_ipv4(opt::server_id, in.server_address);
        b.add_text(opt::message, why);
        std::size_t size = b.finish();
        _count.naks.fetch_add(1, std::memory_order_relaxed);
        if (debug_on())
            log::debug("dhcp: {} REQUEST for {} on {} -> NAK: {}", format_mac(mac),
                       format_ipv4(wanted ? wanted : m.ciaddr), in.interface_name, why);
        return std::pair{size, reply_to(m, true)};
    };

    switch (m.type) {
    case message_type::discover: {
        _count.discovers.fetch_add(1, std::memory_order_relaxed);
        ipv4 offer = 0;
        if (res) {
            offer = res->address;
        } else if (!pool_index || !_table) {
            return ignore("no address pool on this interface's subnet");
        } else if (auto a = _table->offer(mac, *pool_index, wanted, now_s, _cfg.offer_hold_s)) {
            offer = *a;
        } else {
            _count.pool_exhausted.fetch_add(1, std::memory_order_relaxed);
            log::warn(
                "dhcp: {} on {}: no free address in the pool: every one is leased or declined",
                format_mac(mac), in.interface_name);
            return std::nullopt;
        }
        return answer(message_type::offer, offer, true);
    }
    case message_type::request: {
        _count.requests.fetch_add(1, std::memory_order_relaxed);
        if (server_id && server_id != in.server_address) {
            // SELECTING another server's offer: ours is free again.
            if (_table && wanted) {
                _table->release(mac, wanted);
            }
            return ignore("the client chose another server");
        }
        ipv4 address = wanted ? wanted : m.ciaddr;
        if (!address) {
            return ignore("REQUEST names no address (neither option 50 nor ciaddr)");
        }
        if (!in_subnet(address)) {
            return nak("address not on this network");
        }
        if (res) {
            if (address != res->address) {
                return nak("this client has a reserved address");
            }
            return answer(message_type::ack, address, true);
        }
        if (!_table || !_table->pool_of(address) || _table->pool_of(address) != pool_index) {
            return nak("address not in this server's pool");
        }
        // Renewals of an address we forgot (a lease file lost to a power cut) are accepted
        // when the address is free: the client keeps working, the table learns it again.
        if (!_table->bind(mac, address, now_s, _cfg.lease_time_s)) {
            return nak("address in use by another client");
        }
        return answer(message_type::ack, address, true);
    }
    case message_type::release:
        _count.releases.fetch_add(1, std::memory_order_relaxed);
        if (server_id != in.server_address) {
            return ignore("RELEASE for another server");
        }
        if (_table) {
            _table->release(mac, m.ciaddr);
        }
        if (debug_on()) log::debug("dhcp: {} released {}", format_mac(mac), format_ipv4(m.ciaddr));
        return std::nullopt;
    case message_type::decline:
        _count.declines.fetch_add(1, std::memory_order_relaxed);
        if (server_id != in.server_address) {
            return ignore("DECLINE for another server");
        }
        log::warn("dhcp: {} declined {}: another host answers on it; it is left alone for {} s",
                  format_mac(mac), format_ipv4(wanted), lease_table::decline_hold_s);
        if (_table) {
            _table->decline(mac, wanted, now_s);
        }
        return std::nullopt;
    case message_type::inform:
        _count.informs.fetch_add(1, std::memory_order_relaxed);
        if (!m.ciaddr) {
            return ignore("INFORM without ciaddr");
        }
        return answer(message_type::ack, 0, false);
    default: return ignore("not a client message");
    }
}

}  // namespace shoal::dhcp
