// decode_manifest on hostile bytes. What it accepts must keep the promises of manifest.h
// (sizes within limits, extents sorted, not overlapping, inside target_size; an image
// session's tiling the used streams) and must
// encode back to exactly the input: one manifest, one encoding, so its SHA-256 names it.
#include <cstring>

#include "fuzz_support.h"
#include "wire/manifest.h"

using namespace shoal::wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span in(reinterpret_cast<const std::byte*>(data), size);
    auto m = decode_manifest(in);
    if (!m) {
        return 0;
    }
    FUZZ_CHECK(m->chunks.size() <= manifest_chunk_count_max);
    std::uint64_t end_of_previous = 0;
    for (const chunk_entry& c : m->chunks) {
        FUZZ_CHECK(c.wire_size >= 1 && c.wire_size <= chunk_wire_size_max);
        FUZZ_CHECK(c.raw_size >= 1 && c.raw_size <= chunk_raw_size_max);
        FUZZ_CHECK(c.codec == chunk_codec::raw || c.codec == chunk_codec::zstd);
        FUZZ_CHECK(c.codec != chunk_codec::raw || c.wire_size == c.raw_size);
        FUZZ_CHECK(c.target_offset >= end_of_previous);  // sorted, not overlapping
        FUZZ_CHECK(c.target_offset <= m->target_size &&
                   c.raw_size <= m->target_size - c.target_offset);  // inside the target
        // An image session's chunks tile the used streams from 0, in order.
        FUZZ_CHECK(!m->is_image() || c.target_offset == end_of_previous);
        end_of_previous = c.target_offset + c.raw_size;
    }
    FUZZ_CHECK(!m->is_image() || end_of_previous == m->target_size);
    FUZZ_CHECK(m->image_manifest.size() <= image_manifest_size_max);
    auto again = encode_manifest(*m);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->size() == size && std::memcmp(again->data(), data, size) == 0);
    return 0;
}
