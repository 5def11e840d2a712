// Answers IPv6 router solicitations on the lab interfaces with a router advertisement that
// offers nothing (no prefix, router lifetime 0, no DHCPv6). iPXE configures IPv6 alongside
// DHCPv4 and waits for a router (~13 s of solicitations) before it goes on to boot; any
// advertisement ends that wait, and one that offers nothing changes no host's routing.
// Only on links with no IPv6 router of their own would a site want this; it is on by
// default because a PXE lab link usually has none (`answer_router_solicitations`).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "rootdir/unique_fd.h"

namespace shoal::ndp {

class ra_responder {
public:
    // One raw ICMPv6 socket per interface (needs CAP_NET_RAW).
    static result<std::unique_ptr<ra_responder>> create(const std::vector<std::string>& interfaces);

    // Answers until stop().
    void run();
    void stop() noexcept;
    std::uint64_t answered() const noexcept { return _answered.load(std::memory_order_relaxed); }

private:
    ra_responder() = default;

    struct link {
        std::string name;
        unsigned index = 0;
        bootsvc::unique_fd fd;
    };
    std::vector<link> _links;
    bootsvc::unique_fd _stop_fd;
    std::atomic<std::uint64_t> _answered{0};
};

}  // namespace shoal::ndp
