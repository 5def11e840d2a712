// How multicast tasks become sessions, as pure decisions over a snapshot of the store (no
// I/O, no clock of its own: the caller passes `now`), so the rules are tested with a fake
// clock and survive a restart of shoald by construction (the store holds all the state).
//
// Rules (FOG's "start when N clients joined or after T minutes"):
// - a queued multicast task joins the waiting session for its image, if there is one;
//   otherwise (none, or the image's session is already running) it starts a new session;
// - a waiting session starts when receivers_min of its tasks have joined (the PC booted and
//   fetched its task), or when wait_max_s has passed since it was made and at least one
//   has joined, but never before gather_s has passed; receivers_min 0 means "all of the session's
//   tasks", and a receivers_min above the session's task count is read as that count (it could
//   never be reached);
// - a waiting session with no task left (all cancelled) is closed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace shoal::control::tasks {

struct waiting_session {
    std::int64_t id = 0;
    std::int64_t image_id = 0;
    std::int64_t created_at_s = 0;
    std::uint32_t receivers_min = 0;  // 0: every task of the session
    std::int64_t wait_max_s = 0;
    std::uint32_t tasks_count = 0;   // tasks still open (not cancelled or failed)
    std::uint32_t joined_count = 0;  // of those, tasks whose PC has taken them
    // Tasks queued within this long of the session's creation are "together": the session
    // does not start on its joined count before it is this old (an admin making a room's
    // tasks one by one, or a PC booting faster than the next task is made).
    std::int64_t gather_s = 0;
};

// The waiting session a new task for `image_id` joins, or nullopt to make a new one.
std::optional<std::int64_t> session_to_join(std::span<const waiting_session> waiting,
                                            std::int64_t image_id);

enum class start_decision {
    wait,           // not yet
    start_joined,   // enough receivers joined
    start_timeout,  // wait_max_s passed with at least one receiver
    close_empty,    // no task left: close the session
};

struct start_verdict {
    start_decision decision = start_decision::wait;
    std::string reason;  // for the log and the session's message
};

start_verdict should_start(const waiting_session& session, std::int64_t now_s);

// Multicast address and port of a session: sessions get distinct groups in 239.x.y.z
// (organization-local scope, RFC 2365) from `group_base` upwards and one port, so two
// sessions never share a group. `slots` bounds how many exist at once.
struct multicast_plan {
    std::uint32_t group_base_host_order = 0xEF4D0001;  // 239.77.0.1
    std::uint16_t port = 5500;
    std::uint32_t slots = 4096;
};
// The group of session `session_id`, "239.77.0.5".
std::string session_group(const multicast_plan& plan, std::int64_t session_id);

}  // namespace shoal::control::tasks
