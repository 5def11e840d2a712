// FOG's sidecar parsers on hostile text. Input: one byte choosing the parser, then the
// file's bytes. What a parser accepts must hold what sidecars.h promises.
#include <algorithm>
#include <string_view>

#include "fog/sidecars.h"
#include "fuzz_support.h"

using namespace shoal::fog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 5) {
    case 0: {
        auto t = parse_sfdisk_dump(text, "d1.partitions");
        if (!t) {
            FUZZ_CHECK(t.err().context().find("d1.partitions") != std::string_view::npos);
            return 0;
        }
        FUZZ_CHECK(t->label == "dos" || t->label == "gpt");
        FUZZ_CHECK(t->sector_size_bytes >= 512 && t->sector_size_bytes <= 4096);
        FUZZ_CHECK(t->partitions.size() <= partition_count_max);
        for (std::size_t i = 0; i < t->partitions.size(); ++i) {
            const partition_entry& p = t->partitions[i];
            FUZZ_CHECK(p.size_sectors > 0);
            FUZZ_CHECK(i == 0 || t->partitions[i - 1].number < p.number);  // sorted, unique
            FUZZ_CHECK(t->find(p.number) == &p);
        }
        break;
    }
    case 1: {
        auto f = parse_fixed_size_partitions(text, "x");
        if (f) {
            FUZZ_CHECK(std::is_sorted(f->begin(), f->end()));
            FUZZ_CHECK(std::adjacent_find(f->begin(), f->end()) == f->end());
            for (auto n : *f) {
                FUZZ_CHECK(n >= 1 && n <= partition_count_max);
            }
        }
        break;
    }
    case 2: {
        auto f = parse_original_fstypes(text, "x");
        if (f) {
            for (const auto& e : *f) {
                FUZZ_CHECK(e.number >= 1 && e.number <= partition_count_max && !e.fstype.empty());
            }
        }
        break;
    }
    case 3: {
        auto s = parse_swap_uuids(text, "x");
        if (s) {
            for (const auto& e : *s) {
                FUZZ_CHECK(e.number >= 1 && !e.uuid.empty());
            }
        }
        break;
    }
    default: {
        auto n = parse_disk_size(text, 1, "d1.size");
        static_cast<void>(n);
        break;
    }
    }
    return 0;
}
