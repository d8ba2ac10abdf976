// load_native_json(): fields, defaults, types and names, in Kubernetes' field-error words.
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::has_problem;
using npp::config::test::load;
using npp::config::test::load_problems;
using npp::config::test::with_port;
using strings = std::vector<std::string>;

TEST_CASE("the documented example loads with every default applied") {
  auto snap = load(R"({
    "$schema": "../config/nodeport-proxy.schema.json",
    "nodePortRange": "30000-32767",
    "services": [
      {"name": "web",
       "ports": [
         {"name": "http", "port": 80, "nodePort": 30080,
          "endpoints": ["127.0.0.1:8081", "[::1]:8083",
                        {"address": "10.0.0.5:8080", "ready": false, "serving": true, "terminating": true,
                         "nodeName": "node-1"}]}]}]})");
  CHECK(snap.source == "test.json");
  CHECK(snap.range == port_range{30000, 32767});
  REQUIRE(snap.services.size() == 1);
  const auto& svc = snap.services[0];
  CHECK(svc.ns == "default");
  CHECK(svc.name == "web");
  CHECK(svc.id() == "default/web");
  CHECK(svc.affinity == session_affinity::none);
  CHECK(svc.external_traffic_policy == traffic_policy::cluster);
  CHECK_FALSE(svc.ad_hoc);
  REQUIRE(svc.ports.size() == 1);
  const auto& port = svc.ports[0];
  CHECK(port.name == "http");
  CHECK(port.proto == protocol::tcp);
  CHECK(port.port == 80);
  CHECK(port.node_port == 30080);
  CHECK_FALSE(port.node_port_allocated);
  REQUIRE(port.endpoints.size() == 3);
  CHECK(port.endpoints[0].address.str() == "127.0.0.1:8081");
  CHECK(port.endpoints[0].ready);
  CHECK(port.endpoints[0].serving);
  CHECK_FALSE(port.endpoints[0].terminating);
  CHECK(port.endpoints[1].address.str() == "[::1]:8083");
  CHECK(port.endpoints[2].address.str() == "10.0.0.5:8080");
  CHECK_FALSE(port.endpoints[2].ready);
  CHECK(port.endpoints[2].terminating);
  CHECK(port.endpoints[2].node_name == "node-1");
}

TEST_CASE("every service field is read: namespace, affinity, timeout, traffic policy, UDP") {
  auto snap = load(R"({"services": [{"namespace": "kube-system", "name": "dns", "sessionAffinity": "ClientIP",
    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "externalTrafficPolicy": "Local",
    "ports": [{"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053, "endpoints": []}]}]})");
  const auto& svc = snap.services.at(0);
  CHECK(svc.id() == "kube-system/dns");
  CHECK(svc.affinity == session_affinity::client_ip);
  CHECK(svc.affinity_timeout_seconds == 60);
  CHECK(svc.external_traffic_policy == traffic_policy::local);
  CHECK(svc.ports.at(0).proto == protocol::udp);
  CHECK(svc.ports.at(0).endpoints.empty());
}

TEST_CASE("ClientIP affinity without a config keeps the 10800 second default") {
  auto snap = load(R"({"services": [{"name": "a", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}]})");
  CHECK(snap.services.at(0).affinity_timeout_seconds == 10800);
}

TEST_CASE("an empty services list is a valid, empty snapshot") {
  CHECK(load(R"({"services": []})").services.empty());
}

TEST_CASE("required fields are reported as Required value") {
  CHECK(load_problems("{}") == strings{"services: Required value"});
  CHECK(load_problems(R"({"services": [{"ports": [{"port": 80}]}]})") == strings{"services[0].name: Required value"});
  CHECK(load_problems(R"({"services": [{"name": ""}]})") ==
        strings{"services[0].name: Required value", "services[0].ports: Required value"});
  CHECK(load_problems(R"({"services": [{"name": "a", "ports": []}]})") == strings{"services[0].ports: Required value"});
  CHECK(load_problems(with_port(R"({"nodePort": 30080})")) == strings{"services[0].ports[0].port: Required value"});
  CHECK(load_problems(with_port(R"({"port": 80, "endpoints": [{"ready": true}]})")) ==
        strings{"services[0].ports[0].endpoints[0].address: Required value"});
}

TEST_CASE("port numbers must be integers from 1 to 65535") {
  const std::string p = "services[0].ports[0].port: ";
  CHECK(load_problems(with_port(R"({"port": 0})")) == strings{p + "Invalid value: 0: must be between 1 and 65535, inclusive"});
  CHECK(load_problems(with_port(R"({"port": 65536})")) ==
        strings{p + "Invalid value: 65536: must be between 1 and 65535, inclusive"});
  CHECK(load_problems(with_port(R"({"port": -1})")) ==
        strings{p + "Invalid value: -1: must be between 1 and 65535, inclusive"});
  CHECK(load_problems(with_port(R"({"port": "80"})")) == strings{p + "Invalid value: \"80\": must be an integer"});
  CHECK(load_problems(with_port(R"({"port": 1.5})")) == strings{p + "Invalid value: 1.5: must be an integer"});
  CHECK(load_problems(with_port(R"({"port": 80.0})")) == strings{p + "Invalid value: 80.0: must be an integer"});
  CHECK(load_problems(with_port(R"({"port": null})")) == strings{p + "Invalid value: null: must be an integer"});
  CHECK(load_problems(with_port(R"({"port": true})")) == strings{p + "Invalid value: true: must be an integer"});
  CHECK(load_problems(with_port(R"({"port": [80]})")) == strings{p + "Invalid value: [...]: must be an integer"});
  CHECK(load_problems(with_port(R"({"port": -9223372036854775808})")) ==
        strings{p + "Invalid value: -9223372036854775808: must be between 1 and 65535, inclusive"});
  CHECK(load_problems(with_port(R"({"port": 18446744073709551615})")) ==
        strings{p + "Invalid value: 18446744073709551615: must be between 1 and 65535, inclusive"});
  CHECK(load_problems(with_port(R"({"port": 99999999999999999999})")) ==
        strings{p + "Invalid value: 1e+20: must be an integer"});
  CHECK(load(with_port(R"({"port": 65535})")).services[0].ports[0].port == 65535);
  CHECK(load(with_port(R"({"port": 1})")).services[0].ports[0].port == 1);
}

TEST_CASE("nodePort must be omitted to be allocated: 0 and null are refused with a hint") {
  const std::string p = "services[0].ports[0].nodePort: ";
  const std::string hint = " (omit nodePort to have one allocated)";
  CHECK(load_problems(with_port(R"({"port": 80, "nodePort": 0})")) ==
        strings{p + "Invalid value: 0: must be between 1 and 65535, inclusive" + hint});
  CHECK(load_problems(with_port(R"({"port": 80, "nodePort": null})")) ==
        strings{p + "Invalid value: null: must be an integer" + hint});
  CHECK(load_problems(with_port(R"({"port": 80, "nodePort": 65536})")) ==
        strings{p + "Invalid value: 65536: must be between 1 and 65535, inclusive" + hint});
  CHECK(load_problems(with_port(R"({"port": 80, "nodePort": "30080"})")) ==
        strings{p + "Invalid value: \"30080\": must be an integer" + hint});
  CHECK(load_problems(with_port(R"({"port": 80, "nodePort": false})")) ==
        strings{p + "Invalid value: false: must be an integer" + hint});
}

TEST_CASE("protocol is exactly TCP or UDP and SCTP is unsupported") {
  CHECK(load_problems(with_port(R"({"port": 80, "protocol": "SCTP"})")) ==
        strings{"services[0].ports[0].protocol: Unsupported value: \"SCTP\": supported values: \"TCP\", \"UDP\""});
  CHECK(load_problems(with_port(R"({"port": 80, "protocol": "tcp"})")) ==
        strings{"services[0].ports[0].protocol: Unsupported value: \"tcp\": supported values: \"TCP\", \"UDP\""});
  CHECK(load_problems(with_port(R"({"port": 80, "protocol": 6})")) ==
        strings{"services[0].ports[0].protocol: Invalid value: 6: must be a string"});
  CHECK(load(with_port(R"({"port": 80, "protocol": "UDP"})")).services[0].ports[0].proto == protocol::udp);
  CHECK(load(with_port(R"({"port": 80, "protocol": "TCP"})")).services[0].ports[0].proto == protocol::tcp);
}

TEST_CASE("namespaces are RFC 1123 labels and service names DNS-1035 labels") {
  const std::string rfc1123 = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                              "and must start and end with an alphanumeric character";
  const std::string dns1035 = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                              "with an alphabetic character, and end with an alphanumeric character";
  auto service = [](std::string_view fields) {
    return R"({"services": [{)" + std::string(fields) + R"(, "ports": [{"port": 80}]}]})";
  };
  for (const char* bad : {"Web", "web_1", "-web", "web-", "w.eb", "wéb"}) {
    auto problems = load_problems(service(R"("name": ")" + std::string(bad) + "\""));
    REQUIRE_MESSAGE(problems.size() == 1, bad);
    CHECK(problems[0].rfind("services[0].name: Invalid value: ", 0) == 0);
    CHECK(has_problem(problems, dns1035));
  }
  CHECK(has_problem(load_problems(service(R"("name": "1web")")), dns1035));  // 1123 would allow it
  CHECK(has_problem(load_problems(service(R"("name": ")" + std::string(64, 'a') + "\"")),
                    "services[0].name: Invalid value: \"" + std::string(64, 'a') + "\": must be no more than 63 characters"));
  CHECK(load(service(R"("name": ")" + std::string(63, 'a') + "\"")).services[0].name.size() == 63);

  CHECK(load_problems(service(R"("name": "a", "namespace": "Prod")")) ==
        strings{"services[0].namespace: Invalid value: \"Prod\": " + rfc1123 + " (e.g. 'my-name', or '123-abc')"});
  CHECK(load_problems(service(R"("name": "a", "namespace": "")")) == strings{"services[0].namespace: Required value"});
  CHECK(load(service(R"("name": "a", "namespace": "123-abc")")).services[0].ns == "123-abc");
  CHECK(load_problems(service(R"("name": 5)")) == strings{"services[0].name: Invalid value: 5: must be a string"});
}

TEST_CASE("port names are labels, required and unique when a service has several ports") {
  CHECK(load(with_port(R"({"port": 80})")).services[0].ports[0].name.empty());
  CHECK(load(with_port(R"({"port": 80, "name": ""})")).services[0].ports[0].name.empty());
  CHECK(has_problem(load_problems(with_port(R"({"port": 80, "name": "HTTP"})")),
                    "services[0].ports[0].name: Invalid value: \"HTTP\": a lowercase RFC 1123 label"));
  CHECK(load_problems(with_port(R"({"port": 80}, {"port": 443, "name": "https"})")) ==
        strings{"services[0].ports[0].name: Required value"});
  CHECK(load_problems(with_port(R"({"port": 80, "name": "web"}, {"port": 443, "name": "web"})")) ==
        strings{"services[0].ports[1].name: Duplicate value: \"web\""});
}

TEST_CASE("protocol and port must be unique within a service") {
  CHECK(load_problems(with_port(R"({"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "TCP"})")) ==
        strings{"services[0].ports[1]: Duplicate value: 80/TCP (protocol and port must be unique within a service)"});
  CHECK(load(with_port(R"({"name": "a", "port": 53}, {"name": "b", "port": 53, "protocol": "UDP"})"))
            .services[0]
            .ports.size() == 2);
}

TEST_CASE("session affinity and traffic policy accept only the Kubernetes values") {
  auto service = [](std::string_view fields) {
    return R"({"services": [{"name": "a", )" + std::string(fields) + R"(, "ports": [{"port": 80}]}]})";
  };
  CHECK(load_problems(service(R"("sessionAffinity": "clientip")")) ==
        strings{"services[0].sessionAffinity: Unsupported value: \"clientip\": supported values: \"ClientIP\", \"None\""});
  CHECK(load_problems(service(R"("externalTrafficPolicy": "Node")")) ==
        strings{"services[0].externalTrafficPolicy: Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\""});
  CHECK(load_problems(service(R"("sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}})")) ==
        strings{"services[0].sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 "
                "and less than 86400"});
  CHECK(has_problem(load_problems(service(R"("sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}})")),
                    "Invalid value: 86401"));
  CHECK(load(service(R"("sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}})"))
            .services[0]
            .affinity_timeout_seconds == 86400);
  CHECK(load_problems(service(R"("sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}})")) ==
        strings{"services[0].sessionAffinityConfig: Forbidden: must not be set when session affinity is None"});
  CHECK(load_problems(service(R"("sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIp": {}})")) ==
        strings{"services[0].sessionAffinityConfig: unknown field \"clientIp\" (did you mean \"clientIP\"?)"});
}

TEST_CASE("unknown fields are rejected where they appear, and $schema is allowed only at the top") {
  CHECK(load_problems(R"({"$schema": "x", "services": [], "extra": 1})") == strings{"unknown field \"extra\""});
  CHECK(load_problems(R"({"services": [{"name": "a", "type": "NodePort", "ports": [{"port": 80}]}]})") ==
        strings{"services[0]: unknown field \"type\""});
  CHECK(load_problems(with_port(R"({"port": 80, "nodeport": 30080})")) ==
        strings{"services[0].ports[0]: unknown field \"nodeport\" (did you mean \"nodePort\"?)"});
  CHECK(load_problems(with_port(R"({"port": 80, "targetPort": 8080})")) ==
        strings{"services[0].ports[0]: unknown field \"targetPort\""});
  CHECK(load_problems(with_port(R"({"port": 80, "endpoints": [{"address": "10.0.0.1:80", "zone": "a"}]})")) ==
        strings{"services[0].ports[0].endpoints[0]: unknown field \"zone\""});
  CHECK(load_problems(R"({"services": [{"$schema": "x", "name": "a", "ports": [{"port": 80}]}]})") ==
        strings{"services[0]: unknown field \"$schema\""});
}

TEST_CASE("wrong container types say what was expected") {
  CHECK(load_problems(R"([])") == strings{"Invalid value: [...]: must be an object"});
  CHECK(load_problems(R"("services")") == strings{"Invalid value: \"services\": must be an object"});
  CHECK(load_problems(R"({"services": {}})") == strings{"services: Invalid value: {...}: must be an array"});
  CHECK(load_problems(R"({"services": [7]})") == strings{"services[0]: Invalid value: 7: must be an object"});
  CHECK(load_problems(R"({"services": [{"name": "a", "ports": {"port": 80}}]})") ==
        strings{"services[0].ports: Invalid value: {...}: must be an array"});
  CHECK(load_problems(with_port(R"("80")")) == strings{"services[0].ports[0]: Invalid value: \"80\": must be an object"});
  CHECK(load_problems(with_port(R"({"port": 80, "endpoints": "10.0.0.1:80"})")) ==
        strings{"services[0].ports[0].endpoints: Invalid value: \"10.0.0.1:80\": must be an array"});
  CHECK(load_problems(with_port(R"({"port": 80, "endpoints": [8080]})")) ==
        strings{"services[0].ports[0].endpoints[0]: Invalid value: 8080: must be \"IP:port\" or an object with \"address\""});
}

TEST_CASE("a long string value is cut short in messages") {
  auto problems = load_problems(with_port(R"({"port": 80, "protocol": ")" + std::string(1000, 'x') + "\"}"));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].size() < 200);
  CHECK(has_problem(problems, "\"" + std::string(64, 'x') + "\"..."));
}

TEST_CASE("endpoint addresses get a specific reason when they are wrong") {
  auto problem_for = [](std::string_view address) {
    auto problems = load_problems(with_port(R"({"port": 80, "endpoints": [")" + std::string(address) + "\"]}"));
    REQUIRE(problems.size() == 1);
    return problems[0];
  };
  const std::string p = "services[0].ports[0].endpoints[0]: Invalid value: ";
  CHECK(problem_for("10.0.0.1") == p + "\"10.0.0.1\": missing port: must be IP:port, e.g. \"10.0.0.5:8080\" or \"[fd00::5]:8080\"");
  CHECK(problem_for("") == p + "\"\": must be IP:port, e.g. \"10.0.0.5:8080\" or \"[fd00::5]:8080\"");
  CHECK(problem_for("::1:80") == p + "\"::1:80\": an IPv6 address must be in brackets, e.g. \"[fd00::5]:8080\"");
  CHECK(problem_for("[::1]") == p + "\"[::1]\": missing port: must be IP:port, e.g. \"10.0.0.5:8080\" or \"[fd00::5]:8080\"");
  CHECK(problem_for("[::1:80") == p + "\"[::1:80\": missing ']' after the IPv6 address");
  CHECK(problem_for("[::1]80") == p + "\"[::1]80\": expected ':' and a port after ']'");
  CHECK(problem_for("[10.0.0.1]:80") == p + "\"[10.0.0.1]:80\": not a valid IPv6 address");
  CHECK(problem_for("300.1.1.1:80") == p + "\"300.1.1.1:80\": not a valid IPv4 address");
  CHECK(problem_for("backend.local:80") == p + "\"backend.local:80\": host names are not supported, use an IP address");
  CHECK(problem_for("10.0.0.1:") == p + "\"10.0.0.1:\": missing port: must be IP:port, e.g. \"10.0.0.5:8080\" or \"[fd00::5]:8080\"");
  CHECK(problem_for("10.0.0.1:http") == p + "\"10.0.0.1:http\": the port must be a number between 1 and 65535");
  CHECK(problem_for("10.0.0.1:-1") == p + "\"10.0.0.1:-1\": the port must be a number between 1 and 65535");
  CHECK(problem_for("10.0.0.1:0") == p + "\"10.0.0.1:0\": the port must be between 1 and 65535, inclusive");
  CHECK(problem_for("10.0.0.1:65536") == p + "\"10.0.0.1:65536\": the port must be between 1 and 65535, inclusive");
}

TEST_CASE("endpoints that a proxy must never dial are rejected (unspecified, multicast, broadcast)") {
  auto problems = load_problems(with_port(
      R"({"port": 80, "endpoints": ["0.0.0.0:80", "[::]:80", "224.0.0.1:80", "[ff02::1]:80", "255.255.255.255:80",
                                    "[::ffff:0.0.0.0]:80", {"address": "239.1.1.1:80"}]})"));
  const std::string p = "services[0].ports[0].endpoints";
  CHECK(problems == strings{
                        p + "[0]: Invalid value: \"0.0.0.0:80\": may not be unspecified (0.0.0.0)",
                        p + "[1]: Invalid value: \"[::]:80\": may not be unspecified (::)",
                        p + "[2]: Invalid value: \"224.0.0.1:80\": may not be in the multicast range (224.0.0.0/4)",
                        p + "[3]: Invalid value: \"[ff02::1]:80\": may not be in the multicast range (ff00::/8)",
                        p + "[4]: Invalid value: \"255.255.255.255:80\": may not be the broadcast address (255.255.255.255)",
                        p + "[5]: Invalid value: \"[::ffff:0.0.0.0]:80\": may not be unspecified (0.0.0.0)",
                        p + "[6].address: Invalid value: \"239.1.1.1:80\": may not be in the multicast range (224.0.0.0/4)",
                    });
}

TEST_CASE("duplicate endpoints are merged, first occurrence wins and v4-mapped addresses count as IPv4") {
  auto snap = load(with_port(R"({"port": 80, "endpoints": [
      {"address": "10.0.0.1:80", "ready": false, "serving": true, "terminating": true},
      "10.0.0.2:80", "10.0.0.1:80", "[::ffff:10.0.0.2]:80", "10.0.0.1:81"]})"));
  const auto& eps = snap.services[0].ports[0].endpoints;
  REQUIRE(eps.size() == 3);
  CHECK(eps[0].address.str() == "10.0.0.1:80");
  CHECK_FALSE(eps[0].ready);  // the first entry's conditions are kept
  CHECK(eps[1].address.str() == "10.0.0.2:80");
  CHECK(eps[2].address.str() == "10.0.0.1:81");
}

TEST_CASE("endpoint conditions are booleans and null means unset, as in an EndpointSlice") {
  auto snap = load(with_port(
      R"({"port": 80, "endpoints": [{"address": "10.0.0.1:80", "ready": null, "serving": null, "terminating": null}]})"));
  const auto& ep = snap.services[0].ports[0].endpoints.at(0);
  CHECK(ep.ready);
  CHECK(ep.serving);
  CHECK_FALSE(ep.terminating);
  CHECK(load_problems(with_port(R"({"port": 80, "endpoints": [{"address": "10.0.0.1:80", "ready": "true", "nodeName": 1}]})")) ==
        strings{"services[0].ports[0].endpoints[0].ready: Invalid value: \"true\": must be a boolean (true or false)",
                "services[0].ports[0].endpoints[0].nodeName: Invalid value: 1: must be a string"});
  CHECK(load_problems(with_port(R"({"port": 80, "endpoints": [{"address": 5}]})")) ==
        strings{"services[0].ports[0].endpoints[0].address: Invalid value: 5: must be a string"});
}

TEST_CASE("every problem in a file is reported at once") {
  auto problems = load_problems(R"({"services": [
      {"name": "Web", "ports": [{"port": 80, "nodePort": 30080}]},
      {"name": "api", "ports": [{"port": "8080"}]},
      {"name": "db", "ports": [{"port": 5432, "endpoints": ["10.0.0.1"]}]}]})");
  CHECK(problems.size() == 3);
  CHECK(has_problem(problems, "services[0].name: Invalid value: \"Web\""));
  CHECK(has_problem(problems, "services[1].ports[0].port: Invalid value: \"8080\": must be an integer"));
  CHECK(has_problem(problems, "services[2].ports[0].endpoints[0]: Invalid value: \"10.0.0.1\": missing port"));
}

TEST_CASE("field problems and nodePort collisions are reported together") {
  auto problems = load_problems(R"({"services": [
      {"name": "a", "ports": [{"port": 80, "nodePort": 30080}]},
      {"name": "b", "ports": [{"port": 80, "nodePort": 30080, "protocol": "SCTP"}]},
      {"name": "c", "ports": [{"port": 80, "nodePort": 30080}]}]})");
  CHECK(problems == strings{
                        "services[1].ports[0].protocol: Unsupported value: \"SCTP\": supported values: \"TCP\", \"UDP\"",
                        "services[1].ports[0].nodePort: Invalid value: 30080: provided port is already allocated (by "
                        "default/a port 80/TCP)",
                        "services[2].ports[0].nodePort: Invalid value: 30080: provided port is already allocated (by "
                        "default/a port 80/TCP)",
                    });
}

TEST_CASE("the throw names the source and matches doctest's Contains") {
  CHECK_THROWS_WITH_AS(load(R"({"services": [{"name": "a", "ports": [{"port": 0}]}]})"),
                       doctest::Contains("test.json: 1 problem:\n  services[0].ports[0].port: Invalid value: 0"),
                       config_error);
}

TEST_CASE("nodePortRange comes from the file unless --service-node-port-range overrides it") {
  CHECK(load(R"({"services": []})").range == port_range{30000, 32767});
  CHECK(load(R"({"nodePortRange": "20000-20100", "services": []})").range == port_range{20000, 20100});
  load_options opts;
  opts.range_override = port_range{40000, 40100};
  CHECK(load(R"({"nodePortRange": "20000-20100", "services": []})", opts).range == port_range{40000, 40100});
  CHECK(load_problems(R"({"nodePortRange": "32767-30000", "services": []})") ==
        strings{"nodePortRange: Invalid value: \"32767-30000\": the first port must not be greater than the last port"});
  CHECK(load_problems(R"({"nodePortRange": 30000, "services": []})") ==
        strings{"nodePortRange: Invalid value: 30000: must be a string"});
  CHECK_THROWS_WITH_AS(load(R"({"nodePortRange": "30000", "services": []})", opts),
                       doctest::Contains("must be of the form N1-N2"), config_error);
}
