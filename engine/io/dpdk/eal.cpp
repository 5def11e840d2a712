#include "io/dpdk/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <new>
#include <vector>

namespace shoal::io::dpdk {
namespace {

// rte_eth_*_burst take 16-bit counts.
constexpr std::size_t burst_count_max = UINT16_MAX;

errc code_of(int rte_error) noexcept {
    switch (rte_error) {
    case EALREADY: return errc::exists;
    case EEXIST: return errc::exists;
    case EINVAL: return errc::invalid_argument;
    case ENOMEM: return errc::no_space;
    case ENOSPC: return errc::no_space;
    case ENODEV: return errc::not_found;
    case ENOTSUP: return errc::unsupported;
    default: return errc::io;
    }
}

// DPDK's messages cover its own codes (E_RTE_*) as well as errno values.
error rte_error(int rte_error_code, std::string_view what) noexcept {
    return error::format(code_of(rte_error_code), 0, "{}: {}", what, rte_strerror(rte_error_code));
}

}  // namespace

status eal_start(std::span<const std::string> args) noexcept {
    // rte_eal_init may rewrite argv; keeping the strings for the life of the process spares
    // us knowing whether it keeps pointers into them.
    static std::vector<std::string> kept;
    static std::vector<char*> argv;
    try {
        kept.assign(1, "shoal");
        kept.insert(kept.end(), args.begin(), args.end());
        argv.clear();
        for (std::string& a : kept) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
    } catch (const std::bad_alloc&) {
        return error(errc::no_space, "cannot copy the EAL arguments");
    }
    const int ret = rte_eal_init(static_cast<int>(kept.size()), argv.data());
    if (ret < 0) {
        const int code = rte_errno;
        std::string shown;
        for (std::size_t i = 1; i < kept.size() && shown.size() < 120; ++i) {
            shown += kept[i];
            shown += ' ';
        }
        // sys_errno carries rte_errno (describe() adds its text); the EAL printed the detail.
        return error::format(code_of(code), code, "rte_eal_init {}(see the EAL's message above){}",
                             shown,
                             code == EALREADY ? ", the EAL starts once per process"
                             : code == EACCES ? ", run as root"
                                              : "");
    }
    return ok();
}

status eal_stop() noexcept {
    const int ret = rte_eal_cleanup();
    if (ret < 0) {
        return rte_error(-ret, "rte_eal_cleanup");
    }
    return ok();
}

result<std::uint16_t> port_by_name(std::string_view name) noexcept {
    char text[RTE_ETH_NAME_MAX_LEN];
    if (name.size() >= sizeof text) {
        return error::format(errc::invalid_argument, 0, "port name '{}' is too long", name);
    }
    std::copy(name.begin(), name.end(), text);
    text[name.size()] = '\0';
    std::uint16_t id = 0;
    if (rte_eth_dev_get_port_by_name(text, &id) != 0) {
        return error::format(errc::not_found, 0,
                             "no DPDK port named '{}' (is it in --vdev or bound to DPDK?)", name);
    }
    return id;
}

result<rte_mempool*> mbuf_pool_create(const std::string& name, std::uint32_t count,
                                      std::uint32_t cache_count,
                                      std::uint16_t data_room_bytes) noexcept {
    const int socket = static_cast<int>(rte_socket_id());
    rte_mempool* pool =
        rte_pktmbuf_pool_create(name.c_str(), count, cache_count, 0, data_room_bytes, socket);
    if (pool == nullptr) {
        const int code = rte_errno;
        return error::format(code_of(code), 0,
                             "rte_pktmbuf_pool_create {} ({} mbufs of {} bytes): {}", name, count,
                             data_room_bytes, rte_strerror(code));
    }
    return pool;
}

result<std::unique_ptr<port>> port::start(const port_config& config) noexcept {
    const std::uint16_t id = config.port_id;
    if (rte_eth_dev_is_valid_port(id) == 0) {
        return error::format(errc::not_found, 0, "no DPDK port {} ({} ports)", id,
                             rte_eth_dev_count_avail());
    }
    char pool_name[RTE_MEMPOOL_NAMESIZE];
    std::snprintf(pool_name, sizeof pool_name, "shoal_mbuf_p%u", static_cast<unsigned>(id));
    auto pool = mbuf_pool_create(pool_name, config.mbuf_count, config.mbuf_cache_count,
                                 config.mbuf_data_room_bytes);
    if (!pool) {
        return pool.err();
    }
    std::unique_ptr<port> p(new (std::nothrow) port(id, *pool));
    if (!p) {
        rte_mempool_free(*pool);
        return error(errc::no_space, "cannot allocate a port");
    }
    // From here on p's destructor frees the pool (and stops the port once started).

    rte_eth_dev_info info{};
    int ret = rte_eth_dev_info_get(id, &info);
    if (ret != 0) {
        return rte_error(-ret, "rte_eth_dev_info_get");
    }
    rte_eth_conf conf{};
    ret = rte_eth_dev_configure(id, 1, 1, &conf);
    if (ret != 0) {
        return error::format(code_of(-ret), 0, "rte_eth_dev_configure port {} ({}): {}", id,
                             info.driver_name, rte_strerror(-ret));
    }
    std::uint16_t rx_count = config.rx_descriptor_count;
    std::uint16_t tx_count = config.tx_descriptor_count;
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(id, &rx_count, &tx_count);
    if (ret != 0) {
        return rte_error(-ret, "rte_eth_dev_adjust_nb_rx_tx_desc");
    }
    const unsigned socket = static_cast<unsigned>(rte_eth_dev_socket_id(id));
    ret = rte_eth_rx_queue_setup(id, 0, rx_count, socket, nullptr, p->_pool);
    if (ret != 0) {
        return error::format(code_of(-ret), 0,
                             "rte_eth_rx_queue_setup port {} ({} descriptors): {}", id, rx_count,
                             rte_strerror(-ret));
    }
    ret = rte_eth_tx_queue_setup(id, 0, tx_count, socket, nullptr);
    if (ret != 0) {
        return error::format(code_of(-ret), 0,
                             "rte_eth_tx_queue_setup port {} ({} descriptors): {}", id, tx_count,
                             rte_strerror(-ret));
    }
    ret = rte_eth_dev_start(id);
    if (ret != 0) {
        return error::format(code_of(-ret), 0, "rte_eth_dev_start port {}: {}", id,
                             rte_strerror(-ret));
    }
    p->_started = true;
    // Multicast groups need either promiscuous or all-multicast; not every device has
    // both, and a port that cannot is still usable for unicast, so failures are ignored.
    static_cast<void>(rte_eth_promiscuous_enable(id));
    return p;
}

port::~port() {
    if (_started) {
        rte_eth_dev_stop(_id);
        rte_eth_dev_close(_id);
    }
    rte_mempool_free(_pool);
}

std::size_t port::alloc_burst(rte_mbuf** out, std::size_t count) noexcept {
    const unsigned n = static_cast<unsigned>(std::min(count, burst_count_max));
    return rte_pktmbuf_alloc_bulk(_pool, out, n) == 0 ? n : 0;
}

std::size_t port::rx_burst(rte_mbuf** out, std::size_t count) noexcept {
    return rte_eth_rx_burst(_id, 0, out,
                            static_cast<std::uint16_t>(std::min(count, burst_count_max)));
}

std::size_t port::tx_burst(rte_mbuf** packets, std::size_t count) noexcept {
    return rte_eth_tx_burst(_id, 0, packets,
                            static_cast<std::uint16_t>(std::min(count, burst_count_max)));
}

}  // namespace shoal::io::dpdk
