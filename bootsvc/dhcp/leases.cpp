#include "dhcp/leases.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "common/log.h"

namespace shoal::dhcp {
namespace {

constexpr std::string_view journal_magic = "shoal-leases 1";
// A line of the journal is short; a longer one is corrupt.
constexpr std::size_t line_size_max = 128;
constexpr std::uint64_t key_present = std::uint64_t{1} << 48;

mac_address key_mac(std::uint64_t key) {
    mac_address mac{};
    for (int i = 5; i >= 0; i--) {
        mac[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(key);
        key >>= 8;
    }
    return mac;
}

status write_all(int fd, std::string_view bytes, const std::string& path) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error::format(errc::io, errno, "writing the lease file {}", path);
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return ok();
}

}  // namespace

std::uint64_t mac_key(const mac_address& mac) noexcept {
    std::uint64_t key = 0;
    for (auto b : mac) {
        key = (key << 8) | b;
    }
    return key | key_present;
}

lease_table::lease_table(lease_table&& other) noexcept { *this = std::move(other); }

lease_table& lease_table::operator=(lease_table&& other) noexcept {
    if (this != &other) {
        if (_fd >= 0) {
            ::close(_fd);
        }
        _slots = std::move(other._slots);
        _ranges = std::move(other._ranges);
        _by_mac = std::move(other._by_mac);
        _path = std::move(other._path);
        _fd = std::exchange(other._fd, -1);
        _journal_lines = other._journal_lines;
    }
    return *this;
}

lease_table::~lease_table() {
    if (_fd >= 0) {
        ::close(_fd);
    }
}

result<lease_table> lease_table::open(const config& cfg, std::int64_t now_s) {
    lease_table t;
    std::size_t total = 0;
    for (const pool& p : cfg.pools) {
        if (p.first == 0 || p.last < p.first || p.last - p.first >= (1u << 16)) {
            return error::format(errc::invalid_argument, 0,
                                 "dhcp pool {} - {} is not a valid range", format_ipv4(p.first),
                                 format_ipv4(p.last));
        }
        t._ranges.push_back(range{p.first, p.last, total, 0});
        total += std::size_t{p.last - p.first} + 1;
    }
    t._slots.resize(total);
    for (const range& r : t._ranges) {
        for (ipv4 a = r.first;; a++) {
            t._slots[r.base + (a - r.first)].address = a;
            if (a == r.last) {
                break;
            }
        }
    }
    for (const reservation& res : cfg.reservations) {
        if (slot* s = t.find_slot(res.address)) {
            s->st = state::reserved;
            s->owner = mac_key(res.mac);
        }
    }
    t._by_mac.reserve(total);
    t._path = cfg.leases_path;
    if (!t._path.empty()) {
        SHOAL_RETURN_IF_ERROR(t.load(now_s));
        SHOAL_RETURN_IF_ERROR(t.compact(now_s));
    }
    return t;
}

lease_table::slot* lease_table::find_slot(ipv4 address) {
    return const_cast<slot*>(std::as_const(*this).find_slot(address));
}

const lease_table::slot* lease_table::find_slot(ipv4 address) const {
    for (const range& r : _ranges) {
        if (address >= r.first && address <= r.last) {
            return &_slots[r.base + (address - r.first)];
        }
    }
    return nullptr;
}

std::optional<std::size_t> lease_table::pool_of(ipv4 address) const {
    for (std::size_t i = 0; i < _ranges.size(); i++) {
        if (address >= _ranges[i].first && address <= _ranges[i].last) {
            return i;
        }
    }
    return std::nullopt;
}

bool lease_table::available(const slot& s, std::int64_t now_s) const {
    switch (s.st) {
    case state::unused:
    case state::free: return true;
    case state::offered:
    case state::bound:
    case state::declined: return s.until_s <= now_s;
    case state::reserved: return false;
    }
    return false;
}

void lease_table::take(slot& s, std::uint64_t owner) {
    if (s.owner != owner) {
        if (s.owner != 0) {
            auto it = _by_mac.find(s.owner);
            if (it != _by_mac.end() && &_slots[it->second] == &s) {
                _by_mac.erase(it);
            }
        }
        // A MAC holds one slot: leaving its previous one frees it.
        auto [it, inserted] =
            _by_mac.try_emplace(owner, static_cast<std::uint32_t>(&s - _slots.data()));
        if (!inserted) {
            slot& old = _slots[it->second];
            if (old.st == state::offered || old.st == state::bound) {
                old.st = state::free;
            }
            old.owner = 0;
            it->second = static_cast<std::uint32_t>(&s - _slots.data());
        }
        s.owner = owner;
    }
}

std::optional<ipv4> lease_table::offer(const mac_address& mac, std::size_t pool_index,
                                       ipv4 requested, std::int64_t now_s, std::uint32_t hold_s) {
    if (pool_index >= _ranges.size()) {
        return std::nullopt;
    }
    range& r = _ranges[pool_index];
    std::uint64_t key = mac_key(mac);
    auto in_range = [&](const slot& s) { return s.address >= r.first && s.address <= r.last; };
    auto hold = [&](slot& s) -> std::optional<ipv4> {
        take(s, key);
        if (s.st == state::bound && s.until_s > now_s) {
            return s.address;  // its own lease: offered again as it is
        }
        s.st = state::offered;
        s.until_s = now_s + hold_s;
        return s.address;
    };

    // Its own lease or the address it had last, if still free.
    if (auto it = _by_mac.find(key); it != _by_mac.end()) {
        slot& s = _slots[it->second];
        if (in_range(s) && s.owner == key && s.st != state::declined && s.st != state::reserved) {
            return hold(s);
        }
    }
    if (slot* s = find_slot(requested); s && in_range(*s) && available(*s, now_s)) {
        return hold(*s);
    }
    std::size_t count = std::size_t{r.last - r.first} + 1;
    // Never-used addresses first, so that a returning client finds its old one free.
    while (r.cursor < count) {
        slot& s = _slots[r.base + r.cursor++];
        if (s.st == state::unused) {
            return hold(s);
        }
    }
    // Then the address free the longest; last, take back the oldest pending offer, so that a
    // flood of DISCOVERs from made-up MACs cannot hold the pool.
    slot* best = nullptr;
    slot* oldest_offer = nullptr;
    for (std::size_t i = 0; i < count; i++) {
        slot& s = _slots[r.base + i];
        if (available(s, now_s)) {
            std::int64_t since = s.st == state::unused ? INT64_MIN : s.until_s;
            if (!best || since < (best->st == state::unused ? INT64_MIN : best->until_s)) {
                best = &s;
            }
        } else if (s.st == state::offered && (!oldest_offer || s.until_s < oldest_offer->until_s)) {
            oldest_offer = &s;
        }
    }
    if (best) {
        return hold(*best);
    }
    if (oldest_offer) {
        log::debug("dhcp: pool {} - {} full: taking back the offer of {} to {}",
                   format_ipv4(r.first), format_ipv4(r.last), format_ipv4(oldest_offer->address),
                   format_mac(key_mac(oldest_offer->owner)));
        return hold(*oldest_offer);
    }
    return std::nullopt;
}

bool lease_table::held_by_other(const mac_address& mac, ipv4 address, std::int64_t now_s) const {
    const slot* s = find_slot(address);
    if (!s) {
        return false;
    }
    if (s->st == state::reserved) {
        return s->owner != mac_key(mac);
    }
    return s->owner != 0 && s->owner != mac_key(mac) && !available(*s, now_s);
}

bool lease_table::bind(const mac_address& mac, ipv4 address, std::int64_t now_s,
                       std::uint32_t lease_s) {
    slot* s = find_slot(address);
    if (!s || s->st == state::reserved || held_by_other(mac, address, now_s)) {
        return false;
    }
    if (s->st == state::declined && s->until_s > now_s) {
        return false;
    }
    take(*s, mac_key(mac));
    s->st = state::bound;
    s->until_s = now_s + lease_s;
    journal("bind", *s);
    return true;
}

void lease_table::release(const mac_address& mac, ipv4 address) {
    slot* s = find_slot(address);
    if (!s || s->owner != mac_key(mac) || (s->st != state::bound && s->st != state::offered)) {
        return;
    }
    bool was_bound = s->st == state::bound;
    s->st = state::free;
    s->until_s = 0;
    if (was_bound) {
        journal("free", *s);
    }
}

void lease_table::decline(const mac_address& mac, ipv4 address, std::int64_t now_s) {
    slot* s = find_slot(address);
    if (!s || s->st == state::reserved || s->owner != mac_key(mac)) {
        return;
    }
    bool was_bound = s->st == state::bound;
    s->st = state::declined;
    s->until_s = now_s + decline_hold_s;
    _by_mac.erase(s->owner);
    if (was_bound) {
        journal("free", *s);
    }
    s->owner = 0;
}

std::optional<ipv4> lease_table::bound_address(const mac_address& mac, std::int64_t now_s) const {
    auto it = _by_mac.find(mac_key(mac));
    if (it == _by_mac.end()) {
        return std::nullopt;
    }
    const slot& s = _slots[it->second];
    if (s.st == state::bound && s.until_s > now_s) {
        return s.address;
    }
    return std::nullopt;
}

std::size_t lease_table::bound_count(std::int64_t now_s) const {
    std::size_t n = 0;
    for (const slot& s : _slots) {
        n += s.st == state::bound && s.until_s > now_s;
    }
    return n;
}

void lease_table::journal(const char* verb, const slot& s) {
    if (_fd < 0) {
        return;
    }
    // One line per bind on the hot path: formatted in place, no allocation.
    char line[line_size_max];
    mac_address mac = key_mac(s.owner);
    auto out = fmt::format_to_n(
        line, sizeof line - 1, "{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} {}.{}.{}.{} {}\n",
        verb, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], s.address >> 24,
        (s.address >> 16) & 0xff, (s.address >> 8) & 0xff, s.address & 0xff, s.until_s);
    if (auto st = write_all(_fd, {line, out.size}, _path); !st) {
        // The lease stands in memory; only a restart would forget it.
        log::err("dhcp: {} (the lease of {} holds until restart)", st.err().describe(),
                 format_ipv4(s.address));
        return;
    }
    _journal_lines++;
}

status lease_table::load(std::int64_t now_s) {
    FILE* f = std::fopen(_path.c_str(), "re");
    if (!f) {
        if (errno == ENOENT) {
            return ok();
        }
        return error::format(errc::io, errno, "opening the lease file {}", _path);
    }
    char buf[line_size_max + 2];
    std::size_t line_number = 0;
    std::size_t bad = 0;
    while (std::fgets(buf, sizeof buf, f)) {
        line_number++;
        std::string_view line(buf);
        if (line.empty() || line.back() != '\n') {
            // A line cut by a crash mid-write, or one too long to be ours.
            log::warn("dhcp: {} line {}: incomplete or too long, skipped", _path, line_number);
            bad++;
            // Skip the rest of an overlong line.
            int c;
            while (line.size() == sizeof buf - 1 && (c = std::fgetc(f)) != EOF && c != '\n') {
            }
            continue;
        }
        line.remove_suffix(1);
        if (line_number == 1) {
            if (line != journal_magic) {
                std::fclose(f);
                return error::format(
                    errc::version, 0,
                    "{} is not a shoal lease file (first line is not '{}'): move it away", _path,
                    journal_magic);
            }
            continue;
        }
        char verb[8], mac_text[32], ip_text[32];
        long long until = 0;
        int fields = std::sscanf(std::string(line).c_str(), "%7s %31s %31s %lld", verb, mac_text,
                                 ip_text, &until);
        auto mac =
            fields >= 3 ? parse_mac(mac_text) : result<mac_address>(error(errc::malformed, ""));
        auto ip = fields >= 3 ? parse_ipv4(ip_text) : result<ipv4>(error(errc::malformed, ""));
        bool is_bind = fields == 4 && std::strcmp(verb, "bind") == 0;
        bool is_free = fields >= 3 && std::strcmp(verb, "free") == 0;
        if (!mac || !ip || (!is_bind && !is_free)) {
            log::warn("dhcp: {} line {}: not 'bind MAC IP EXPIRY' or 'free MAC IP', skipped", _path,
                      line_number);
            bad++;
            continue;
        }
        slot* s = find_slot(*ip);
        if (!s) {
            log::info("dhcp: {} line {}: {} is outside every pool now, forgotten", _path,
                      line_number, ip_text);
            continue;
        }
        if (s->st == state::reserved) {
            if (s->owner != mac_key(*mac)) {
                log::info("dhcp: {} line {}: {} is reserved for {} now; {} loses it", _path,
                          line_number, ip_text, format_mac(key_mac(s->owner)), mac_text);
            }
            continue;
        }
        take(*s, mac_key(*mac));
        if (is_bind) {
            s->st = state::bound;
            s->until_s = until;
        } else {
            s->st = state::free;
            s->until_s = 0;
        }
    }
    bool read_error = std::ferror(f);
    std::fclose(f);
    if (read_error) {
        return error::format(errc::io, errno, "reading the lease file {}", _path);
    }
    std::size_t live = bound_count(now_s);
    log::info("dhcp: {}: {} leases live{}", _path, live,
              bad ? fmt::format(", {} bad lines skipped", bad) : "");
    return ok();
}

status lease_table::compact(std::int64_t now_s) {
    std::string tmp = _path + ".tmp";
    std::string text(journal_magic);
    text += '\n';
    std::size_t lines = 0;
    for (const slot& s : _slots) {
        // Expired leases are kept too: they tell a returning client its old address.
        if (s.owner != 0 && (s.st == state::bound || s.st == state::free)) {
            text += fmt::format("{} {} {} {}\n", s.st == state::bound ? "bind" : "free",
                                format_mac(key_mac(s.owner)), format_ipv4(s.address), s.until_s);
            lines++;
        }
    }
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return error::format(errc::io, errno,
                             "creating {} (is the lease file's directory writable?)", tmp);
    }
    status st = write_all(fd, text, tmp);
    if (st && ::fsync(fd) != 0) {
        st = error::format(errc::io, errno, "fsync of {}", tmp);
    }
    ::close(fd);
    if (st && ::rename(tmp.c_str(), _path.c_str()) != 0) {
        st = error::format(errc::io, errno, "renaming {} to {}", tmp, _path);
    }
    if (!st) {
        ::unlink(tmp.c_str());
        return st;
    }
    std::string dir =
        _path.find('/') == std::string::npos ? "." : _path.substr(0, _path.rfind('/') + 1);
    if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    if (_fd >= 0) {
        ::close(_fd);
    }
    _fd = ::open(_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (_fd < 0) {
        return error::format(errc::io, errno, "opening the lease file {} to append", _path);
    }
    _journal_lines = lines;
    (void)now_s;
    return ok();
}

status lease_table::maintain(std::int64_t now_s) {
    if (_path.empty()) {
        return ok();
    }
    std::size_t bound = bound_count(now_s);
    if (_journal_lines > journal_lines_min && _journal_lines > journal_growth_max * bound) {
        return compact(now_s);
    }
    return ok();
}

}  // namespace shoal::dhcp
