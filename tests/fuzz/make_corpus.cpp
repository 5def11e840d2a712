// Writes the seed corpora of the fuzz targets: a few small valid inputs each, made with the
// real encoders, so the fuzzers start from packets the parsers accept.
//   build-fuzz/tests/fuzz/make_corpus tests/fuzz/corpus
// Seeds are committed; run this again when a format changes.
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "fuzz_support.h"
#include "honest_sender.h"
#include "wire/manifest.h"
#include "wire/wire.h"

namespace {

using namespace shoal;
using fuzz::receiver_op;
namespace fs = std::filesystem;

using bytes = std::vector<std::byte>;

void save(const fs::path& dir, const char* name, std::span<const std::byte> content) {
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(content.data()),
               static_cast<std::streamsize>(content.size()));
}

template <class F>
bytes encoded(std::size_t size, F&& encode) {
    bytes out(size);
    auto n = encode(std::span(out));
    SHOAL_ASSERT(n.has_value());
    out.resize(*n);
    return out;
}

void wire_seeds(const fs::path& dir) {
    wire::data_packet d;
    d.hdr = {wire::packet_type::data, fuzz::session_id, 7};
    d.block = 3;
    d.esi = 1;
    d.k = 2;
    bytes data =
        encoded(wire::data_header_size, [&](auto out) { return wire::encode_data_header(d, out); });
    data.resize(data.size() + 64, std::byte{0x42});
    save(dir, "data", data);

    fuzz::honest_sender tx;
    save(dir, "announce", encoded(wire::announce_size, [&](auto out) {
             return wire::encode_announce(tx.announce, fuzz::key, out);
         }));

    wire::status_packet s;
    s.hdr = {wire::packet_type::status, fuzz::session_id, 1};
    s.receiver_id = 0xBEEF;
    s.watermark = 2;
    const wire::loss_run runs[] = {{4, 2, 1}, {9, 1, 2}};
    save(dir, "status", encoded(wire::status_fixed_size + 2 * wire::loss_run_size, [&](auto out) {
             return wire::encode_status(s, runs, out);
         }));

    wire::control_packet c;
    c.hdr = {wire::packet_type::control, fuzz::session_id, 9};
    c.receiver_id = 0xBEEF;
    c.command = wire::control_command::catch_up;
    c.rate_floor_kBps = 5000;
    save(dir, "control", encoded(wire::control_size, [&](auto out) {
             return wire::encode_control(c, fuzz::key, out);
         }));
}

void manifest_seeds(const fs::path& dir) {
    fuzz::honest_sender tx;
    save(dir, "three_chunks", tx.prepared.manifest_bytes);
    wire::session_manifest empty;
    empty.target_size = 4096;
    save(dir, "no_chunks", *wire::encode_manifest(empty));
    wire::session_manifest gaps;
    gaps.target_size = 1u << 30;
    gaps.chunks.push_back({{}, 4096, 4096, 0, wire::chunk_codec::raw});
    gaps.chunks.push_back({{}, 100, 8192, 1u << 20, wire::chunk_codec::zstd});
    save(dir, "gaps", *wire::encode_manifest(gaps));
    // An image session: two chunks tiling 6 MiB of used streams, with an image manifest
    // (its bytes opaque here; deploy/ decodes them).
    wire::session_manifest image;
    image.target_size = 6u << 20;
    image.chunks.push_back({{1}, 1000, 4u << 20, 0, wire::chunk_codec::zstd, {2}});
    image.chunks.push_back({{3}, 500, 2u << 20, 4u << 20, wire::chunk_codec::zstd, {4}});
    const char text[] = "SHOALIMG image manifest bytes ride along";
    image.image_manifest.resize(sizeof text);
    std::memcpy(image.image_manifest.data(), text, sizeof text);
    save(dir, "image", *wire::encode_manifest(image));
}

// fuzz_receiver scripts.
class script {
public:
    explicit script(std::uint8_t config) { _out.push_back(std::byte{config}); }
    script& op(receiver_op o) { return u8(static_cast<std::uint8_t>(o)); }
    script& u8(std::uint8_t v) {
        _out.push_back(std::byte{v});
        return *this;
    }
    script& u16(std::uint16_t v) {
        return u8(static_cast<std::uint8_t>(v >> 8)).u8(static_cast<std::uint8_t>(v));
    }
    script& u32(std::uint32_t v) {
        return u16(static_cast<std::uint16_t>(v >> 16)).u16(static_cast<std::uint16_t>(v));
    }
    script& data(std::uint32_t block, std::uint8_t esi) {
        return op(receiver_op::data)
            .u16(static_cast<std::uint16_t>(block))
            .u8(esi)
            .u8(0)
            .u8(0)
            .u8(0);
    }
    script& chunk(std::uint8_t verdict) { return op(receiver_op::chunk).u8(verdict); }
    script& time(std::uint16_t ms) { return op(receiver_op::time).u16(ms); }
    const bytes& out() const { return _out; }

private:
    bytes _out;
};

void receiver_seeds(const fs::path& dir) {
    fuzz::honest_sender tx;
    const std::uint32_t blocks = tx.layout->block_count();
    // Every source symbol, each chunk verified and written as it completes.
    script all(0);
    for (std::uint32_t b = 0; b < blocks; ++b) {
        const std::uint8_t k = tx.layout->block(b).k;
        for (std::uint8_t esi = 0; esi < k; ++esi) {
            all.data(b, esi);
        }
        all.chunk(0);
    }
    all.time(20).time(20);
    save(dir, "all_source", all.out());

    // The first source symbol of each block lost, rebuilt from repair symbols; statuses.
    script repaired(0x08);
    for (std::uint32_t b = 0; b < blocks; ++b) {
        const std::uint8_t k = tx.layout->block(b).k;
        repaired.data(b, k).time(5);
        for (std::uint8_t esi = 1; esi < k; ++esi) {
            repaired.data(b, esi);
        }
        repaired.chunk(0);
    }
    save(dir, "repaired", repaired.out());

    // Two buffers for three chunks, chunks held and rejected, a catch-up pass, an overheard
    // status, and a control.
    script tight(0x04 | 0x01);
    for (std::uint32_t b = 0; b < blocks; ++b) {
        tight.data(b, 0).data(b, 1);
    }
    tight.chunk(3).chunk(1).time(15);
    tight.op(receiver_op::announce).u8(2).u8(0).u32(0).u32(blocks).u16(10).u8(0);
    tight.op(receiver_op::status).u32(0x1234).u8(2).u16(2).u8(2).u8(1).u16(6).u8(1).u8(2);
    tight.time(15);
    for (std::uint32_t b = 0; b < blocks; ++b) {
        tight.data(b, 1).data(b, 0);
    }
    tight.chunk(0).chunk(0).chunk(0);
    tight.op(receiver_op::control).u8(2).u8(1).u32(800);
    save(dir, "tight_memory", tight.out());

    // Foreign and malformed packets, then a session the script announces itself.
    script hostile(0x40);
    hostile.op(receiver_op::raw).u16(4).u32(0x53480101);
    hostile.op(receiver_op::raw_ours)
        .u16(24)
        .u32(0x53480101)
        .u32(0)
        .u32(0)
        .u32(5)
        .u32(0x00020000)
        .u32(0);
    hostile.op(receiver_op::announce).u8(1).u8(0).u32(0).u32(0).u16(10).u8(0);
    hostile.data(0, 0).data(0, 1).data(1, 0).time(6000);
    save(dir, "hostile", hostile.out());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    const fs::path root = argv[1];
    wire_seeds(root / "fuzz_wire");
    manifest_seeds(root / "fuzz_manifest");
    receiver_seeds(root / "fuzz_receiver");
    return 0;
}
