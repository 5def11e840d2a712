// The default services: no task runner. Hosts boot to the menu, wake requests are refused
// as unsupported. control/tasks replaces this file with its own make_services.
#include "services.h"

#include "common/log.h"

namespace shoal::control {

namespace {

class no_task_control final : public task_control {
public:
    status wake(std::int64_t host_id, const ipxe::mac_address&) override {
        log::warn("api: wake of host {} asked, but this shoald runs no task service", host_id);
        return error(errc::unsupported, "this shoald was built without the tasks service");
    }
};

}  // namespace

result<services> make_services(const daemon_context&) {
    services s;
    s.tasks = std::make_shared<no_task_control>();
    return s;
}

}  // namespace shoal::control
