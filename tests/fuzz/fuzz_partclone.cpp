// The partclone stream reader (and the gzip/zstd layer under it) on hostile bytes.
// Input: one mode byte, then the stream.
//   bit 0: recompute the header's CRC32 and bit 1: the bitmap's, so that the fuzzer gets
//          past them and into the geometry, bitmap and data checks
//   bit 2: read through decoded_stream (gzip/zstd/none detection), else as is
// Whatever the reader accepts must keep its promises: whole blocks, in the bitmap's
// count, never more than the used bytes, and an error (not a crash, not a hang) otherwise.
#include <cstring>
#include <vector>

#include "fog/byte_stream.h"
#include "fog/partclone.h"
#include "fuzz_support.h"

using namespace shoal;
using namespace shoal::fog;

namespace {

void put_le32(std::byte* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<std::byte>(v >> (8 * i));
    }
}
std::uint64_t le64(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    }
    return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    std::vector<std::byte> s(reinterpret_cast<const std::byte*>(data + 1),
                             reinterpret_cast<const std::byte*>(data + size));
    if ((mode & 1) != 0 && s.size() >= partclone_v2_header_size) {
        put_le32(s.data() + 106, partclone_crc32(partclone_crc32_seed, std::span(s).first(106)));
    }
    if ((mode & 2) != 0 && s.size() >= partclone_v2_header_size) {
        const std::uint64_t total = le64(s.data() + 36 + 24);
        const std::uint64_t bitmap = (total + 7) / 8;
        if (total <= (1u << 20) && s.size() >= partclone_v2_header_size + bitmap + 4) {
            const auto bm = std::span(s).subspan(partclone_v2_header_size, bitmap);
            put_le32(s.data() + partclone_v2_header_size + bitmap,
                     partclone_crc32(partclone_crc32_seed, bm));
        }
    }
    std::unique_ptr<byte_stream> in = std::make_unique<memory_stream>(s, "fuzz.img");
    if ((mode & 4) != 0) {
        auto d = decoded_stream::open(std::move(in));
        if (!d) {
            return 0;
        }
        in = std::move(*d);
    }
    // A 16 KiB zstd input can inflate to a 500 MiB bitmap: keep the fuzzer's memory small.
    auto r = partclone_reader::open(*in, "fuzz.img", 1u << 24);
    if (!r) {
        FUZZ_CHECK(!r.err().context().empty());
        return 0;
    }
    const partclone_header& h = r->header();
    FUZZ_CHECK(h.block_size_bytes >= 1 && h.block_size_bytes <= partclone_block_size_max);
    FUZZ_CHECK(h.total_blocks <= (1u << 24));
    FUZZ_CHECK(h.total_blocks * h.block_size_bytes <= h.device_size_bytes);
    FUZZ_CHECK(r->bitmap().used_count() <= h.total_blocks);
    // The runs cover exactly the used blocks.
    std::uint64_t in_runs = 0;
    for (auto run = r->bitmap().next_run(0); run.count != 0;
         run = r->bitmap().next_run(run.first + run.count)) {
        FUZZ_CHECK(run.first + run.count <= h.total_blocks);
        in_runs += run.count;
    }
    FUZZ_CHECK(in_runs == r->bitmap().used_count());
    std::uint64_t bytes = 0;
    for (;;) {
        auto span = r->next();
        if (!span) {
            FUZZ_CHECK(!span.err().context().empty());
            return 0;
        }
        if (span->empty()) {
            break;
        }
        FUZZ_CHECK(span->size() % h.block_size_bytes == 0);
        bytes += span->size();
        FUZZ_CHECK(bytes <= r->used_bytes());
    }
    FUZZ_CHECK(bytes == r->used_bytes());
    FUZZ_CHECK(r->blocks_read() == r->bitmap().used_count());
    return 0;
}
