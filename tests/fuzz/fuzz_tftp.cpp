// The TFTP request parser (and the other packet parsers a server or client meets) on
// hostile bytes:
//  - nothing is read outside the packet, and what is accepted keeps its promises: a
//    non-empty name without NUL bytes inside the packet, options within their ranges;
//  - an accepted request re-encodes to one that parses to the same fields;
//  - the name goes through the root's path check, which never accepts a `..` component.
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "rootdir/root_dir.h"
#include "tftp/protocol.h"

using namespace shoal;
using namespace shoal::tftp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // A copy of exactly `size` bytes, so ASan sees any read past the packet.
    std::vector<std::byte> packet(size);
    if (size > 0) {
        std::memcpy(packet.data(), data, size);
    }
    std::span<const std::byte> in(packet);

    auto r = parse_request(in);
    if (r) {
        const auto* begin = reinterpret_cast<const char*>(packet.data());
        FUZZ_CHECK(!r->filename.empty());
        FUZZ_CHECK(r->filename.data() >= begin &&
                   r->filename.data() + r->filename.size() <= begin + size);
        FUZZ_CHECK(r->filename.find('\0') == std::string_view::npos);
        FUZZ_CHECK(!r->blksize || (*r->blksize >= blksize_min && *r->blksize <= blksize_max));
        FUZZ_CHECK(!r->timeout_s || *r->timeout_s >= timeout_s_min);
        FUZZ_CHECK(!r->windowsize || *r->windowsize >= 1);

        std::vector<std::byte> again(size + 128);
        std::size_t n = encode_request(again, *r);
        FUZZ_CHECK(n > 0);
        auto back = parse_request(std::span<const std::byte>(again.data(), n));
        FUZZ_CHECK(back);
        FUZZ_CHECK(back->op == r->op && back->filename == r->filename && back->mode == r->mode);
        FUZZ_CHECK(back->blksize == r->blksize && back->tsize == r->tsize &&
                   back->timeout_s == r->timeout_s && back->windowsize == r->windowsize);
        FUZZ_CHECK(back->ignored_option_count == 0);

        auto rel = bootsvc::relative_request_path(r->filename);
        if (rel) {
            FUZZ_CHECK(!rel->empty() && rel->front() != '/');
            std::string_view p = *rel;
            FUZZ_CHECK(p != ".." && !p.starts_with("../") && !p.ends_with("/..") &&
                       p.find("/../") == std::string_view::npos);
        }
    }

    auto oack = parse_oack(in);
    if (oack) {
        std::vector<std::byte> again(size + 128);
        std::size_t n = encode_oack(again, *oack);
        FUZZ_CHECK(n > 0);
        auto back = parse_oack(std::span<const std::byte>(again.data(), n));
        FUZZ_CHECK(back && back->blksize == oack->blksize && back->tsize == oack->tsize &&
                   back->timeout_s == oack->timeout_s && back->windowsize == oack->windowsize);
    }
    if (auto e = parse_error(in)) {
        FUZZ_CHECK(e->message.size() + 4 <= size);
    }
    (void)parse_block(in, opcode::ack);
    (void)parse_block(in, opcode::data);
    return 0;
}
