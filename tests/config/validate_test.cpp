// validate_and_allocate(): nodePort range, collisions, self-loops and deterministic allocation.
#include "test_support.hpp"

#include <set>

using namespace npp::config;
using npp::config::test::has_problem;
using npp::config::test::load;
using npp::config::test::load_problems;
using npp::config::test::problems_of;
using strings = std::vector<std::string>;

namespace {
// {"services": [...]} from service bodies.
std::string doc(std::initializer_list<std::string_view> services, std::string_view range = "") {
  std::string out = "{";
  if (!range.empty()) out += R"("nodePortRange": ")" + std::string(range) + "\", ";
  out += R"("services": [)";
  bool first = true;
  for (auto s : services) {
    if (!first) out += ", ";
    out += s;
    first = false;
  }
  return out + "]}";
}

service forward_service(int port, protocol proto = protocol::tcp) {
  service svc;
  svc.name = "forward-" + std::to_string(port) + (proto == protocol::udp ? "-udp" : "");
  svc.ad_hoc = true;
  service_port p;
  p.proto = proto;
  p.port = port;
  p.node_port = port;
  svc.ports.push_back(p);
  return svc;
}
}  // namespace

TEST_CASE("a nodePort outside the range is refused in the apiserver's words") {
  CHECK(load_problems(doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 37896}]})"})) ==
        strings{"services[0].ports[0].nodePort: Invalid value: 37896: provided port is not in the valid range. "
                "The range of valid ports is 30000-32767"});
  CHECK(load_problems(doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 8080}]})"}, "8000-8079")) ==
        strings{"services[0].ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. "
                "The range of valid ports is 8000-8079"});
  CHECK_NOTHROW(load(doc({R"({"name": "a", "ports": [{"name": "a", "port": 80, "nodePort": 30000}, {"name": "b", "port": 81, "nodePort": 32767}]})"})));
}

TEST_CASE("--service-node-port-range overrides the file's range for the check") {
  const auto text = doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 8080}]})"}, "8000-9000");
  CHECK_NOTHROW(load(text));
  load_options opts;
  opts.range_override = port_range{30000, 32767};
  CHECK_THROWS_WITH_AS(load(text, opts), doctest::Contains("Invalid value: 8080: provided port is not in the valid range. "
                                                           "The range of valid ports is 30000-32767"),
                       config_error);
  opts.range_override = port_range{1, 65535};
  CHECK(load(doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 80}]})"}), opts).services[0].ports[0].node_port == 80);
}

TEST_CASE("two services on one nodePort and protocol collide") {
  CHECK(load_problems(doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 30080}]})",
                           R"({"name": "b", "ports": [{"port": 8080, "nodePort": 30080}]})"})) ==
        strings{"services[1].ports[0].nodePort: Invalid value: 30080: provided port is already allocated (by default/a "
                "port 80/TCP)"});
}

TEST_CASE("one number is taken across protocols unless both ports are the same service's same port") {
  // Different services, TCP and UDP: the apiserver's bitmap is per number, so this collides.
  CHECK(load_problems(doc({R"({"name": "a", "ports": [{"name": "dns", "port": 53, "nodePort": 30053}]})",
                           R"({"name": "b", "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]})"})) ==
        strings{"services[1].ports[0].nodePort: Invalid value: 30053: provided port is already allocated (by default/a "
                "port dns/TCP)"});
  // Same service, same port, TCP+UDP: allowed.
  auto snap = load(doc({R"({"name": "dns", "ports": [{"name": "tcp", "port": 53, "nodePort": 30053},
                                                    {"name": "udp", "port": 53, "protocol": "UDP", "nodePort": 30053}]})"}));
  CHECK(snap.services[0].ports[1].node_port == 30053);
  // Same service, TCP+UDP, but different `port`: not the apiserver's shared case.
  CHECK(has_problem(load_problems(doc({R"({"name": "dns", "ports": [{"name": "tcp", "port": 53, "nodePort": 30053},
                                               {"name": "udp", "port": 54, "protocol": "UDP", "nodePort": 30053}]})"})),
                    "services[0].ports[1].nodePort: Invalid value: 30053: provided port is already allocated"));
  // Same service, same protocol, different port.
  CHECK(has_problem(load_problems(doc({R"({"name": "web", "ports": [{"name": "a", "port": 80, "nodePort": 30080},
                                               {"name": "b", "port": 81, "nodePort": 30080}]})"})),
                    "services[0].ports[1].nodePort: Invalid value: 30080: provided port is already allocated"));
}

TEST_CASE("services with the same namespace and name are duplicates") {
  CHECK(load_problems(doc({R"({"name": "a", "ports": [{"port": 80}]})", R"({"name": "a", "ports": [{"port": 81}]})",
                           R"({"namespace": "other", "name": "a", "ports": [{"port": 82}]})"})) ==
        strings{"services[1].name: Duplicate value: \"default/a\""});
}

TEST_CASE("ad-hoc --forward services skip the range check but still collide") {
  snapshot snap;
  snap.source = "flags";
  snap.services.push_back(forward_service(8080));
  REQUIRE_NOTHROW(validate_and_allocate(snap));
  CHECK(snap.services[0].ports[0].node_port == 8080);

  snap.services.push_back(forward_service(8080));
  snap.services.edit(1).name = "forward-8080-again";
  CHECK_THROWS_WITH_AS(validate_and_allocate(snap),
                       doctest::Contains("flags: 1 problem:\n  --forward tcp:8080: Invalid value: 8080: provided port "
                                         "is already allocated (by --forward tcp:8080)"),
                       config_error);
}

TEST_CASE("ad-hoc TCP and UDP forwards may share a number but a file service's number is taken") {
  auto snap = load(doc({R"({"name": "web", "ports": [{"port": 80, "nodePort": 30080}]})"}));
  snap.services.push_back(forward_service(53));
  snap.services.push_back(forward_service(53, protocol::udp));
  CHECK_NOTHROW(validate_and_allocate(snap));

  snap.services.push_back(forward_service(30080));
  CHECK(problems_of([&] { validate_and_allocate(snap); }) ==
        strings{"--forward tcp:30080: Invalid value: 30080: provided port is already allocated (by default/web port 80/TCP)"});
}

TEST_CASE("a failed validate_and_allocate leaves the snapshot untouched") {
  snapshot snap;
  snap.range = port_range{30000, 30001};
  for (const char* name : {"a", "b", "c"}) {
    service svc;
    svc.name = name;
    service_port p;
    p.port = 80;
    svc.ports.push_back(p);
    snap.services.push_back(svc);
  }
  const snapshot before = snap;
  CHECK(problems_of([&] { validate_and_allocate(snap); }) ==
        strings{"services[2].ports[0].nodePort: Internal error: failed to allocate a nodePort: range is full"});
  for (std::size_t i = 0; i < snap.services.size(); ++i) CHECK(snap.services[i].ports[0].node_port == 0);
  CHECK(snap.source == before.source);
  CHECK_THROWS_WITH_AS(validate_and_allocate(snap), doctest::Contains("<config>: 1 problem"), config_error);
}

TEST_CASE("validating a loaded snapshot again changes nothing") {
  auto snap = load(doc({R"({"name": "a", "ports": [{"name": "x", "port": 80}, {"name": "y", "port": 81, "nodePort": 30081}]})"}));
  const auto first = snap.services[0].ports[0].node_port;
  REQUIRE_NOTHROW(validate_and_allocate(snap));
  CHECK(snap.services[0].ports[0].node_port == first);
  CHECK(snap.services[0].ports[0].node_port_allocated);
  CHECK(snap.services[0].ports[1].node_port == 30081);
  CHECK_FALSE(snap.services[0].ports[1].node_port_allocated);
}

TEST_CASE("allocation is deterministic and prefers the upper (dynamic) band") {
  // Default range 30000-32767: offset min(max(16, 2768/32), 128) = 86, so the dynamic band is
  // 30086-32767 ("Static band: 30000-30085" in the Kubernetes docs).
  std::string services;
  std::vector<std::string> bodies;
  for (int i = 0; i < 40; ++i)
    bodies.push_back(R"({"name": "svc-)" + std::to_string(i) + R"(", "ports": [{"name": "http", "port": 80}]})");
  std::string text = R"({"services": [)";
  for (std::size_t i = 0; i < bodies.size(); ++i) text += (i ? ", " : "") + bodies[i];
  text += "]}";

  auto a = load(text);
  auto b = load(text);
  std::set<int> seen;
  for (std::size_t i = 0; i < a.services.size(); ++i) {
    const auto& port = a.services[i].ports[0];
    CHECK(port.node_port_allocated);
    CHECK(port.node_port >= 30086);
    CHECK(port.node_port <= 32767);
    CHECK(port.node_port == b.services[i].ports[0].node_port);
    CHECK(seen.insert(port.node_port).second);  // all distinct
  }
}

TEST_CASE("allocation falls back to the lower (static) band when the upper one is full") {
  // 30000-30019: 20 ports, offset 16 -> static 30000-30015, dynamic 30016-30019.
  auto snap = load(doc({R"({"name": "taken", "ports": [{"name": "a", "port": 1, "nodePort": 30016},
                                                      {"name": "b", "port": 2, "nodePort": 30017},
                                                      {"name": "c", "port": 3, "nodePort": 30018},
                                                      {"name": "d", "port": 4, "nodePort": 30019}]})",
                        R"({"name": "new", "ports": [{"port": 80}]})"},
                       "30000-30019"));
  const int n = snap.services[1].ports[0].node_port;
  CHECK(n >= 30000);
  CHECK(n <= 30015);

  auto roomy = load(doc({R"({"name": "new", "ports": [{"port": 80}]})"}, "30000-30019"));
  CHECK(roomy.services[0].ports[0].node_port >= 30016);
}

TEST_CASE("allocation never takes an explicitly given nodePort, even one listed later") {
  // Two-port range: whichever number "first" hashes to, it must leave 30000 to "second".
  for (const char* name : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
    auto snap = load(doc({R"({"name": ")" + std::string(name) + R"(", "ports": [{"port": 80}]})",
                          R"({"name": "second", "ports": [{"port": 80, "nodePort": 30000}]})"},
                         "30000-30001"));
    CHECK(snap.services[0].ports[0].node_port == 30001);
    CHECK(snap.services[1].ports[0].node_port == 30000);
  }
}

TEST_CASE("a full range is an internal error naming the port that could not be placed") {
  auto problems = load_problems(doc({R"({"name": "a", "ports": [{"port": 80}]})", R"({"name": "b", "ports": [{"port": 80}]})",
                                     R"({"name": "c", "ports": [{"port": 80}]})"},
                                    "30000-30001"));
  CHECK(problems == strings{"services[2].ports[0].nodePort: Internal error: failed to allocate a nodePort: range is full"});
  CHECK_NOTHROW(load(doc({R"({"name": "a", "ports": [{"port": 80}]})", R"({"name": "b", "ports": [{"port": 80}]})"},
                         "30000-30001")));
}

TEST_CASE("TCP and UDP ports of one service with the same port get the same allocated number") {
  auto snap = load(doc({R"({"name": "dns", "ports": [{"name": "dns-tcp", "port": 53},
                                                    {"name": "dns-udp", "port": 53, "protocol": "UDP"},
                                                    {"name": "other", "port": 54, "protocol": "UDP"}]})"}));
  const auto& ports = snap.services[0].ports;
  CHECK(ports[0].node_port == ports[1].node_port);
  CHECK(ports[2].node_port != ports[0].node_port);
  CHECK(ports[1].node_port_allocated);

  // An explicit twin is reused too.
  auto pinned = load(doc({R"({"name": "dns", "ports": [{"name": "dns-tcp", "port": 53},
                                                      {"name": "dns-udp", "port": 53, "protocol": "UDP", "nodePort": 30053}]})"}));
  CHECK(pinned.services[0].ports[0].node_port == 30053);
  CHECK(pinned.services[0].ports[0].node_port_allocated);
}

TEST_CASE("allocation is skipped when the input has other problems") {
  auto problems = load_problems(doc({R"({"name": "a", "ports": [{"port": 80}]})", R"({"name": "b", "ports": [{"port": 80}]})",
                                     R"({"name": "c", "ports": [{"port": 0}]})"},
                                    "30000-30000"));
  CHECK(problems == strings{"services[2].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"});
}

TEST_CASE("a loopback endpoint on the proxy's own nodePort is a self-loop") {
  CHECK(load_problems(doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 30080, "endpoints": ["127.0.0.1:30080"]}]})"})) ==
        strings{"services[0].ports[0].endpoints: Invalid value: \"127.0.0.1:30080\": points back at this proxy's own "
                "nodePort 30080/TCP; connections would loop"});
  // Another service's nodePort on loopback loops just the same.
  CHECK(has_problem(load_problems(doc({R"({"name": "a", "ports": [{"port": 80, "nodePort": 30080}]})",
                                       R"({"name": "b", "ports": [{"port": 80, "nodePort": 30081, "endpoints": ["[::1]:30080"]}]})"})),
                    "services[1].ports[0].endpoints: Invalid value: \"[::1]:30080\": points back"));
  // Different protocol, or a non-loopback address: no loop.
  CHECK_NOTHROW(load(doc({R"({"name": "a", "ports": [{"port": 80, "protocol": "UDP", "nodePort": 30080}]})",
                          R"({"name": "b", "ports": [{"port": 80, "nodePort": 30081, "endpoints": ["127.0.0.1:30080", "10.0.0.1:30081"]}]})"})));
  // --forward 30080=127.0.0.1:30080
  snapshot snap;
  snap.services.push_back(forward_service(30080));
  endpoint ep;
  ep.address = *host_port::parse("127.0.0.1:30080");
  snap.services.edit(0).ports[0].endpoints.push_back(ep);
  CHECK(has_problem(problems_of([&] { validate_and_allocate(snap); }), "--forward tcp:30080: Invalid value: \"127.0.0.1:30080\""));
}

TEST_CASE("allocation steers clear of ports that loopback backends use") {
  for (const char* name : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
    auto snap = load(doc({R"({"name": ")" + std::string(name) + R"(", "ports": [{"port": 80, "endpoints": ["127.0.0.1:30000"]}]})"},
                         "30000-30001"));
    CHECK(snap.services[0].ports[0].node_port == 30001);
  }
}

TEST_CASE("code-built snapshots get the 1-65535 check too") {
  snapshot snap;
  snap.services.push_back(forward_service(70000));
  CHECK(problems_of([&] { validate_and_allocate(snap); }) ==
        strings{"--forward tcp:70000: Invalid value: 70000: must be between 1 and 65535, inclusive"});
}
