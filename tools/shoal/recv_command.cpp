// shoal recv TARGET...: join a multicast session and write what it carries to a disk, a
// partition, a file or /dev/null, every chunk checked against its SHA-256 first; an image
// session is written as `shoal image restore` would. The loop is deploy::run_receiver.
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/clock.h"
#include "common/log.h"
#include "deploy/run.h"
#include "session/receiver.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {

struct recv_options {
    transfer_options transfer;
    std::vector<std::string> targets;
    std::uint32_t id = 0;
    std::string image;
    std::string size;
    std::string memory = "256M";
    std::string timeout = "5s";
    std::string join_timeout = "60s";
    std::string throttle_disk = "0";
    std::string manifest_sha256;
    bool resume = false;
};

result<std::array<std::uint8_t, 32>> parse_sha256(const std::string& hex) {
    std::array<std::uint8_t, 32> out{};
    if (hex.size() != 64) {
        return error(errc::invalid_argument, "--manifest-sha256 takes 64 hex digits");
    }
    for (std::size_t i = 0; i < 32; ++i) {
        unsigned v = 0;
        if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) {
            return error(errc::invalid_argument, "--manifest-sha256 takes 64 hex digits");
        }
        out[i] = static_cast<std::uint8_t>(v);
    }
    return out;
}

int run_recv(const recv_options& o) {
    auto key = o.transfer.key();
    auto udp = o.transfer.udp_config();
    auto memory = parse_size_bytes(o.memory);
    auto timeout = parse_duration_ns(o.timeout);
    auto join_timeout = parse_duration_ns(o.join_timeout);
    auto throttle = parse_size_bytes(o.throttle_disk);
    auto new_size = parse_size_bytes(o.size.empty() ? "0" : o.size);
    for (const error* e : {key ? nullptr : &key.err(), udp ? nullptr : &udp.err(),
                           memory ? nullptr : &memory.err(), timeout ? nullptr : &timeout.err(),
                           join_timeout ? nullptr : &join_timeout.err(),
                           throttle ? nullptr : &throttle.err(), new_size ? nullptr : &new_size.err()}) {
        if (e != nullptr) {
            std::fprintf(stderr, "shoal recv: %s\n", e->describe().c_str());
            return 2;
        }
    }
    deploy::recv_config config;
    config.udp = *udp;
    session::receiver_config& rc = config.receiver;
    rc.receiver_id = o.id;
    rc.key = *key;
    rc.memory_bytes_max = *memory;
    rc.sender_timeout_ns = *timeout;
    if (!o.manifest_sha256.empty()) {
        auto h = parse_sha256(o.manifest_sha256);
        if (!h) {
            std::fprintf(stderr, "shoal recv: %s\n", h.err().describe().c_str());
            return 2;
        }
        rc.manifest_sha256 = *h;
    }
    config.targets = o.targets;
    config.resume = o.resume;
    config.throttle_Bps = static_cast<double>(*throttle);
    config.join_timeout_ns = *join_timeout;
    config.image_name = o.image;
    config.new_file_size_bytes = *new_size;
    const std::string target_text = fmt::format("{}", fmt::join(o.targets, ", "));
    config.on_progress = [](const deploy::recv_progress& p) {
        if (p.chunk_count == 0) {
            return;
        }
        log::info("recv: {} of {} chunks written ({}), {} packets, {} lost, {} blocks rebuilt",
                  p.chunks_written, p.chunk_count, human_bytes(static_cast<double>(p.stats->bytes_written)),
                  p.stats->data_packets, p.stats->lost_packets, p.stats->blocks_decoded);
    };
    auto run = deploy::run_receiver(config);
    if (!run) {
        std::fprintf(stderr, "shoal recv: %s\n", run.err().describe().c_str());
        return 1;
    }
    const auto& st = run->stats;
    const double seconds = run->seconds;
    const bool complete = run->complete;
    if (run->target_failed) {
        std::fprintf(stderr, "shoal recv: %s: %s\n", target_text.c_str(), run->failure->describe().c_str());
    }
    if (o.transfer.json) {
        nlohmann::json j = {{"id", fmt::format("{:08x}", run->id)},
                            {"complete", complete},
                            {"bytes_written", st.bytes_written},
                            {"seconds", seconds},
                            {"rate_Bps", seconds > 0 ? static_cast<double>(st.bytes_written) / seconds : 0},
                            {"data_packets", st.data_packets},
                            {"lost_packets", st.lost_packets},
                            {"blocks_decoded", st.blocks_decoded},
                            {"chunks_rejected", st.chunks_rejected},
                            {"chunks_present", st.chunks_present},
                            {"bytes_present", st.bytes_present},
                            {"statuses_sent", st.statuses_sent},
                            {"cpu_seconds", run->cpu_seconds},
                            {"error", complete ? "" : run->failure->describe()}};
        if (!run->image_name.empty()) {
            j["image"] = run->image_name;
        }
        std::printf("%s\n", j.dump().c_str());
    }
    if (!complete) {
        if (!run->target_failed) {
            std::fprintf(stderr, "shoal recv: FAILED: %s; the target is NOT a complete copy\n",
                         run->failure->describe().c_str());
        }
        return 1;
    }
    std::fprintf(stderr,
                 "shoal recv: complete: %s%s written to %s and verified in %.2f s (%s); %llu of %llu "
                 "packets lost, %llu blocks rebuilt by FEC, %llu chunks asked again\n",
                 run->image_name.empty() ? "" : ("image " + run->image_name + ": ").c_str(),
                 human_bytes(static_cast<double>(st.bytes_written)).c_str(), target_text.c_str(), seconds,
                 human_rate(seconds > 0 ? static_cast<double>(st.bytes_written) / seconds : 0).c_str(),
                 static_cast<unsigned long long>(st.lost_packets),
                 static_cast<unsigned long long>(st.lost_packets + st.data_packets),
                 static_cast<unsigned long long>(st.blocks_decoded),
                 static_cast<unsigned long long>(st.chunks_rejected));
    if (st.chunks_present > 0) {
        std::fprintf(stderr, "shoal recv: resumed: %u chunks (%s) were already on the target and verified\n",
                     st.chunks_present, human_bytes(static_cast<double>(st.bytes_present)).c_str());
    }
    return 0;
}

}  // namespace

void add_recv_command(CLI::App& app, command_set& commands) {
    auto opts = std::make_shared<recv_options>();
    auto* sub = app.add_subcommand("recv", "join a multicast session and write it to a target");
    sub->add_option("target", opts->targets,
                    "disk, partition, file or /dev/null; for an image session, one disk (or "
                    "disk image file) per disk of the image")
        ->required();
    sub->add_option("--id", opts->id,
                    "this receiver's id in the sender's reports (shoald: the task id; default random)");
    sub->add_option("--image", opts->image,
                    "accept only a session carrying this image from the sender's store (an image "
                    "session is detected without it)");
    sub->add_option("--size", opts->size,
                    "image session: make a missing target file this size (default: the captured "
                    "disk's)");
    opts->transfer.add_to(*sub);
    sub->add_option("--memory", opts->memory, "chunk buffers, all together")->capture_default_str();
    sub->add_option("--timeout", opts->timeout, "give up when the sender is silent this long")
        ->capture_default_str();
    sub->add_option("--join-timeout", opts->join_timeout, "give up when no session appears")
        ->capture_default_str();
    sub->add_option("--manifest-sha256", opts->manifest_sha256,
                    "accept only the session whose manifest has this hash (from the server)");
    sub->add_option("--throttle-disk", opts->throttle_disk,
                    "write no faster than this many bytes/s (tests of slow receivers)");
    sub->add_flag("--resume", opts->resume,
                  "keep the chunks already on the target whose bytes match the image (after an "
                  "interrupted run); receive only the rest");
    commands.add(sub, [opts] { return run_recv(*opts); });
}

}  // namespace shoal::cli
