// NTFS's cluster bitmap through libntfs-3g. The volume is opened through our own device
// operations, which read the partition at its offset inside the disk (a disk image file or
// a whole-disk device), so no loop device is needed to capture.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "image/usedmap.h"

#define HAVE_STDINT_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_STRING_H 1
extern "C" {
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/types.h>
#include <ntfs-3g/volume.h>
}
// libntfs-3g defines these as macros.
#undef min
#undef max

namespace shoal::image {

namespace {

struct window {
    int fd;
    std::uint64_t offset;
    std::uint64_t size;
    std::int64_t position = 0;
};

window* win(ntfs_device* dev) { return static_cast<window*>(dev->d_private); }

int dev_open(ntfs_device* dev, int /*flags*/) {
    NDevSetOpen(dev);
    NDevSetReadOnly(dev);
    return 0;
}
int dev_close(ntfs_device* dev) {
    NDevClearOpen(dev);
    return 0;
}
s64 dev_seek(ntfs_device* dev, s64 offset, int whence) {
    window* w = win(dev);
    const s64 base = whence == SEEK_SET   ? 0
                     : whence == SEEK_CUR ? w->position
                                          : static_cast<s64>(w->size);
    w->position = base + offset;
    return w->position;
}
s64 dev_pread(ntfs_device* dev, void* buf, s64 count, s64 offset) {
    window* w = win(dev);
    if (offset < 0 || count < 0) {
        errno = EINVAL;
        return -1;
    }
    if (static_cast<std::uint64_t>(offset) >= w->size) {
        return 0;
    }
    const s64 n = std::min<s64>(count, static_cast<s64>(w->size) - offset);
    return ::pread(w->fd, buf, static_cast<std::size_t>(n),
                   static_cast<off_t>(w->offset + static_cast<std::uint64_t>(offset)));
}
s64 dev_read(ntfs_device* dev, void* buf, s64 count) {
    const s64 n = dev_pread(dev, buf, count, win(dev)->position);
    if (n > 0) {
        win(dev)->position += n;
    }
    return n;
}
s64 dev_write(ntfs_device*, const void*, s64) {
    errno = EROFS;
    return -1;
}
s64 dev_pwrite(ntfs_device*, const void*, s64, s64) {
    errno = EROFS;
    return -1;
}
int dev_sync(ntfs_device*) { return 0; }
int dev_stat(ntfs_device* dev, struct stat* st) {
    std::memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG;
    st->st_size = static_cast<off_t>(win(dev)->size);
    return 0;
}
int dev_ioctl(ntfs_device*, unsigned long, void*) {
    errno = ENOTTY;
    return -1;
}

ntfs_device_operations window_ops = {dev_open,  dev_close,  dev_seek, dev_read, dev_write,
                                     dev_pread, dev_pwrite, dev_sync, dev_stat, dev_ioctl};

}  // namespace

result<used_map> read_ntfs_map(int fd, std::uint64_t offset_bytes, std::uint64_t size_bytes,
                               const std::string& name) {
    window w{fd, offset_bytes, size_bytes};
    std::string dev_name = name;
    ntfs_device* dev = ntfs_device_alloc(dev_name.c_str(), 0, &window_ops, &w);
    if (dev == nullptr) {
        return error::format(errc::io, errno, "{}: libntfs-3g: out of memory", name);
    }
    ntfs_volume* vol = ntfs_device_mount(
        dev, static_cast<ntfs_mount_flags>(NTFS_MNT_RDONLY | NTFS_MNT_IGNORE_HIBERFILE));
    if (vol == nullptr) {
        const int e = errno;
        ntfs_device_free(dev);
        return error::format(errc::malformed, e,
                             "{}: libntfs-3g cannot open the NTFS volume (shut Windows down fully, "
                             "without fast startup, or run chkdsk)",
                             name);
    }
    const std::uint64_t cluster = vol->cluster_size;
    const std::uint64_t clusters = static_cast<std::uint64_t>(vol->nr_clusters);
    const std::uint64_t sector = vol->sector_size;
    std::vector<std::uint8_t> bitmap((clusters + 7) / 8);
    const s64 got =
        ntfs_attr_pread(vol->lcnbmp_na, 0, static_cast<s64>(bitmap.size()), bitmap.data());
    const int e = errno;
    ntfs_umount(vol, FALSE);  // frees dev too
    if (got != static_cast<s64>(bitmap.size())) {
        return error::format(errc::malformed, e,
                             "{}: the NTFS $Bitmap is short ({} of {} bytes); run chkdsk", name,
                             got, bitmap.size());
    }
    // The boot sector counts the volume's sectors; the backup boot sector is the sector
    // right after them (the partition's last sector, as mkntfs and ntfsresize lay it out).
    std::uint8_t boot[512];
    if (::pread(fd, boot, sizeof boot, static_cast<off_t>(offset_bytes)) !=
        static_cast<ssize_t>(sizeof boot)) {
        return error::format(errc::io, errno, "{}: reading the NTFS boot sector", name);
    }
    std::uint64_t total_sectors = 0;
    for (int i = 7; i >= 0; --i) {
        total_sectors = total_sectors << 8 | boot[0x28 + i];
    }
    used_map m;
    m.info.fs = fs_type::ntfs;
    m.info.size_bytes = size_bytes;
    m.info.block_size_bytes = static_cast<std::uint32_t>(cluster);
    const std::uint64_t volume_bytes = clusters * cluster;
    const std::uint64_t backup_at = total_sectors * sector;
    if (volume_bytes > size_bytes || backup_at < volume_bytes) {
        return error::format(errc::malformed, 0,
                             "{}: NTFS says {} bytes in {} sectors, the partition holds {}", name,
                             volume_bytes, total_sectors, size_bytes);
    }
    m.info.fs_size_bytes = std::min(size_bytes, backup_at + sector);
    // A volume that fills its partition may keep its backup boot sector in the partition's
    // last sector instead (ntfsresize puts it there when growing); keep that one too.
    const bool fills_partition =
        size_bytes >= backup_at + sector && size_bytes - backup_at <= 2 * cluster;
    if (fills_partition) {
        m.info.fs_size_bytes = size_bytes;
    }
    extent_builder b;
    for (std::uint64_t c = 0; c < clusters;) {
        if ((bitmap[c / 8] >> (c % 8) & 1) == 0) {
            ++c;
            continue;
        }
        std::uint64_t end = c + 1;
        while (end < clusters && (bitmap[end / 8] >> (end % 8) & 1) != 0) {
            ++end;
        }
        (void)b.add(c * cluster, (end - c) * cluster);
        c = end;
    }
    if (backup_at + sector <= size_bytes) {
        (void)b.add(backup_at, sector);
    }
    if (fills_partition && size_bytes - sector > backup_at) {
        (void)b.add(size_bytes - sector, sector);
    }
    m.extents = std::move(b.extents());
    return m;
}

}  // namespace shoal::image
