#include "image/store.h"

#include "common/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unordered_set>

namespace shoal::image {

namespace {

constexpr std::string_view manifest_suffix = ".manifest";

status write_all(int fd, std::span<const std::byte> bytes, const std::string& path) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error::format(errno == ENOSPC ? errc::no_space : errc::io, errno, "writing {}",
                                 path);
        }
        done += static_cast<std::size_t>(n);
    }
    return ok();
}

std::atomic<std::uint64_t> tmp_counter{0};

}  // namespace

std::string default_store_path() {
    const char* env = std::getenv("SHOAL_STORE");
    return env != nullptr && *env != '\0' ? std::string(env) : std::string("/var/lib/shoal/images");
}

// cppcheck-suppress passedByValue ; taken by value to be moved in
chunk_store::chunk_store(std::string path, int lock_fd, lock_mode mode) noexcept
    : _path(std::move(path)), _lock_fd(lock_fd), _mode(mode) {}

chunk_store::~chunk_store() {
    if (_lock_fd >= 0) {
        ::close(_lock_fd);  // drops the flock
    }
}

result<std::unique_ptr<chunk_store>> chunk_store::open(const std::string& path, bool create,
                                                       lock_mode mode) {
    std::error_code ec;
    if (!std::filesystem::is_directory(path + "/chunks", ec)) {
        if (!create) {
            return error::format(errc::not_found, 0,
                                 "no image store at {} (give --store, set $SHOAL_STORE, or capture "
                                 "an image first)",
                                 path);
        }
    }
    for (const char* sub : {"", "/chunks", "/images", "/tmp"}) {
        std::filesystem::create_directories(path + sub, ec);
        if (ec) {
            return error::format(errc::io, ec.value(), "making store directory {}{}", path, sub);
        }
    }
    const std::string lock_path = path + "/lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return error::format(errc::io, errno, "opening {}", lock_path);
    }
    while (flock(fd, mode == lock_mode::shared ? LOCK_SH : LOCK_EX) != 0) {
        if (errno != EINTR) {
            const int e = errno;
            ::close(fd);
            return error::format(errc::io, e, "locking {}", lock_path);
        }
    }
    return std::unique_ptr<chunk_store>(new chunk_store(path, fd, mode));
}

std::string chunk_store::chunk_path(const sha256_digest& d) const {
    const std::string hex = to_hex(d);
    return fmt::format("{}/chunks/{}/{}/{}", _path, hex.substr(0, 2), hex.substr(2, 2), hex);
}

std::string chunk_store::manifest_path(std::string_view name) const {
    return fmt::format("{}/images/{}{}", _path, name, manifest_suffix);
}

bool chunk_store::has_chunk(const sha256_digest& d) const noexcept {
    return ::access(chunk_path(d).c_str(), F_OK) == 0;
}

status chunk_store::put_chunk(const sha256_digest& d, std::span<const std::byte> frame) {
    const std::string final_path = chunk_path(d);
    if (::access(final_path.c_str(), F_OK) == 0) {
        return ok();
    }
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(final_path).parent_path(), ec);
    if (ec) {
        return error::format(errc::io, ec.value(), "making directory for {}", final_path);
    }
    const std::string tmp = fmt::format("{}/tmp/{}.{}.{}", _path, to_hex(d).substr(0, 16), getpid(),
                                        tmp_counter.fetch_add(1));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return error::format(errno == ENOSPC ? errc::no_space : errc::io, errno, "creating {}",
                             tmp);
    }
    status st = write_all(fd, frame, tmp);
    ::close(fd);
    if (st && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
        st = error::format(errc::io, errno, "renaming {} to {}", tmp, final_path);
    }
    if (!st) {
        ::unlink(tmp.c_str());
    }
    return st;
}

status chunk_store::read_chunk(const chunk_ref& ref, std::vector<std::byte>& out) const {
    const std::string p = chunk_path(ref.stored_sha256);
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return error::format(errc::not_found, 0,
                                 "chunk {} is missing from the store (run shoal image verify)", p);
        }
        return error::format(errc::io, errno, "opening {}", p);
    }
    // Into the caller's buffer (its capacity is kept from chunk to chunk), one byte more
    // than the manifest says, so that a longer file is noticed.
    out.resize(static_cast<std::size_t>(ref.stored_size) + 1);
    std::size_t got = 0;
    status st = ok();
    while (got < out.size()) {
        const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            st = error::format(errc::io, errno, "reading {}", p);
        }
        if (n <= 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    SHOAL_RETURN_IF_ERROR(st);
    if (got != ref.stored_size) {
        return error::format(got < ref.stored_size ? errc::truncated : errc::corrupt, 0,
                             "chunk {}: {} bytes, the manifest says {}; the store is damaged", p,
                             got > ref.stored_size ? "more" : std::to_string(got), ref.stored_size);
    }
    out.resize(got);
    if (sha256_of(out) != ref.stored_sha256) {
        return error::format(errc::corrupt, 0,
                             "chunk {}: SHA-256 does not match its name; the store is damaged", p);
    }
    return ok();
}

status chunk_store::publish(const manifest& m) {
    auto bytes = encode_manifest(m);
    if (!bytes) {
        return bytes.err();
    }
    // The chunks reach the disk before the manifest that names them.
    if (syncfs(_lock_fd) != 0) {
        return error::format(errc::io, errno, "flushing the store {}", _path);
    }
    const std::string final_path = manifest_path(m.name);
    const std::string tmp = fmt::format("{}/tmp/{}.manifest.{}", _path, m.name, getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return error::format(errc::io, errno, "creating {}", tmp);
    }
    status st = write_all(fd, *bytes, tmp);
    if (st && fsync(fd) != 0) {
        st = error::format(errc::io, errno, "flushing {}", tmp);
    }
    ::close(fd);
    if (st && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
        st = error::format(errc::io, errno, "renaming {} to {}", tmp, final_path);
    }
    if (!st) {
        ::unlink(tmp.c_str());
        return st;
    }
    const int dfd = ::open((_path + "/images").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        ::close(dfd);
    }
    return ok();
}

result<manifest> chunk_store::load(std::string_view name) const {
    SHOAL_RETURN_IF_ERROR(check_image_name(name));
    const std::string p = manifest_path(name);
    auto bytes = read_file(p, manifest_size_max);
    if (!bytes) {
        if (bytes.err().code() == errc::not_found) {
            return error::format(errc::not_found, 0,
                                 "no image {:?} in the store {} (shoal image list)", name, _path);
        }
        return bytes.err();
    }
    return decode_manifest(*bytes, p);
}

result<std::vector<std::string>> chunk_store::list() const {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(_path + "/images", ec)) {
        const std::string f = entry.path().filename().string();
        if (f.size() > manifest_suffix.size() && f.ends_with(manifest_suffix)) {
            names.push_back(f.substr(0, f.size() - manifest_suffix.size()));
        }
    }
    if (ec) {
        return error::format(errc::io, ec.value(), "listing {}/images", _path);
    }
    std::sort(names.begin(), names.end());
    return names;
}

result<std::uint64_t> chunk_store::remove(std::string_view name) {
    SHOAL_ASSERT(_mode == lock_mode::exclusive);
    SHOAL_RETURN_IF_ERROR(check_image_name(name));
    const std::string p = manifest_path(name);
    if (::unlink(p.c_str()) != 0) {
        if (errno == ENOENT) {
            return error::format(errc::not_found, 0, "no image {:?} in the store {}", name, _path);
        }
        return error::format(errc::io, errno, "removing {}", p);
    }
    return sweep();
}

result<std::uint64_t> chunk_store::sweep() {
    SHOAL_ASSERT(_mode == lock_mode::exclusive);
    auto names = list();
    if (!names) {
        return names.err();
    }
    std::unordered_set<std::string> used;
    for (const auto& n : *names) {
        auto m = load(n);
        if (!m) {
            return error::format(m.err().code(), 0,
                                 "not sweeping unused chunks: {} (fix or remove that image first)",
                                 m.err().context());
        }
        for (const auto& d : m->disks) {
            for (const auto& r : d.regions) {
                for (const auto& c : r.chunks) {
                    used.insert(to_hex(c.stored_sha256));
                }
            }
        }
    }
    std::uint64_t freed = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(_path + "/chunks", ec)) {
        if (!entry.is_regular_file()) {
            continue;
        }
        const std::string f = entry.path().filename().string();
        if (!used.contains(f)) {
            freed += entry.file_size();
            std::filesystem::remove(entry.path(), ec);
        }
    }
    // Nothing writes while we hold the exclusive lock: whatever is in tmp/ is left over.
    for (const auto& entry : std::filesystem::directory_iterator(_path + "/tmp", ec)) {
        std::filesystem::remove(entry.path(), ec);
    }
    return freed;
}

}  // namespace shoal::image
