// The session runner's sender: the engine's (engine/deploy) run loop, in-process, sending
// an image from the chunk store as it is stored (no recompression).
#pragma once

#include "tasks/service.h"

namespace shoal::control::tasks {

class engine_sender final : public sender_engine {
public:
    explicit engine_sender(const tasks_config& config) : _config(config) {}
    // Opens the store (shared lock: captures of other images go on), prepares the image's
    // session (every chunk checked against its SHA-256 first: a damaged store fails here,
    // before a byte is sent) and runs the sender until its end or run.cancel.
    result<sender_outcome> run(const sender_run& run) override;

private:
    tasks_config _config;
};

}  // namespace shoal::control::tasks
