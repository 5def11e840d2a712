// The store's checks of what the API hands it, on hostile text. The first byte picks the
// check, the rest is the text:
//  - an accepted MAC normalizes to 17 characters of lowercase hex and colons, and
//    normalizing that again gives the same;
//  - an accepted enum name turns back into the same name;
//  - a refused input's error names a field (the API's "field") that the context starts with;
//  - cron and JSON inventories are parsed without reading past the text.
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "store/model.h"

using namespace shoal;
using namespace shoal::store;

namespace {

void check_refusal(const error& e) {
    const std::string_view field = error_field(e);
    FUZZ_CHECK(e.context().substr(0, field.size()) == field);
}

template <class R>
void check_enum(const R& r, std::string_view text) {
    if (r) {
        FUZZ_CHECK(to_string(*r) == text);
    } else {
        FUZZ_CHECK(error_field(r.err()).size() > 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t which = data[0] % 5;
    // A copy of exactly the text, so ASan sees any read past it.
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (which) {
    case 0: {
        auto mac = normalize_mac(text);
        if (mac) {
            FUZZ_CHECK(mac->size() == 17);
            for (std::size_t i = 0; i < mac->size(); ++i) {
                const char c = (*mac)[i];
                FUZZ_CHECK(i % 3 == 2 ? c == ':'
                                      : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
            }
            FUZZ_CHECK(*normalize_mac(*mac) == *mac);
        } else {
            FUZZ_CHECK(error_field(mac.err()) == "mac");
        }
        break;
    }
    case 1: {
        auto st = validate_cron(text);
        if (!st) {
            FUZZ_CHECK(error_field(st.err()) == "cron");
        }
        break;
    }
    case 2:
        check_enum(task_kind_from_string(text), text);
        check_enum(task_state_from_string(text), text);
        check_enum(image_kind_from_string(text), text);
        check_enum(user_role_from_string(text), text);
        check_enum(session_state_from_string(text), text);
        break;
    case 3: {
        host h;
        h.mac = "00:12:3F:C4:57:0C";
        h.name = "pc1";
        h.inventory = text;
        if (auto st = validate(h); !st) {
            FUZZ_CHECK(error_field(st.err()) == "inventory");
        }
        break;
    }
    default: {
        host h;
        h.mac = "00:12:3F:C4:57:0C";
        h.name = text;
        h.description = text;
        if (auto st = validate(h); !st) {
            check_refusal(st.err());
        }
        break;
    }
    }
    return 0;
}
