#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "http/server.h"
#include "http_client.h"

namespace shoal::http {
namespace {

namespace fs = std::filesystem;

class http_server : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/shoal-http-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        _base = tmpl;
        fs::create_directories(_base / "www" / "clientos");
        std::ofstream(_base / "secret.txt") << "outside";
        std::ofstream(_base / "www" / "index.html") << "<h1>shoal</h1>";
        fs::create_symlink("../secret.txt", _base / "www" / "up-link");
        _kernel.resize(5'000'001);
        std::mt19937 rng(1);
        for (auto& c : _kernel) {
            c = static_cast<char>(rng());
        }
        std::ofstream(_base / "www" / "clientos" / "vmlinuz", std::ios::binary) << _kernel;
    }
    void TearDown() override {
        _server.reset();
        fs::remove_all(_base);
    }
    void start(router r, server_config config = {}) {
        config.address = "127.0.0.1";
        config.port = 0;
        config.threads = 2;
        auto s = server::start(config, std::move(r));
        ASSERT_TRUE(s) << s.err().describe();
        _server = std::move(*s);
    }
    router files_router() {
        router r;
        auto root = bootsvc::root_dir::open((_base / "www").string());
        EXPECT_TRUE(root);
        r.add_prefix(
            method::get, "/",
            static_files(std::make_shared<const bootsvc::root_dir>(std::move(*root)), "/"));
        return r;
    }

    fs::path _base;
    std::string _kernel;
    std::unique_ptr<server> _server;
};

TEST_F(http_server, routes_by_method_and_path) {
    router r;
    r.add(method::get, "/api/hosts", [](const request&) { return response::text(200, "list"); });
    r.add(method::post, "/api/hosts", [](const request& q) {
        return response::json(201, nlohmann::json{{"got", q.body()}});
    });
    r.add_prefix(method::get, "/api/", [](const request& q) {
        return response::text(200, "prefix " + std::string(q.path()));
    });
    r.add(method::get, "/q", [](const request& q) {
        return response::text(200, std::string(q.query("mac").value_or("none")) + "|" +
                                       std::string(q.query("x").value_or("none")));
    });
    start(std::move(r));
    auto p = _server->port();

    auto a = test::get(p, "/api/hosts");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "list");
    auto b = test::get(p, "/api/images/7");
    EXPECT_EQ(b.body, "prefix /api/images/7");
    auto c = test::get(p, "/q?mac=00%3A12%3a3f%3AC4%3A57%3A0c&x=a+b");
    EXPECT_EQ(c.body, "00:12:3f:C4:57:0c|a b");
    auto d = test::get(p, "/nothing");
    EXPECT_EQ(d.status, 404);
    EXPECT_EQ(nlohmann::json::parse(d.body)["error"], "nothing at /nothing");

    auto e = test::roundtrip(p, "DELETE /api/hosts HTTP/1.0\r\n\r\n");
    EXPECT_EQ(e.status, 405);
    EXPECT_NE(e.headers.find("Allow: GET, POST"), std::string::npos) << e.headers;

    auto f =
        test::roundtrip(p, "POST /api/hosts HTTP/1.0\r\nContent-Length: 11\r\n\r\nhello world");
    EXPECT_EQ(f.status, 201);
    EXPECT_EQ(nlohmann::json::parse(f.body)["got"], "hello world");
    EXPECT_NE(f.headers.find("Content-Type: application/json"), std::string::npos);
}

TEST_F(http_server, refuses_bodies_over_the_limit) {
    router r;
    r.add(method::put, "/up",
          [](const request& q) { return response::text(200, std::to_string(q.body().size())); });
    server_config config;
    config.body_size_max = 1000;
    start(std::move(r), config);
    std::string small(1000, 'x');
    auto ok_reply = test::roundtrip(_server->port(),
                                    "PUT /up HTTP/1.0\r\nContent-Length: 1000\r\n\r\n" + small);
    EXPECT_EQ(ok_reply.status, 200);
    EXPECT_EQ(ok_reply.body, "1000");
    std::string big(5000, 'x');
    auto no =
        test::roundtrip(_server->port(), "PUT /up HTTP/1.0\r\nContent-Length: 5000\r\n\r\n" + big);
    EXPECT_EQ(no.status, 413);
    // Chunked, so the size is not declared up front: found while reading.
    std::string chunked =
        "PUT /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) {
        chunked += "1f4\r\n" + std::string(500, 'y') + "\r\n";
    }
    chunked += "0\r\n\r\n";
    auto no2 = test::roundtrip(_server->port(), chunked);
    EXPECT_EQ(no2.status, 413);
}

TEST_F(http_server, serves_files_beneath_its_root_only) {
    start(files_router());
    auto p = _server->port();
    auto k = test::get(p, "/clientos/vmlinuz");
    EXPECT_EQ(k.status, 200);
    EXPECT_EQ(k.body.size(), _kernel.size());
    EXPECT_TRUE(k.body == _kernel);
    EXPECT_NE(k.headers.find("Content-Type: application/octet-stream"), std::string::npos);
    auto h = test::get(p, "/index.html");
    EXPECT_EQ(h.body, "<h1>shoal</h1>");
    EXPECT_NE(h.headers.find("text/html"), std::string::npos);
    auto head = test::roundtrip(p, "HEAD /clientos/vmlinuz HTTP/1.0\r\n\r\n");
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(head.body.empty());
    EXPECT_NE(head.headers.find("Content-Length: 5000001"), std::string::npos);

    for (const char* target :
         {"/../secret.txt", "/%2e%2e/secret.txt", "/clientos/%2E%2E/../secret.txt", "/up-link"}) {
        auto no = test::get(p, target);
        EXPECT_EQ(no.status, 403) << target;
        EXPECT_EQ(no.body.find("outside"), std::string::npos) << target;
    }
    EXPECT_EQ(test::get(p, "/missing").status, 404);
    EXPECT_EQ(test::get(p, "/clientos").status, 403);  // a directory is not a file
    // ... but a directory's URL with its '/' is its index.html, where there is one.
    auto root_index = test::get(p, "/");
    EXPECT_EQ(root_index.status, 200);
    EXPECT_EQ(root_index.body, "<h1>shoal</h1>");
    EXPECT_NE(root_index.headers.find("text/html"), std::string::npos);
    EXPECT_EQ(test::get(p, "/clientos/").status, 404);
    EXPECT_EQ(test::get(p, "/../").status, 403);
}

TEST(http, a_taken_port_is_reported) {
    router r;
    server_config config;
    config.address = "127.0.0.1";
    config.port = 0;
    auto first = server::start(config, r);
    ASSERT_TRUE(first);
    config.port = (*first)->port();
    auto second = server::start(config, r);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.err().sys_errno(), EADDRINUSE);
    EXPECT_NE(second.err().describe().find("cannot listen on 127.0.0.1"), std::string::npos);
}

}  // namespace
}  // namespace shoal::http
