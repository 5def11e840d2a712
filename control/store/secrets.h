// Passwords and secrets with libsodium (internal to control/store): Argon2id password
// hashes, random hex secrets, SHA-256 of secrets.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace shoal::store {

// An Argon2id hash in libsodium's string form ($argon2id$v=19$m=...), with the
// INTERACTIVE limits, or libsodium's minimum ones (still Argon2id) when cheap.
result<std::string> hash_password(std::string_view password, bool cheap);
// Whether the password matches the hash (false for a malformed hash).
bool password_matches(std::string_view hash, std::string_view password);
// 32 random bytes from randombytes_buf, as 64 lowercase hex digits.
std::string random_secret_hex();
// SHA-256 of the bytes, as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);
// 64 hex digits, either case: what random_secret_hex makes.
bool looks_like_secret(std::string_view text) noexcept;

}  // namespace shoal::store
