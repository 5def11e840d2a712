// FOG's host CSV (control/api/csv_import.h) on hostile bytes. Whatever the input:
//  - every host it accepts has a MAC that parses and normalizes to itself, a valid name,
//    a line number within the text, and no MAC or name twice;
//  - every error names a line within the text (0: the file as a whole) and says something;
//  - a file either yields hosts and no errors, or errors (the API then imports nothing):
//    an empty result is itself an error.
#include <set>
#include <string>
#include <string_view>

#include "api/csv_import.h"
#include "fuzz_support.h"
#include "ipxe/mac.h"

using namespace shoal;

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, unsigned long size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    api::csv_limits limits;
    limits.hosts_max = 64;
    limits.errors_max = 16;
    auto r = api::parse_fog_hosts_csv(text, limits);
    std::size_t lines = 1;
    for (char c : text) {
        lines += c == '\n' ? 1 : 0;
    }
    FUZZ_CHECK(!r.hosts.empty() || !r.errors.empty());
    FUZZ_CHECK(r.hosts.size() <= limits.hosts_max);
    FUZZ_CHECK(r.errors.size() <= limits.errors_max);
    std::set<std::string> macs;
    std::set<std::string> names;
    for (const auto& h : r.hosts) {
        auto mac = ipxe::parse_mac(h.mac);
        FUZZ_CHECK(mac && mac->to_string() == h.mac);
        FUZZ_CHECK(api::valid_host_name(h.name));
        FUZZ_CHECK(h.line >= 1 && h.line <= lines);
        FUZZ_CHECK(macs.insert(h.mac).second);
        FUZZ_CHECK(names.insert(h.name).second);
        FUZZ_CHECK(h.description.size() <= limits.description_size_max);
    }
    for (const auto& e : r.errors) {
        FUZZ_CHECK(e.line <= lines);
        FUZZ_CHECK(!e.message.empty());
    }
    return 0;
}
