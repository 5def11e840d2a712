#include "store/secrets.h"

#include <sodium.h>

#include <array>
#include <mutex>

namespace shoal::store {

namespace {

void init_sodium() {
    static std::once_flag once;
    std::call_once(once, [] {
        // sodium_init fails only without an entropy source; nothing here can work then.
        SHOAL_ASSERT_MSG(sodium_init() >= 0, "libsodium cannot initialize (no entropy source)");
    });
}

std::string to_hex(const unsigned char* bytes, std::size_t size) {
    std::string hex(size * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), bytes, size);
    hex.pop_back();
    return hex;
}

}  // namespace

result<std::string> hash_password(std::string_view password, bool cheap) {
    init_sodium();
    std::array<char, crypto_pwhash_STRBYTES> out{};
    const unsigned long long ops =
        cheap ? crypto_pwhash_argon2id_OPSLIMIT_MIN : crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
    const std::size_t mem =
        cheap ? crypto_pwhash_argon2id_MEMLIMIT_MIN : crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
    // crypto_pwhash_argon2id_str names the algorithm rather than taking libsodium's default.
    if (crypto_pwhash_argon2id_str(out.data(), password.data(), password.size(), ops, mem) != 0) {
        return error(errc::no_space, "password: not enough memory to hash it");
    }
    return std::string(out.data());
}

bool password_matches(std::string_view hash, std::string_view password) {
    init_sodium();
    const std::string h(hash);  // NUL-terminated, as libsodium wants
    return crypto_pwhash_str_verify(h.c_str(), password.data(), password.size()) == 0;
}

std::string random_secret_hex() {
    init_sodium();
    std::array<unsigned char, 32> bytes{};
    randombytes_buf(bytes.data(), bytes.size());
    return to_hex(bytes.data(), bytes.size());
}

std::string sha256_hex(std::string_view bytes) {
    init_sodium();
    std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
    crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(bytes.data()),
                       bytes.size());
    return to_hex(digest.data(), digest.size());
}

bool looks_like_secret(std::string_view text) noexcept {
    if (text.size() != 64) {
        return false;
    }
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

}  // namespace shoal::store
