#include "image/table.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <libfdisk/libfdisk.h>

namespace shoal::image {

namespace {

struct context_deleter {
    void operator()(fdisk_context* c) const { fdisk_unref_context(c); }
};
using context_ptr = std::unique_ptr<fdisk_context, context_deleter>;

struct table_deleter {
    void operator()(fdisk_table* t) const { fdisk_unref_table(t); }
};

status pread_all(int fd, std::byte* out, std::size_t size, std::uint64_t offset,
                 std::string_view name) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return error::format(n < 0 ? errc::io : errc::truncated, n < 0 ? errno : 0,
                                 "{}: reading {} bytes at {}", name, size, offset);
        }
        done += static_cast<std::size_t>(n);
    }
    return ok();
}

// A memory file of disk_size bytes (sparse) holding `head` at 0: a disk libfdisk can read.
result<int> memory_disk(std::span<const std::byte> head, std::uint64_t disk_size,
                        std::string_view name) {
    const int fd = memfd_create("shoal-table", MFD_CLOEXEC);
    if (fd < 0) {
        return error::format(errc::io, errno, "{}: memfd_create", name);
    }
    if (ftruncate(fd, static_cast<off_t>(disk_size)) != 0) {
        const int e = errno;
        ::close(fd);
        return error::format(errc::io, e, "{}: sizing a memory disk of {} bytes", name, disk_size);
    }
    if (!head.empty() &&
        ::pwrite(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) {
        const int e = errno;
        ::close(fd);
        return error::format(errc::io, e, "{}: filling a memory disk", name);
    }
    return fd;
}

std::string type_string(fdisk_parttype* t, bool gpt) {
    if (t == nullptr) {
        return {};
    }
    if (gpt) {
        const char* s = fdisk_parttype_get_string(t);
        std::string out = s != nullptr ? s : "";
        std::transform(out.begin(), out.end(), out.begin(),
                       [](char c) { return static_cast<char>(std::toupper(c)); });
        return out;
    }
    return fmt::format("{:x}", fdisk_parttype_get_code(t));
}

}  // namespace

result<partition_table> read_partition_table(int fd, std::string_view name) {
    context_ptr cxt(fdisk_new_context());
    if (!cxt) {
        return error(errc::io, "libfdisk: out of memory");
    }
    const std::string n(name);
    if (int rc = fdisk_assign_device_by_fd(cxt.get(), fd, n.c_str(), 1); rc != 0) {
        return error::format(errc::io, -rc, "{}: libfdisk cannot open it", name);
    }
    partition_table t;
    t.sector_size_bytes = static_cast<std::uint32_t>(fdisk_get_sector_size(cxt.get()));
    if (!fdisk_has_label(cxt.get())) {
        fdisk_deassign_device(cxt.get(), 1);
        return t;
    }
    fdisk_label* lb = fdisk_get_label(cxt.get(), nullptr);
    const int type = fdisk_label_get_type(lb);
    if (type == FDISK_DISKLABEL_DOS) {
        t.kind = table_kind::mbr;
    } else if (type == FDISK_DISKLABEL_GPT) {
        t.kind = table_kind::gpt;
    } else {
        fdisk_deassign_device(cxt.get(), 1);
        return error::format(errc::unsupported, 0,
                             "{}: partition table type {} is not supported "
                             "(MBR and GPT are); capture it as a raw image",
                             name, fdisk_label_get_name(lb));
    }
    const bool gpt = t.kind == table_kind::gpt;
    char* id = nullptr;
    if (fdisk_get_disklabel_id(cxt.get(), &id) == 0 && id != nullptr) {
        t.id = id;
    }
    std::free(id);
    // The table's own bytes, wherever libfdisk says they are (MBR and EBRs; protective
    // MBR, GPT headers and entries, primary and backup).
    for (int i = 0;; ++i) {
        const char* what = nullptr;
        std::uint64_t offset = 0;
        std::size_t size = 0;
        if (fdisk_locate_disklabel(cxt.get(), i, &what, &offset, &size) != 0 || size == 0) {
            break;
        }
        raw_bytes rb;
        rb.offset_bytes = offset;
        rb.bytes.resize(size);
        SHOAL_RETURN_IF_ERROR(pread_all(fd, rb.bytes.data(), size, offset, name));
        t.raw.push_back(std::move(rb));
        if (i > 1024) {
            break;
        }
    }
    std::sort(t.raw.begin(), t.raw.end(), [](const raw_bytes& a, const raw_bytes& b) {
        return a.offset_bytes < b.offset_bytes;
    });
    fdisk_table* tb_raw = nullptr;
    if (int rc = fdisk_get_partitions(cxt.get(), &tb_raw); rc != 0) {
        fdisk_deassign_device(cxt.get(), 1);
        return error::format(errc::malformed, -rc, "{}: libfdisk cannot read the partitions", name);
    }
    std::unique_ptr<fdisk_table, table_deleter> tb(tb_raw);
    fdisk_iter* it = fdisk_new_iter(FDISK_ITER_FORWARD);
    fdisk_partition* pa = nullptr;
    const std::uint64_t ss = t.sector_size_bytes;
    while (fdisk_table_next_partition(tb.get(), it, &pa) == 0) {
        if (!fdisk_partition_has_partno(pa) || !fdisk_partition_has_start(pa) ||
            !fdisk_partition_has_size(pa)) {
            continue;
        }
        table_entry e;
        const std::size_t partno = fdisk_partition_get_partno(pa);
        e.number = static_cast<std::uint32_t>(partno + 1);
        e.start_bytes = fdisk_partition_get_start(pa) * ss;
        e.size_bytes = fdisk_partition_get_size(pa) * ss;
        e.type = type_string(fdisk_partition_get_type(pa), gpt);
        if (const char* u = fdisk_partition_get_uuid(pa); u != nullptr) {
            e.uuid = u;
        }
        if (const char* nm = fdisk_partition_get_name(pa); nm != nullptr) {
            e.name = nm;
        }
        e.bootable = fdisk_partition_is_bootable(pa) == 1;
        e.container = fdisk_partition_is_container(pa) == 1;
        if (gpt) {
            std::uint64_t attrs = 0;
            if (fdisk_gpt_get_partition_attrs(cxt.get(), partno, &attrs) == 0) {
                e.attributes = attrs;
            }
        }
        t.entries.push_back(std::move(e));
    }
    fdisk_free_iter(it);
    std::sort(t.entries.begin(), t.entries.end(), [](const table_entry& a, const table_entry& b) {
        return a.start_bytes != b.start_bytes ? a.start_bytes < b.start_bytes : a.number < b.number;
    });
    fdisk_deassign_device(cxt.get(), 1);
    return t;
}

result<partition_table> parse_partition_table(std::span<const std::byte> head,
                                              std::uint64_t disk_size_bytes,
                                              std::string_view name) {
    auto fd = memory_disk(head, disk_size_bytes, name);
    if (!fd) {
        return fd.err();
    }
    auto t = read_partition_table(*fd, name);
    ::close(*fd);
    return t;
}

result<partition_table> parse_sfdisk_dump(std::string_view script, std::uint64_t disk_size_bytes,
                                          std::string_view name) {
    auto fd = memory_disk({}, disk_size_bytes, name);
    if (!fd) {
        return fd.err();
    }
    context_ptr cxt(fdisk_new_context());
    const std::string n(name);
    status st = ok();
    if (int rc = fdisk_assign_device_by_fd(cxt.get(), *fd, n.c_str(), 0); rc != 0) {
        st = error::format(errc::io, -rc, "{}: libfdisk cannot open a memory disk", name);
    }
    if (st) {
        fdisk_script* dp = fdisk_new_script(cxt.get());
        std::string text(script);
        FILE* f = fmemopen(text.data(), text.size(), "r");
        if (f == nullptr || fdisk_script_read_file(dp, f) != 0) {
            st =
                error::format(errc::malformed, 0, "{}: not an sfdisk dump libfdisk can read", name);
        } else if (int rc = fdisk_apply_script(cxt.get(), dp); rc != 0) {
            st = error::format(errc::malformed, -rc,
                               "{}: the partitions do not fit a disk of {} bytes "
                               "or are inconsistent",
                               name, disk_size_bytes);
        } else if (int rc2 = fdisk_write_disklabel(cxt.get()); rc2 != 0) {
            st = error::format(errc::io, -rc2, "{}: writing the table to a memory disk", name);
        }
        if (f != nullptr) {
            fclose(f);
        }
        fdisk_unref_script(dp);
        fdisk_deassign_device(cxt.get(), 1);
    }
    result<partition_table> t =
        st ? read_partition_table(*fd, name) : result<partition_table>(st.err());
    ::close(*fd);
    return t;
}

status write_partition_table(int fd, const partition_table& table, std::uint64_t disk_size_bytes,
                             bool exact, std::string_view name) {
    if (table.kind == table_kind::none) {
        return ok();
    }
    if (exact) {
        for (const raw_bytes& r : table.raw) {
            if (r.offset_bytes + r.bytes.size() > disk_size_bytes) {
                return error::format(errc::no_space, 0,
                                     "{}: table bytes at {} lie past the end of "
                                     "the disk ({} bytes)",
                                     name, r.offset_bytes, disk_size_bytes);
            }
            std::size_t done = 0;
            while (done < r.bytes.size()) {
                const ssize_t n = ::pwrite(fd, r.bytes.data() + done, r.bytes.size() - done,
                                           static_cast<off_t>(r.offset_bytes + done));
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    return error::format(errc::io, errno, "{}: writing the partition table", name);
                }
                done += static_cast<std::size_t>(n);
            }
        }
        return ok();
    }
    context_ptr cxt(fdisk_new_context());
    const std::string n(name);
    if (int rc = fdisk_assign_device_by_fd(cxt.get(), fd, n.c_str(), 0); rc != 0) {
        return error::format(errc::io, -rc, "{}: libfdisk cannot open it for writing", name);
    }
    auto fail = [&](int rc, std::string_view what) {
        fdisk_deassign_device(cxt.get(), 1);
        return error::format(errc::io, rc < 0 ? -rc : rc, "{}: libfdisk: {}", name, what);
    };
    const bool gpt = table.kind == table_kind::gpt;
    if (int rc = fdisk_create_disklabel(cxt.get(), gpt ? "gpt" : "dos"); rc != 0) {
        return fail(rc, "creating the label");
    }
    if (!table.id.empty()) {
        if (int rc = fdisk_set_disklabel_id_from_string(cxt.get(), table.id.c_str()); rc != 0) {
            return fail(rc, "setting the disk id");
        }
    }
    fdisk_label* lb = fdisk_get_label(cxt.get(), nullptr);
    const std::uint64_t ss = fdisk_get_sector_size(cxt.get());
    for (const table_entry& e : table.entries) {
        fdisk_partition* pa = fdisk_new_partition();
        fdisk_partition_set_partno(pa, e.number - 1);
        fdisk_partition_set_start(pa, e.start_bytes / ss);
        if (e.size_bytes == 0) {
            fdisk_partition_end_follow_default(pa, 1);  // to the end of the usable area
        } else {
            fdisk_partition_set_size(pa, e.size_bytes / ss);
        }
        fdisk_parttype* type = fdisk_label_parse_parttype(lb, e.type.c_str());
        if (type != nullptr) {
            fdisk_partition_set_type(pa, type);
        }
        if (!e.uuid.empty()) {
            fdisk_partition_set_uuid(pa, e.uuid.c_str());
        }
        if (!e.name.empty()) {
            fdisk_partition_set_name(pa, e.name.c_str());
        }
        const int rc = fdisk_add_partition(cxt.get(), pa, nullptr);
        fdisk_unref_partition(pa);
        fdisk_unref_parttype(type);
        if (rc != 0) {
            return fail(rc, fmt::format("adding partition {} ({} bytes at {})", e.number,
                                        e.size_bytes, e.start_bytes));
        }
        if (e.bootable && !gpt) {
            fdisk_toggle_partition_flag(cxt.get(), e.number - 1, DOS_FLAG_ACTIVE);
        }
        if (gpt && e.attributes != 0) {
            fdisk_gpt_set_partition_attrs(cxt.get(), e.number - 1, e.attributes);
        }
    }
    if (int rc = fdisk_write_disklabel(cxt.get()); rc != 0) {
        return fail(rc, "writing the table");
    }
    fdisk_deassign_device(cxt.get(), 1);
    return ok();
}

}  // namespace shoal::image
