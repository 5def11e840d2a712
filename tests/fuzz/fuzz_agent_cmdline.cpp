// The agent's kernel command line parser (control/agent/cmdline.h) on hostile text: the
// command line comes from an iPXE script, which comes over the network.
//  - nothing is read outside the input;
//  - an accepted line gives at most cmdline_params_max parameters, each key in
//    [a-z0-9_]{1,32} and each value without control bytes within the value limit;
//  - disk rules (shoal.disk=) are checked the same way and never crash.
#include <string>

#include "agent/cmdline.h"
#include "agent/disk_choice.h"
#include "fuzz_support.h"

using namespace shoal::agent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto p = parse_cmdline(text);
    if (!p) {
        FUZZ_CHECK(!p.err().describe().empty());
        return 0;
    }
    FUZZ_CHECK(p->size() <= cmdline_params_max);
    for (const auto& [key, value] : *p) {
        FUZZ_CHECK(!key.empty() && key.size() <= 32);
        for (char c : key) {
            FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
        }
        FUZZ_CHECK(value.size() <= cmdline_value_bytes_max);
        for (char c : value) {
            FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
        }
        if (key == "disk") {
            auto d = choose_disk({}, value);
            FUZZ_CHECK(!d);
        }
    }
    return 0;
}
