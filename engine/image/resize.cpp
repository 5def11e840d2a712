#include "image/resize.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace shoal::image {

namespace {
constexpr std::size_t output_kept_max = 1u
                                        << 20;  // what a tool may print before we stop keeping it
}

result<std::string> run_program(const std::vector<std::string>& argv, std::string_view input,
                                int ok_exit_max) {
    int in_pipe[2];
    int out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
        return error::format(errc::io, errno, "pipe for {}", argv[0]);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    if (rc != 0) {
        ::close(in_pipe[1]);
        ::close(out_pipe[0]);
        return error::format(errc::io, rc, "cannot run {} (is it installed?)", argv[0]);
    }
    if (!input.empty()) {
        (void)!::write(in_pipe[1], input.data(), input.size());
    }
    ::close(in_pipe[1]);
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (out.size() < output_kept_max) {
            out.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(out_pipe[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) > ok_exit_max) {
        std::string cmd;
        for (const auto& a : argv) {
            cmd += (cmd.empty() ? "" : " ") + a;
        }
        std::string tail = out.size() > 120 ? out.substr(out.size() - 120) : out;
        for (char& c : tail) {
            c = c == '\n' ? ' ' : c;
        }
        return error::format(errc::io, 0, "{} failed (exit {}): {}", cmd,
                             WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1, tail);
    }
    return out;
}

result<loop_device> loop_device::attach(const std::string& path, std::uint64_t offset_bytes,
                                        std::uint64_t size_bytes, bool read_only) {
    std::vector<std::string> argv = {"losetup",
                                     "--find",
                                     "--show",
                                     "--offset",
                                     std::to_string(offset_bytes),
                                     "--sizelimit",
                                     std::to_string(size_bytes)};
    if (read_only) {
        argv.push_back("--read-only");
    }
    argv.push_back(path);
    auto out = run_program(argv);
    if (!out) {
        return out.err();
    }
    std::string dev = *out;
    while (!dev.empty() && (dev.back() == '\n' || dev.back() == ' ')) {
        dev.pop_back();
    }
    if (dev.rfind("/dev/loop", 0) != 0) {
        return error::format(errc::io, 0, "losetup gave {:?}, not a loop device", dev);
    }
    return loop_device(dev);
}

loop_device::~loop_device() {
    if (!_path.empty()) {
        (void)run_program({"losetup", "--detach", _path});
    }
}

bool fs_can_resize(fs_type fs) noexcept { return fs_is_ext(fs) || fs == fs_type::ntfs; }

result<std::uint64_t> shrink_fs(const std::string& path, fs_type fs, std::uint64_t offset_bytes,
                                std::uint64_t size_bytes) {
    if (fs_is_ext(fs)) {
        // Through a loop device: resize2fs truncates a regular file to the filesystem's new
        // size, which would cut off whatever follows the partition in a disk image file.
        auto loop = loop_device::attach(path, offset_bytes, size_bytes, false);
        if (!loop) {
            return loop.err();
        }
        const std::string& dev = loop->path();
        // resize2fs insists on a freshly checked filesystem; -y repairs what it can.
        auto fsck = run_program({"e2fsck", "-f", "-y", dev}, {}, 1);
        if (!fsck) {
            return error::format(errc::malformed, 0,
                                 "e2fsck of {} found problems it could not fix: {}", dev,
                                 fsck.err().context());
        }
        auto r = run_program({"resize2fs", "-M", dev});
        if (!r) {
            return r.err();
        }
        // "The filesystem on X is now N (4k) blocks long."
        const auto at = r->find("is now ");
        if (at == std::string::npos) {
            return error::format(errc::io, 0, "resize2fs -M {}: no new size in its output", dev);
        }
        const std::uint64_t blocks = std::strtoull(r->c_str() + at + 7, nullptr, 10);
        const auto open = r->find('(', at);
        const std::uint64_t unit = open == std::string::npos
                                       ? 4096
                                       : std::strtoull(r->c_str() + open + 1, nullptr, 10) * 1024;
        return blocks * unit;
    }
    if (fs == fs_type::ntfs) {
        auto loop = loop_device::attach(path, offset_bytes, size_bytes, false);
        if (!loop) {
            return loop.err();
        }
        auto info =
            run_program({"ntfsresize", "--force", "--info", "--no-progress-bar", loop->path()});
        if (!info) {
            return info.err();
        }
        // "You might resize at 123456789 bytes or 124 MB (freeing ...)."
        const auto at = info->find("resize at ");
        if (at == std::string::npos) {
            return error::format(errc::io, 0, "ntfsresize --info {}: no minimum size in its output",
                                 path);
        }
        std::uint64_t minimum = std::strtoull(info->c_str() + at + 10, nullptr, 10);
        // A little room above the bare minimum, as ntfsresize's estimate is tight, rounded to MiB.
        minimum = std::min(size_bytes, ((minimum + (minimum / 50) + (1u << 20)) >> 20) << 20);
        if (minimum >= size_bytes) {
            return size_bytes;
        }
        auto r = run_program({"ntfsresize", "--force", "--force", "--no-progress-bar", "--size",
                              std::to_string(minimum), loop->path()},
                             "y\n");
        if (!r) {
            return r.err();
        }
        return minimum;
    }
    return error::format(errc::unsupported, 0, "{} cannot be shrunk", fs_name(fs));
}

status resize_fs(const std::string& path, fs_type fs, std::uint64_t offset_bytes,
                 std::uint64_t partition_size_bytes, std::uint64_t new_fs_size_bytes) {
    if (fs_is_ext(fs)) {
        auto loop = loop_device::attach(path, offset_bytes, partition_size_bytes, false);
        if (!loop) {
            return loop.err();
        }
        const std::string& dev = loop->path();
        auto fsck = run_program({"e2fsck", "-f", "-y", dev}, {}, 1);
        if (!fsck) {
            return fsck.err();
        }
        auto r = run_program({"resize2fs", dev, fmt::format("{}K", new_fs_size_bytes / 1024)});
        if (!r) {
            return r.err();
        }
        return ok();
    }
    if (fs == fs_type::ntfs) {
        auto loop = loop_device::attach(path, offset_bytes, partition_size_bytes, false);
        if (!loop) {
            return loop.err();
        }
        // Growing to the whole partition: without --size, ntfsresize fills the device and
        // puts the backup boot sector in its last sector, where Windows and ntfsfix look.
        std::vector<std::string> argv = {"ntfsresize", "--force", "--force", "--no-progress-bar"};
        if (new_fs_size_bytes + 2 * 4096 < partition_size_bytes) {
            argv.push_back("--size");
            argv.push_back(std::to_string(new_fs_size_bytes));
        }
        argv.push_back(loop->path());
        auto r = run_program(argv, "y\n");
        if (!r) {
            return r.err();
        }
        return ok();
    }
    return error::format(errc::unsupported, 0, "{} cannot be resized", fs_name(fs));
}

}  // namespace shoal::image
