#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "../http/http_client.h"
#include "http/server.h"
#include "ipxe/mac.h"
#include "ipxe/script.h"
#include "ipxe/task_source.h"

namespace shoal::ipxe {
namespace {

namespace fs = std::filesystem;

TEST(mac, normalizes_the_forms_people_write) {
    for (const char* text :
         {"00:12:3f:c4:57:0c", "00:12:3F:C4:57:0C", "00-12-3f-c4-57-0c", "00123FC4570C"}) {
        auto m = parse_mac(text);
        ASSERT_TRUE(m) << text;
        EXPECT_EQ(m->to_string(), "00:12:3f:c4:57:0c") << text;
    }
    for (const char* text :
         {"", "00:12:3f:c4:57", "00:12:3f:c4:57:0c:", "00:12-3f:c4:57:0c", "00:12:3f:c4:57:0g",
          "0012.3fc4.570c", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
          "00 12 3f c4 57 0c", "'; rm -rf /;", "00:12:3f:c4:57:0c\n"}) {
        EXPECT_FALSE(parse_mac(text)) << text;
    }
}

const mac_address host = *parse_mac("52:54:00:12:34:56");

TEST(script, a_pending_task_boots_the_client_os_with_its_arguments) {
    script_config c;
    boot_task t{"deploy", {{"image", "win10-lab"}, {"disk", "/dev/sda"}}};
    std::string s = task_script(c, "http://10.77.0.1", host, t);
    EXPECT_TRUE(s.starts_with("#!ipxe\n"));
    EXPECT_NE(s.find("kernel http://10.77.0.1/clientos/vmlinuz initrd=initrd.img "
                     "shoal.server=http://10.77.0.1 shoal.mac=52:54:00:12:34:56 shoal.task=deploy "
                     "shoal.image=win10-lab shoal.disk=/dev/sda console=tty0 console=ttyS0,115200 "
                     "quiet\n"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("initrd http://10.77.0.1/clientos/initrd.img\n"), std::string::npos);
    EXPECT_NE(s.find("boot || goto failed\n"), std::string::npos);
    EXPECT_EQ(s.find("menu"), std::string::npos);
}

TEST(script, the_menu_defaults_to_the_local_disk_after_its_timeout) {
    script_config c;
    c.menu_timeout_ms = 3000;
    std::string s = menu_script(c, "http://10.77.0.1", host);
    EXPECT_NE(s.find("choose --default local --timeout 3000 target"), std::string::npos);
    for (const char* item : {"item local ", "item quickreg ", "item fullreg ", "item deploy ",
                             "item multicast ", "item inventory "}) {
        EXPECT_NE(s.find(item), std::string::npos) << item;
    }
    // FOG's local boot: exit under UEFI, the first disk under BIOS.
    EXPECT_NE(s.find("iseq ${platform} efi && exit 0 ||\nsanboot --no-describe --drive 0x80"),
              std::string::npos);
    EXPECT_NE(s.find("shoal.mode=${mode} ${extra}"), std::string::npos);
    EXPECT_NE(s.find("read session"), std::string::npos);

    c.menu_default = "reboot";
    EXPECT_FALSE(validate(c));
    c.menu_default = "inventory";
    EXPECT_TRUE(validate(c));
    c.kernel_args = "console=${evil}";
    EXPECT_FALSE(validate(c));
}

TEST(task, values_that_could_escape_a_command_line_are_refused) {
    EXPECT_TRUE(
        validate_task({"deploy", {{"image", "win10"}, {"server", "http://10.0.0.1:80/x"}}}));
    EXPECT_FALSE(validate_task({"", {}}));
    EXPECT_FALSE(validate_task({"Deploy", {}}));
    EXPECT_FALSE(validate_task({"deploy", {{"image", "a b"}}}));
    EXPECT_FALSE(validate_task({"deploy", {{"image", "${x}"}}}));
    EXPECT_FALSE(validate_task({"deploy", {{"image", "a\nchain http://evil"}}}));
    EXPECT_FALSE(validate_task({"deploy", {{"im age", "x"}}}));
    EXPECT_FALSE(validate_task({"deploy", {{"image", std::string(257, 'a')}}}));
}

TEST(task, the_json_file_is_read_and_reread_when_it_changes) {
    char tmpl[] = "/tmp/shoal-tasks-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    fs::path file = dir / "tasks.json";
    json_file_task_source src(file.string());

    auto none = src.pending_task(host);
    ASSERT_TRUE(none);  // a missing file is no tasks
    EXPECT_FALSE(*none);

    std::ofstream(file) << R"({"tasks": {"52-54-00-12-34-56": {"type": "deploy",
                              "args": {"image": "lab", "partitions": 3}}}})";
    auto one = src.pending_task(host);
    ASSERT_TRUE(one) << one.err().describe();
    ASSERT_TRUE(*one);
    EXPECT_EQ((*one)->type, "deploy");
    ASSERT_EQ((*one)->args.size(), 2u);
    EXPECT_EQ((*one)->args[1], (std::pair<std::string, std::string>("partitions", "3")));

    // Replaced by a broken file: an error that names the file.
    fs::path tmp = dir / "tasks.new";
    std::ofstream(tmp) << R"({"tasks": {"not-a-mac": {"type": "deploy"}}})";
    fs::rename(tmp, file);
    auto broken = src.pending_task(host);
    ASSERT_FALSE(broken);
    EXPECT_NE(broken.err().describe().find("tasks.json: task key 'not-a-mac'"), std::string::npos)
        << broken.err().describe();

    std::ofstream(tmp) << R"({"tasks": {}})";
    fs::rename(tmp, file);
    auto cleared = src.pending_task(host);
    ASSERT_TRUE(cleared);
    EXPECT_FALSE(*cleared);
    fs::remove_all(dir);

    for (const char* bad :
         {"", "[]", R"({"tasks": []})", R"({"tasks": {"52:54:00:12:34:56": {}}})",
          R"({"tasks": {"52:54:00:12:34:56": {"type": "x", "args": {"a": "b c"}}}})",
          R"({"tasks": {"52:54:00:12:34:56": {"type": "x", "args": {"a": [1]}}}})"}) {
        EXPECT_FALSE(json_file_task_source::parse(bad, "t.json")) << bad;
    }
}

TEST(boot_route, answers_each_mac_with_its_script) {
    auto tasks = std::make_shared<memory_task_source>();
    tasks->set(host, {"inventory", {}});
    http::router r;
    add_boot_routes(r, tasks, {});
    http::server_config config;
    config.address = "127.0.0.1";
    config.port = 0;
    auto s = http::server::start(config, std::move(r));
    ASSERT_TRUE(s);
    auto p = (*s)->port();
    std::string base = "http://127.0.0.1:" + std::to_string(p);

    auto task = http::test::get(p, "/boot?mac=52-54-00-12-34-56");
    EXPECT_EQ(task.status, 200);
    EXPECT_NE(task.body.find("shoal.task=inventory"), std::string::npos) << task.body;
    EXPECT_NE(task.body.find("kernel " + base + "/clientos/vmlinuz"), std::string::npos);

    auto menu = http::test::get(p, "/boot?mac=00:12:3f:c4:57:0c");
    EXPECT_EQ(menu.status, 200);
    EXPECT_NE(menu.body.find("menu shoal - 00:12:3f:c4:57:0c"), std::string::npos);

    auto chain = http::test::get(p, "/boot");
    EXPECT_EQ(chain.body, "#!ipxe\nchain " + base + "/boot?mac=${netX/mac}\n");

    for (const char* bad : {"/boot?mac=garbage", "/boot?mac=",
                            "/boot?mac=00:12:3f:c4:57:0c%0Achain", "/boot?mac=ff:ff:ff:ff:ff:ff"}) {
        auto no = http::test::get(p, bad);
        EXPECT_EQ(no.status, 400) << bad;
        EXPECT_EQ(no.body.find("kernel"), std::string::npos) << bad;
    }
    // A Host header that would inject into the script is refused.
    auto evil = http::test::roundtrip(p,
                                      "GET /boot?mac=00:12:3f:c4:57:0c HTTP/1.0\r\n"
                                      "Host: x${y}\r\n\r\n");
    EXPECT_EQ(evil.status, 400);
}

TEST(boot_route, a_broken_task_source_is_a_500_not_a_menu) {
    char tmpl[] = "/tmp/shoal-tasks-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    fs::path file = fs::path(tmpl) / "tasks.json";
    std::ofstream(file) << "{ not json";
    http::router r;
    add_boot_routes(r, std::make_shared<json_file_task_source>(file.string()), {});
    http::server_config config;
    config.address = "127.0.0.1";
    config.port = 0;
    auto s = http::server::start(config, std::move(r));
    ASSERT_TRUE(s);
    auto no = http::test::get((*s)->port(), "/boot?mac=00:12:3f:c4:57:0c");
    EXPECT_EQ(no.status, 500);
    EXPECT_EQ(no.body.find("menu"), std::string::npos);
    fs::remove_all(tmpl);
}

}  // namespace
}  // namespace shoal::ipxe
