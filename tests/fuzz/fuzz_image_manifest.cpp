// image::decode_manifest on hostile bytes. What it accepts must keep the promises of
// image/manifest.h (limits, sorted and coalesced extents inside the filesystem, chunks
// covering exactly the used bytes, regions inside their disk) and encode back to exactly
// the input: one manifest, one encoding.
#include <cstring>
#include <vector>

#include "fuzz_support.h"
#include "image/manifest.h"

using namespace shoal::image;

namespace {

int check_one(const std::uint8_t* data, std::size_t size) {
    const std::span in(reinterpret_cast<const std::byte*>(data), size);
    auto m = decode_manifest(in);
    if (!m) {
        return 0;
    }
    FUZZ_CHECK(!m->disks.empty() && m->disks.size() <= disk_count_max);
    for (const disk& d : m->disks) {
        std::uint64_t end_of_previous = 0;
        for (const region& r : d.regions) {
            FUZZ_CHECK(r.offset_bytes >= end_of_previous);
            FUZZ_CHECK(r.offset_bytes <= d.size_bytes &&
                       r.size_bytes <= d.size_bytes - r.offset_bytes);
            end_of_previous = r.offset_bytes + r.size_bytes;
            FUZZ_CHECK(r.fs_size_bytes <= r.size_bytes);
            std::uint64_t used = 0;
            std::uint64_t end = 0;
            for (const extent& e : r.used) {
                FUZZ_CHECK(e.size_bytes > 0 && (used == 0 || e.offset_bytes > end));
                FUZZ_CHECK(e.offset_bytes + e.size_bytes <= r.fs_size_bytes);
                end = e.offset_bytes + e.size_bytes;
                used += e.size_bytes;
            }
            std::uint64_t chunked = 0;
            for (const chunk_ref& c : r.chunks) {
                FUZZ_CHECK(c.raw_size >= 1 && c.raw_size <= chunk_raw_size_max);
                FUZZ_CHECK(c.stored_size >= 1 && c.stored_size <= chunk_stored_size_max);
                chunked += c.raw_size;
            }
            FUZZ_CHECK(chunked == used);
        }
    }
    auto again = encode_manifest(*m);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->size() == size && std::memcmp(again->data(), data, size) == 0);
    return 0;
}

}  // namespace

// Each input twice: as it is, and with its body size and SHA-256 trailer made right, so that
// mutations reach the body's parser instead of stopping at the checksum.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_one(data, size);
    constexpr std::size_t header = 24;
    constexpr std::size_t trailer = 32;
    if (size < header + trailer) {
        return 0;
    }
    std::vector<std::uint8_t> fixed(data, data + size);
    const std::uint64_t body = size - header - trailer;
    for (int i = 0; i < 8; ++i) {
        fixed[16 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(body >> (8 * i));
    }
    const auto sum = sha256_of(std::as_bytes(std::span(fixed).first(size - trailer)));
    std::memcpy(fixed.data() + size - trailer, sum.data(), trailer);
    return check_one(fixed.data(), fixed.size());
}
