#include "session/chunks.h"

#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

namespace shoal::session {

std::vector<std::span<const std::byte>> prepared_session::objects() const {
    std::vector<std::span<const std::byte>> out;
    out.reserve(chunk_wire.size() + 1);
    out.emplace_back(manifest_bytes);
    for (const auto& c : chunk_wire) {
        out.emplace_back(c);
    }
    return out;
}

std::array<std::uint8_t, 32> sha256_of(std::span<const std::byte> bytes) noexcept {
    std::array<std::uint8_t, 32> digest{};
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
    return digest;
}

result<prepared_session> prepare_session(std::span<const std::byte> data, std::size_t chunk_size,
                                         int level, unsigned threads) {
    if (chunk_size == 0 || chunk_size > wire::chunk_raw_size_max) {
        return error::format(errc::invalid_argument, 0, "chunk size {} outside 1..{}", chunk_size,
                             wire::chunk_raw_size_max);
    }
    if (data.empty()) {
        return error(errc::invalid_argument, "nothing to send: the input is empty");
    }
    prepared_session p;
    const std::size_t count = (data.size() + chunk_size - 1) / chunk_size;
    p.manifest.target_size = data.size();
    p.manifest.chunks.resize(count);
    p.chunk_wire.resize(count);
    p.chunk_frames.resize(count);
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    auto work = [&] {
        ZSTD_CCtx* cctx = ZSTD_createCCtx();
        for (std::size_t i; (i = next.fetch_add(1)) < count && cctx != nullptr;) {
            const std::size_t offset = i * chunk_size;
            const auto raw = data.subspan(offset, std::min(chunk_size, data.size() - offset));
            auto& entry = p.manifest.chunks[i];
            auto& out = p.chunk_frames[i];
            entry.target_offset = offset;
            entry.raw_size = static_cast<std::uint32_t>(raw.size());
            bool compressed = false;
            if (level > 0) {
                out.resize(ZSTD_compressBound(raw.size()));
                const std::size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), raw.data(),
                                                        raw.size(), level);
                if (!ZSTD_isError(n) && n < raw.size()) {
                    out.resize(n);
                    compressed = true;
                }
            }
            if (!compressed) {
                std::vector<std::byte>().swap(out);
            }
            p.chunk_wire[i] = compressed ? std::span<const std::byte>(out) : raw;
            entry.codec = compressed ? wire::chunk_codec::zstd : wire::chunk_codec::raw;
            entry.wire_size = static_cast<std::uint32_t>(p.chunk_wire[i].size());
            entry.sha256 = sha256_of(p.chunk_wire[i]);
            entry.raw_sha256 = compressed ? sha256_of(raw) : entry.sha256;
        }
        if (cctx == nullptr) {
            failed = true;
        }
        ZSTD_freeCCtx(cctx);
    };
    std::vector<std::thread> pool;
    const unsigned n = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(count)));
    for (unsigned t = 1; t < n; ++t) {
        pool.emplace_back(work);
    }
    work();
    for (auto& t : pool) {
        t.join();
    }
    if (failed) {
        return error(errc::no_space, "cannot create a zstd context");
    }
    auto bytes = wire::encode_manifest(p.manifest);
    if (!bytes) {
        return bytes.err();
    }
    p.manifest_bytes = std::move(*bytes);
    p.manifest_sha256 = sha256_of(p.manifest_bytes);
    return p;
}

status verify_and_decode(const wire::chunk_entry& entry, std::span<const std::byte> wire,
                         std::span<std::byte> out, ZSTD_DCtx* dctx) noexcept {
    if (wire.size() != entry.wire_size || out.size() < entry.raw_size) {
        return error(errc::invalid_argument, "chunk buffers do not match the manifest entry");
    }
    if (sha256_of(wire) != entry.sha256) {
        return error(errc::corrupt, "chunk does not match its SHA-256");
    }
    if (entry.codec == wire::chunk_codec::raw) {
        std::memcpy(out.data(), wire.data(), entry.raw_size);
        return ok();
    }
    const std::size_t n = ZSTD_decompressDCtx(dctx, out.data(), entry.raw_size, wire.data(), wire.size());
    if (ZSTD_isError(n)) {
        return error::format(errc::corrupt, 0, "chunk passes its hash but zstd says: {}",
                             ZSTD_getErrorName(n));
    }
    if (n != entry.raw_size) {
        return error::format(errc::corrupt, 0, "chunk decodes to {} bytes, the manifest says {}", n,
                             entry.raw_size);
    }
    return ok();
}

}  // namespace shoal::session
