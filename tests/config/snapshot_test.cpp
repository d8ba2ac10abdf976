#include <doctest/doctest.h>

#include "config/problem.hpp"
#include "config/snapshot.hpp"

using namespace npp::config;

TEST_CASE("protocols print as Kubernetes spells them") {
  CHECK(to_string(protocol::tcp) == "TCP");
  CHECK(to_string(protocol::udp) == "UDP");
}

TEST_CASE("a port range parses N1-N2 inclusive and reports why it cannot") {
  port_range r;
  REQUIRE(port_range::parse("30000-32767", r));
  CHECK(r == port_range{30000, 32767});
  CHECK(r.size() == 2768);
  CHECK(r.str() == "30000-32767");
  REQUIRE(port_range::parse("1-65535", r));
  CHECK(r.size() == 65535);
  REQUIRE(port_range::parse("8080-8080", r));
  CHECK(r.size() == 1);

  std::string error;
  for (const char* bad : {"", "30000", "-30000", "30000-", "a-b", "30000 - 32767", "+1-5", "1-+5", "1--5", "30000-32767x",
                          "300000-300001"}) {
    CHECK_MESSAGE(!port_range::parse(bad, r, &error), bad);
    CHECK(error.find("N1-N2") != std::string::npos);
  }
  CHECK_FALSE(port_range::parse("0-100", r, &error));
  CHECK(error == "ports must be between 1 and 65535, inclusive");
  CHECK_FALSE(port_range::parse("1-65536", r, &error));
  CHECK(error == "ports must be between 1 and 65535, inclusive");
  CHECK_FALSE(port_range::parse("32767-30000", r, &error));
  CHECK(error == "the first port must not be greater than the last port");
  CHECK(r == port_range{8080, 8080});  // untouched on failure
}

namespace {
endpoint ep(const char* address, bool ready = true, bool serving = true, bool terminating = false,
            const char* node = "") {
  endpoint e;
  e.address = *host_port::parse(address);
  e.ready = ready;
  e.serving = serving;
  e.terminating = terminating;
  e.node_name = node;
  return e;
}
std::vector<std::string> strs(const std::vector<host_port>& v) {
  std::vector<std::string> out;
  for (const auto& h : v) out.push_back(h.str());
  return out;
}
}  // namespace

TEST_CASE("usable endpoints are the ready ones, in order") {
  service svc;
  service_port port;
  port.endpoints = {ep("10.0.0.1:80"), ep("10.0.0.2:80", false), ep("10.0.0.3:80", false, true, true),
                    ep("10.0.0.4:80")};
  CHECK(strs(usable_endpoints(svc, port, "node-a")) == std::vector<std::string>{"10.0.0.1:80", "10.0.0.4:80"});
}

TEST_CASE("with no ready endpoint, serving terminating ones take over") {
  service svc;
  service_port port;
  port.endpoints = {ep("10.0.0.1:80", false, false, true), ep("10.0.0.2:80", false, true, true),
                    ep("10.0.0.3:80", false, true, false)};
  CHECK(strs(usable_endpoints(svc, port, "")) == std::vector<std::string>{"10.0.0.2:80"});
  port.endpoints = {ep("10.0.0.1:80", false, false, true)};
  CHECK(usable_endpoints(svc, port, "").empty());
  port.endpoints.clear();
  CHECK(usable_endpoints(svc, port, "").empty());
}

TEST_CASE("Local traffic policy keeps only this node's endpoints before choosing") {
  service svc;
  svc.external_traffic_policy = traffic_policy::local;
  service_port port;
  port.endpoints = {ep("10.0.0.1:80", true, true, false, "node-b"), ep("10.0.0.2:80", false, true, true, "node-a"),
                    ep("10.0.0.3:80", true, true, false, "")};
  // node-b's ready endpoint does not count on node-a: node-a falls back to its terminating one.
  CHECK(strs(usable_endpoints(svc, port, "node-a")) == std::vector<std::string>{"10.0.0.2:80"});
  CHECK(strs(usable_endpoints(svc, port, "node-b")) == std::vector<std::string>{"10.0.0.1:80"});
  CHECK(usable_endpoints(svc, port, "node-c").empty());

  svc.external_traffic_policy = traffic_policy::cluster;
  CHECK(strs(usable_endpoints(svc, port, "node-c")) == std::vector<std::string>{"10.0.0.1:80", "10.0.0.3:80"});
}

TEST_CASE("a config_error lists its source and every problem, one per line") {
  config_error one("a.json", {{"services[0].name", "Required value"}});
  CHECK(std::string(one.what()) == "a.json: 1 problem:\n  services[0].name: Required value");
  config_error two("b.json", {{"", "invalid JSON"}, {"x", "y"}});
  CHECK(std::string(two.what()) == "b.json: 2 problems:\n  invalid JSON\n  x: y");
  CHECK(two.source() == "b.json");
  CHECK(two.problems().size() == 2);
}

TEST_CASE("quote escapes quotes, control characters and non-ASCII bytes") {
  CHECK(quote("web") == "\"web\"");
  CHECK(quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote(std::string("a\0b", 3)) == "\"a\\x00b\"");
  CHECK(quote("\xff\n") == "\"\\xff\\x0a\"");
}
