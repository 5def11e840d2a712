#include "common/result.h"

#include <cstring>

namespace shoal {

std::string_view errc_name(errc code) noexcept {
    switch (code) {
    case errc::invalid_argument: return "invalid argument";
    case errc::malformed: return "malformed";
    case errc::truncated: return "truncated";
    case errc::corrupt: return "corrupt";
    case errc::not_found: return "not found";
    case errc::exists: return "already exists";
    case errc::io: return "i/o error";
    case errc::no_space: return "no space";
    case errc::timeout: return "timed out";
    case errc::exhausted: return "limit reached";
    case errc::unsupported: return "unsupported";
    case errc::peer_gone: return "peer gone";
    case errc::cancelled: return "cancelled";
    case errc::version: return "unsupported version";
    case errc::conflict: return "conflict";
    case errc::unavailable: return "unavailable";
    case errc::denied: return "denied";
    }
    return "unknown error";
}

error::error(errc code, int sys_errno, std::string_view context) noexcept
    : _code(code), _sys_errno(sys_errno) {
    const std::size_t n = context.size() < context_size_max ? context.size() : context_size_max;
    if (n > 0) {
        std::memcpy(_context, context.data(), n);
    }
    _context_size = static_cast<std::uint16_t>(n);
}

std::string error::describe() const {
    std::string s(context());
    if (s.empty()) {
        s = errc_name(_code);
    }
    if (_sys_errno != 0) {
        char buffer[128];
        // GNU strerror_r returns the message, which may not be in buffer.
        const char* message = strerror_r(_sys_errno, buffer, sizeof buffer);
        s += ": ";
        s += message;
    }
    return s;
}

}  // namespace shoal
