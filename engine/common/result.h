// Errors as values: a [[nodiscard]] result type that carries an error code, the errno that
// caused it (0 if none) and a short human context, without allocating and without
// exceptions, so it can be returned from per-packet and per-block paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "common/check.h"

namespace shoal {

// What went wrong, in terms a caller can act on. Expected failures only: broken invariants
// are assertions, not error codes.
enum class errc : std::uint8_t {
    invalid_argument = 1,  // the caller passed something unusable
    malformed,             // input bytes do not parse
    truncated,             // input ends before its own length says it should
    corrupt,               // parses, but a checksum or hash does not match
    not_found,
    exists,
    io,                    // a system call failed: see sys_errno()
    no_space,              // a disk, a store or a buffer is full
    timeout,
    exhausted,             // a bounded pool, queue or retry budget reached its limit
    unsupported,           // valid, but not something this build or kernel can do
    peer_gone,             // the other side stopped answering or went away
    cancelled,
    version,               // a format or protocol version this build does not speak
    conflict,              // valid, but clashes with what is stored (a duplicate, a rule)
    unavailable,           // a service this needs (a database) cannot be reached now
    denied,                // wrong, expired or missing credentials
};

// The lowercase name of a code, e.g. "truncated".
std::string_view errc_name(errc code) noexcept;

class error {
public:
    static constexpr std::size_t context_size_max = 200;

    // context is copied (and cut to context_size_max bytes); nothing is allocated.
    error(errc code, int sys_errno, std::string_view context) noexcept;
    error(errc code, std::string_view context) noexcept : error(code, 0, context) {}

    // Formats the context in place with fmt; cut to context_size_max bytes.
    template <class... Args>
    static error format(errc code, int sys_errno, fmt::format_string<Args...> fmt_string,
                        Args&&... args) noexcept {
        error e(code, sys_errno, {});
        auto out = fmt::format_to_n(e._context, context_size_max, fmt_string,
                                    std::forward<Args>(args)...);
        e._context_size = static_cast<std::uint16_t>(out.size < context_size_max ? out.size
                                                                                  : context_size_max);
        return e;
    }

    errc code() const noexcept { return _code; }
    int sys_errno() const noexcept { return _sys_errno; }
    std::string_view context() const noexcept { return {_context, _context_size}; }

    // "context: strerror(errno)" or "context" — what a person reads. Allocates; cold path.
    std::string describe() const;

private:
    errc _code;
    int _sys_errno;
    std::uint16_t _context_size = 0;
    char _context[context_size_max];
};

// Builds an error from -errno, as liburing and many system calls report them.
inline error sys_error(int negative_errno, std::string_view context) noexcept {
    return error(errc::io, negative_errno < 0 ? -negative_errno : negative_errno, context);
}

template <class T>
class [[nodiscard]] result {
    static_assert(!std::is_same_v<T, error>, "result<error> is meaningless");

public:
    // cppcheck-suppress passedByValue ; taken by value to be moved in
    result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit by design
        : _v(std::in_place_index<0>, std::move(value)) {}
    result(const error& e) noexcept : _v(std::in_place_index<1>, e) {}  // NOLINT: implicit by design

    bool has_value() const noexcept { return _v.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & noexcept {
        SHOAL_ASSERT_MSG(has_value(), "value() of a failed result: {}", std::get<1>(_v).context());
        return std::get<0>(_v);
    }
    const T& value() const& noexcept {
        SHOAL_ASSERT_MSG(has_value(), "value() of a failed result: {}", std::get<1>(_v).context());
        return std::get<0>(_v);
    }
    T&& value() && noexcept {
        SHOAL_ASSERT_MSG(has_value(), "value() of a failed result: {}", std::get<1>(_v).context());
        return std::get<0>(std::move(_v));
    }
    T& operator*() & noexcept { return value(); }
    const T& operator*() const& noexcept { return value(); }
    T&& operator*() && noexcept { return std::move(*this).value(); }
    T* operator->() noexcept { return &value(); }
    const T* operator->() const noexcept { return &value(); }

    const shoal::error& err() const noexcept {
        SHOAL_ASSERT(!has_value());
        return std::get<1>(_v);
    }

private:
    std::variant<T, shoal::error> _v;
};

template <>
class [[nodiscard]] result<void> {
public:
    result() noexcept = default;
    result(const error& e) noexcept : _error(e) {}  // NOLINT: implicit by design

    bool has_value() const noexcept { return !_error.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    const shoal::error& err() const noexcept {
        SHOAL_ASSERT(_error.has_value());
        return *_error;
    }

private:
    // Empty on success, so ok() builds and copies nothing of the error's context.
    std::optional<shoal::error> _error;
};

using status = result<void>;

inline status ok() noexcept { return {}; }

}  // namespace shoal

// Returns the error of a failed status or result from the enclosing function.
#define SHOAL_RETURN_IF_ERROR(expr)                 \
    do {                                            \
        if (auto shoal_r_ = (expr); !shoal_r_) {    \
            return shoal_r_.err();                \
        }                                           \
    } while (0)
