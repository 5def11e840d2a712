// image::read_fat_map (our own reader of FAT boot sectors and allocation tables) on hostile
// partitions: whatever it accepts gives sorted, coalesced extents inside the filesystem,
// and the filesystem inside the partition. The input is the partition's bytes.
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_support.h"
#include "image/usedmap.h"

using namespace shoal::image;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const int fd = memfd_create("fuzz-fat", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 0) != 0 ||
        pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
        return 0;
    }
    // The partition may claim to be larger than the bytes we have: reads past them fail.
    const std::uint64_t partition = size < 512 ? size : std::uint64_t{size} * 4;
    auto m = read_fat_map(fd, 0, partition, "fuzz");
    if (!m) {
        return 0;
    }
    FUZZ_CHECK(m->info.fs_size_bytes <= partition);
    std::uint64_t end = 0;
    bool first = true;
    for (const extent& e : m->extents) {
        FUZZ_CHECK(e.size_bytes > 0 && (first || e.offset_bytes > end));
        FUZZ_CHECK(e.offset_bytes + e.size_bytes <= m->info.fs_size_bytes);
        end = e.offset_bytes + e.size_bytes;
        first = false;
    }
    return 0;
}
