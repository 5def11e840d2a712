// The address pool of a full-mode server: which address each MAC holds, offers that expire
// quickly, and a lease file that survives restarts.
//
// The file is a journal of text lines, appended on every bind and release and rewritten
// atomically (temporary file, fsync, rename) when it has grown to several times the live
// leases and when the table is opened:
//   shoal-leases 1
//   bind 52:54:00:12:34:56 10.77.2.10 1767225600     (MAC, address, expiry in Unix seconds)
//   free 52:54:00:12:34:56 10.77.2.10
// Appends are not fsynced: a process crash loses nothing, a power cut may lose the last
// binds, which costs only that a client renewing after it is bound again (the server
// accepts a renewal for a free address, see responder).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "dhcp/config.h"

namespace shoal::dhcp {

class lease_table {
public:
    // An address declined by a client (someone else uses it) is left alone this long.
    static constexpr std::int64_t decline_hold_s = 600;
    // The journal is compacted when it holds more lines than this many times the live
    // leases (and at least journal_lines_min).
    static constexpr std::size_t journal_growth_max = 4;
    static constexpr std::size_t journal_lines_min = 4096;

    // Builds the slots for cfg.pools and reads cfg.leases_path if set (a missing file is an
    // empty table). Bad lines are skipped with a warning naming the line; a file that cannot
    // be read or written is an error naming it.
    static result<lease_table> open(const config& cfg, std::int64_t now_s);

    lease_table(lease_table&&) noexcept;
    lease_table& operator=(lease_table&&) noexcept;
    ~lease_table();

    // The address to offer mac from the pool at pool_index: its own lease or last address,
    // else `requested` if free, else a never-used address, else the one free longest, else
    // the oldest pending offer taken back. Holds it for hold_s. nullopt: every address is
    // leased or declined.
    std::optional<ipv4> offer(const mac_address& mac, std::size_t pool_index, ipv4 requested,
                              std::int64_t now_s, std::uint32_t hold_s);

    // Binds address to mac for lease_s if the address is in a pool, not reserved for someone
    // else and not held by another MAC (a lease or an unexpired offer). Journals it.
    bool bind(const mac_address& mac, ipv4 address, std::int64_t now_s, std::uint32_t lease_s);

    // Forgets mac's lease of address (RELEASE); the address stays remembered as mac's last.
    void release(const mac_address& mac, ipv4 address);
    // Marks address unusable for decline_hold_s (DECLINE: another host answers on it).
    void decline(const mac_address& mac, ipv4 address, std::int64_t now_s);

    // mac's bound, unexpired address, or nullopt.
    std::optional<ipv4> bound_address(const mac_address& mac, std::int64_t now_s) const;
    // Whether address belongs to a pool (and which).
    std::optional<std::size_t> pool_of(ipv4 address) const;
    // True if address is held (bound or offered, unexpired) by a MAC other than mac.
    bool held_by_other(const mac_address& mac, ipv4 address, std::int64_t now_s) const;

    std::size_t bound_count(std::int64_t now_s) const;
    std::size_t size() const { return _slots.size(); }

    // Rewrites the journal now if it has grown past its bound (call from the idle loop).
    status maintain(std::int64_t now_s);

private:
    enum class state : std::uint8_t { unused, free, offered, bound, declined, reserved };
    struct slot {
        ipv4 address = 0;
        std::uint64_t owner = 0;   // MAC in the low 48 bits; 0 when none
        std::int64_t until_s = 0;  // offer hold, lease end or decline end
        state st = state::unused;
    };
    struct range {
        ipv4 first;
        ipv4 last;
        std::size_t base;    // index of `first` in _slots
        std::size_t cursor;  // next never-used slot to try
    };

    lease_table() = default;
    slot* find_slot(ipv4 address);
    const slot* find_slot(ipv4 address) const;
    bool available(const slot& s, std::int64_t now_s) const;
    void take(slot& s, std::uint64_t owner);
    void journal(const char* verb, const slot& s);
    status compact(std::int64_t now_s);
    status load(std::int64_t now_s);

    std::vector<slot> _slots;
    std::vector<range> _ranges;
    std::unordered_map<std::uint64_t, std::uint32_t> _by_mac;  // owner -> slot index
    std::string _path;
    int _fd = -1;
    std::size_t _journal_lines = 0;
};

std::uint64_t mac_key(const mac_address& mac) noexcept;

}  // namespace shoal::dhcp
