// Data-plane contract tests: the real server on loopback, real sockets, bounded waits.
#include <doctest/doctest.h>

#include <map>
#include <mutex>

#include "proxy/server.hpp"
#include "test_net.hpp"

using namespace npp;
using namespace npp::test;

namespace {

proxy::settings loopback_settings() {
  proxy::settings s;
  s.workers = 2;
  s.nodeport_addresses = {*config::cidr::parse("127.0.0.1/32")};
  s.connect_timeout = std::chrono::milliseconds(500);
  s.shutdown_grace_period = std::chrono::milliseconds(200);
  return s;
}

config::snapshot one_port(int node_port, const std::vector<config::host_port>& eps) {
  config::snapshot snap;
  snap.source = "test";
  config::service svc;
  svc.name = "web";
  config::service_port p;
  p.name = "http";
  p.port = 80;
  p.node_port = node_port;
  for (auto& e : eps) p.endpoints.push_back(config::endpoint{e});
  svc.ports.push_back(p);
  snap.services.push_back(svc);
  return snap;
}

/// A backend that answers each connection with its name and closes.
std::unique_ptr<backend> named(const std::string& name) {
  return std::make_unique<backend>([name](int fd) { send_all(fd, name); });
}

}  // namespace

TEST_CASE("a half-close from the client does not close the other direction") {
  // The backend reads until the client's FIN arrives, then answers: this only works if the
  // proxy forwarded the FIN as shutdown(SHUT_WR) and kept the upstream->client direction open.
  auto be = std::make_unique<backend>([](int fd) {
    int err = 0;
    std::string got = read_all(fd, &err);
    send_all(fd, "got " + std::to_string(got.size()) + " bytes then EOF");
  });
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  REQUIRE(srv.apply(one_port(np, {be->address()})).errors.empty());
  int c = connect_to(np);
  REQUIRE(c >= 0);
  fd_guard g(c);
  REQUIRE(send_all(c, std::string(100000, 'x')));
  ::shutdown(c, SHUT_WR);
  int err = -1;
  CHECK(read_all(c, &err) == "got 100000 bytes then EOF");
  CHECK(err == 0);
}

TEST_CASE("upstream EOF half-closes the client and keeps relaying client bytes") {
  std::atomic<std::size_t> received{0};
  auto be = std::make_unique<backend>([&](int fd) {
    send_all(fd, "hello");
    ::shutdown(fd, SHUT_WR);  // server speaks first, then half-closes
    received = read_all(fd).size();
  });
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  REQUIRE(srv.apply(one_port(np, {be->address()})).errors.empty());
  int c = connect_to(np);
  REQUIRE(c >= 0);
  fd_guard g(c);
  char buf[16];
  std::string got;
  while (got.size() < 5) {
    ssize_t n = ::recv(c, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  CHECK(got == "hello");
  CHECK(::recv(c, buf, sizeof buf, 0) == 0);  // EOF forwarded
  REQUIRE(send_all(c, std::string(5000, 'y')));  // still allowed after EOF
  ::shutdown(c, SHUT_WR);
  CHECK(wait_until([&] { return received.load() == 5000; }));
}

TEST_CASE("a port without endpoints refuses connections and starts listening when one arrives") {
  auto be = named("a");
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  auto r = srv.apply(one_port(np, {}));
  REQUIRE(r.errors.empty());
  CHECK(r.refusing == 1);
  CHECK(connect_to(np) == -ECONNREFUSED);
  // The port is held: another socket cannot take it while the proxy is configured for it.
  {
    fd_guard other(::socket(AF_INET, SOCK_STREAM, 0));
    auto a = loopback(np);
    CHECK(::bind(other.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0);
  }
  REQUIRE(srv.apply(one_port(np, {be->address()})).errors.empty());
  std::string got;
  CHECK(wait_until([&] {
    int c = connect_to(np);
    if (c < 0) return false;
    fd_guard g(c);
    got = read_all(c);
    return true;
  }));
  CHECK(got == "a");
}

TEST_CASE("round-robin over three endpoints is exact across workers") {
  std::vector<std::unique_ptr<backend>> bes;
  for (auto n : {"a", "b", "c"}) bes.push_back(named(n));
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  REQUIRE(srv.apply(one_port(np, {bes[0]->address(), bes[1]->address(), bes[2]->address()})).errors.empty());
  std::map<std::string, int> seen;
  for (int i = 0; i < 90; ++i) {
    int c = connect_to(np);
    REQUIRE(c >= 0);
    fd_guard g(c);
    seen[read_all(c)]++;
  }
  CHECK(seen["a"] == 30);
  CHECK(seen["b"] == 30);
  CHECK(seen["c"] == 30);
}

TEST_CASE("an unchanged port keeps its listening sockets across a reload") {
  auto a = named("a");
  auto b = named("b");
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  int other = free_port();
  REQUIRE(srv.apply(one_port(np, {a->address()})).errors.empty());
  REQUIRE(wait_until([&] { return listening_inodes(np).size() == 2; }));  // one per worker
  auto before = listening_inodes(np);
  // Add a second port and change the endpoints of the first: its sockets must stay.
  auto snap = one_port(np, {b->address()});
  auto extra = one_port(other, {a->address()});
  extra.services.edit(0).name = "other";
  snap.services.push_back(extra.services[0]);
  REQUIRE(srv.apply(snap).errors.empty());
  REQUIRE(wait_until([&] { return listening_inodes(other).size() == 2; }));
  CHECK(listening_inodes(np) == before);
  int c = connect_to(np);
  REQUIRE(c >= 0);
  fd_guard g(c);
  CHECK(read_all(c) == "b");
}

TEST_CASE("removing a port stops listening at once while its open connections continue") {
  backend echo([](int fd) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      send_all(fd, std::string(buf, static_cast<std::size_t>(n)));
    }
  });
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  REQUIRE(srv.apply(one_port(np, {echo.address()})).errors.empty());
  int c = connect_to(np);
  REQUIRE(c >= 0);
  fd_guard g(c);
  REQUIRE(send_all(c, "ping"));
  char buf[8];
  REQUIRE(::recv(c, buf, 4, MSG_WAITALL) == 4);

  config::snapshot empty;
  empty.source = "test";
  REQUIRE(srv.apply(empty).errors.empty());
  CHECK(wait_until([&] { return listening_inodes(np).empty(); }));
  CHECK(wait_until([&] { return connect_to(np, 500) == -ECONNREFUSED; }));
  // The established connection still relays.
  REQUIRE(send_all(c, "pong"));
  CHECK(::recv(c, buf, 4, MSG_WAITALL) == 4);
  CHECK(std::string(buf, 4) == "pong");
}

TEST_CASE("a port taken by another process is reported and other ports are still served") {
  fd_guard squatter(::socket(AF_INET, SOCK_STREAM, 0));
  auto addr = loopback(0);
  REQUIRE(::bind(squatter.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(squatter.fd, 1) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(squatter.fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int taken = ntohs(addr.sin_port);

  auto be = named("ok");
  proxy::server srv(loopback_settings(), "node-1");
  int np = free_port();
  auto snap = one_port(np, {be->address()});
  auto second = one_port(taken, {be->address()});
  second.services.edit(0).name = "taken";
  snap.services.push_back(second.services[0]);
  auto r = srv.apply(snap);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].find("Address already in use") != std::string::npos);
  CHECK(r.errors[0].find(std::to_string(taken)) != std::string::npos);
  int c = connect_to(np);
  REQUIRE(c >= 0);
  fd_guard g(c);
  CHECK(read_all(c) == "ok");
}

TEST_CASE("a snapshot sharing Service objects with the last one changes only the Services that are new") {
  auto a = named("a");
  auto b = named("b");
  auto c = named("c");
  proxy::server srv(loopback_settings(), "node-1");
  const int np_a = free_port(), np_b = free_port(), np_c = free_port(), np_d = free_port();
  auto service_on = [](const std::string& name, int node_port, const backend& be) {
    auto s = one_port(node_port, {be.address()});
    s.services.edit(0).name = name;
    return s.services[0];
  };
  config::snapshot first;
  first.source = "test";
  first.services = {service_on("a", np_a, *a), service_on("b", np_b, *b), service_on("c", np_c, *a)};
  auto r = srv.apply(first);
  REQUIRE(r.errors.empty());
  CHECK(r.listening == 3);
  REQUIRE(wait_until([&] { return listening_inodes(np_a).size() == 2; }));
  const auto inodes_a = listening_inodes(np_a);

  // a: the same object; b: a new object (another endpoint); c: gone; d: new.
  config::snapshot second;
  second.source = "test";
  second.services.push_back(first.services.shared(0));
  second.services.push_back(service_on("b", np_b, *c));
  second.services.push_back(service_on("d", np_d, *b));
  r = srv.apply(second);
  REQUIRE(r.errors.empty());
  CHECK(r.ports == 3);
  CHECK(r.listening == 3);
  CHECK(r.refusing == 0);
  CHECK(listening_inodes(np_a) == inodes_a);
  auto answer = [](int port) {
    int fd = connect_to(port);
    if (fd < 0) return "error " + std::to_string(fd);
    fd_guard g(fd);
    return read_all(fd);
  };
  CHECK(answer(np_a) == "a");
  CHECK(answer(np_b) == "c");
  CHECK(answer(np_d) == "b");
  CHECK(wait_until([&] { return connect_to(np_c, 500) == -ECONNREFUSED; }));

  // The same snapshot again changes nothing.
  r = srv.apply(second);
  CHECK(r.errors.empty());
  CHECK(r.listening == 3);
  CHECK(listening_inodes(np_a) == inodes_a);
  CHECK(answer(np_b) == "c");

  // A shared Service whose endpoints are all gone in a new object refuses; counted as such.
  config::snapshot third = second;
  auto b_empty = one_port(np_b, {});
  b_empty.services.edit(0).name = "b";
  third.services = {second.services[0], b_empty.services[0], second.services[2]};
  r = srv.apply(third);
  CHECK(r.listening == 2);
  CHECK(r.refusing == 1);
  CHECK(wait_until([&] { return connect_to(np_b, 500) == -ECONNREFUSED; }));
  CHECK(answer(np_a) == "a");

  // New objects equal in value (as a file reload makes) keep everything; a changed one applies.
  config::snapshot fourth;
  fourth.source = "test";
  fourth.services = {service_on("a", np_a, *a), b_empty.services[0], service_on("d", np_d, *b)};
  r = srv.apply(fourth);
  CHECK(r.errors.empty());
  CHECK(r.listening == 2);
  CHECK(listening_inodes(np_a) == inodes_a);
  fourth.services = {service_on("a", np_a, *c), b_empty.services[0], service_on("d", np_d, *b)};
  r = srv.apply(fourth);
  CHECK(r.listening == 2);
  CHECK(listening_inodes(np_a) == inodes_a);
  CHECK(answer(np_a) == "c");
  CHECK(answer(np_d) == "b");
}

TEST_CASE("a port that could not be bound is tried again at the next apply, even with its Service unchanged") {
  auto squatter = std::make_unique<fd_guard>(::socket(AF_INET, SOCK_STREAM, 0));
  auto addr = loopback(0);
  REQUIRE(::bind(squatter->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(squatter->fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int taken = ntohs(addr.sin_port);

  auto be = named("late");
  proxy::server srv(loopback_settings(), "node-1");
  const auto snap = one_port(taken, {be->address()});
  auto r = srv.apply(snap);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.listening == 0);
  squatter.reset();  // the other process lets the port go
  r = srv.apply(snap);  // the same Service object
  CHECK(r.errors.empty());
  CHECK(r.listening == 1);
  int c = connect_to(taken);
  REQUIRE(c >= 0);
  fd_guard g(c);
  CHECK(read_all(c) == "late");
}
