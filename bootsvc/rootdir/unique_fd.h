// A file descriptor that closes itself: moved, never copied.
#pragma once

#include <unistd.h>

#include <utility>

namespace shoal::bootsvc {

class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : _fd(fd) {}
    unique_fd(unique_fd&& other) noexcept : _fd(std::exchange(other._fd, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset(std::exchange(other._fd, -1));
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return _fd; }
    bool valid() const noexcept { return _fd >= 0; }
    // Gives up ownership: the caller closes the descriptor.
    int release() noexcept { return std::exchange(_fd, -1); }
    void reset(int fd = -1) noexcept {
        if (_fd >= 0) {
            ::close(_fd);
        }
        _fd = fd;
    }

private:
    int _fd = -1;
};

}  // namespace shoal::bootsvc
