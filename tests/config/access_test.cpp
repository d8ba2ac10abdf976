// Access and limits of a Service: allowSourceRanges, proxyProtocol, maxConnections and
// maxConnectionsPerSource in the native format, the nodeport-proxy.io/ annotations on a
// Kubernetes Service, and the checks across ports (TCP only).
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::any_problems;
using npp::config::test::has_problem;
using npp::config::test::load;
using npp::config::test::load_any;
using npp::config::test::load_problems;
using strings = std::vector<std::string>;

namespace {

// A native one-service document with `fields` (JSON members, with a trailing comma) added.
std::string native(std::string_view fields, std::string_view ports = R"([{"name": "https", "port": 443, "nodePort": 30443}])") {
  return R"({"services": [{"name": "admin", )" + std::string(fields) + R"( "ports": )" + std::string(ports) + "}]}";
}

// A NodePort Service manifest with the given annotation lines (YAML, 4-space indented).
std::string manifest(std::string_view annotations, std::string_view ports = "  - {name: https, port: 443, nodePort: 30443}\n") {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: admin\n  namespace: ops\n  annotations:\n" +
         std::string(annotations) + "spec:\n  type: NodePort\n  ports:\n" + std::string(ports);
}

strings blocks(const service& svc) {
  strings out;
  for (const auto& b : svc.allow_source_ranges) out.push_back(b.str());
  return out;
}

}  // namespace

TEST_CASE("the issue's example keys load: allowlist, PROXY v2 and both limits") {
  auto snap = load(native(R"("allowSourceRanges": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"], "proxyProtocol": "v2",
                              "maxConnections": 1000, "maxConnectionsPerSource": 20,)"));
  const auto& svc = snap.services.at(0);
  CHECK(blocks(svc) == strings{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"});
  CHECK(svc.proxy_protocol == proxy_protocol_version::v2);
  CHECK(svc.max_connections == 1000);
  CHECK(svc.max_connections_per_source == 20);
}

TEST_CASE("absent keys and an empty allowlist mean every source, no header and no limits") {
  for (const char* fields : {"", R"("allowSourceRanges": [],)"}) {
    auto snap = load(native(fields));
    const auto& svc = snap.services.at(0);
    CHECK(svc.allow_source_ranges.empty());
    CHECK(svc.proxy_protocol == proxy_protocol_version::off);
    CHECK(svc.max_connections == 0);
    CHECK(svc.max_connections_per_source == 0);
  }
  CHECK(load(native(R"("proxyProtocol": "v1",)")).services.at(0).proxy_protocol == proxy_protocol_version::v1);
  CHECK(blocks(load(native(R"("allowSourceRanges": ["::/0", "0.0.0.0/0"],)")).services.at(0)) ==
        strings{"::/0", "0.0.0.0/0"});
}

TEST_CASE("invalid CIDRs are refused with cidr::parse's reason and their JSON path") {
  auto problems = load_problems(native(
      R"("allowSourceRanges": ["300.1.1.1", "10.0.0.0/33", "10.0.0.1/8", "2001:db8::/129", "", "10.0.0.0/", 8, "::ffff:10.0.0.0/104"],)"));
  CHECK(problems == strings{
                        R"(services[0].allowSourceRanges[0]: Invalid value: "300.1.1.1": not an IP address)",
                        R"(services[0].allowSourceRanges[1]: Invalid value: "10.0.0.0/33": prefix length must be 0-32)",
                        R"(services[0].allowSourceRanges[2]: Invalid value: "10.0.0.1/8": host bits set below the prefix length (write the network address))",
                        R"(services[0].allowSourceRanges[3]: Invalid value: "2001:db8::/129": prefix length must be 0-128)",
                        R"(services[0].allowSourceRanges[4]: Invalid value: "": not an IP address)",
                        R"(services[0].allowSourceRanges[5]: Invalid value: "10.0.0.0/": invalid prefix length)",
                        R"(services[0].allowSourceRanges[6]: Invalid value: 8: must be a string such as "10.0.0.0/8")",
                        R"(services[0].allowSourceRanges[7]: Invalid value: "::ffff:10.0.0.0/104": an IPv4-mapped block never matches (IPv4 clients are matched as IPv4, also on dual-stack sockets): write 10.0.0.0/8)",
                    });
  CHECK(load_problems(native(R"("allowSourceRanges": "10.0.0.0/8",)")) ==
        strings{R"(services[0].allowSourceRanges: Invalid value: "10.0.0.0/8": must be an array of CIDR blocks such as "10.0.0.0/8")"});
}

TEST_CASE("proxyProtocol is v1 or v2 and limits are positive integers") {
  CHECK(load_problems(native(R"("proxyProtocol": "V2",)")) ==
        strings{R"(services[0].proxyProtocol: Unsupported value: "V2": supported values: "v1", "v2")"});
  CHECK(load_problems(native(R"("proxyProtocol": 2,)")) ==
        strings{R"(services[0].proxyProtocol: Invalid value: 2: must be a string)"});
  CHECK(load_problems(native(R"("maxConnections": 0, "maxConnectionsPerSource": "10",)")) ==
        strings{"services[0].maxConnections: Invalid value: 0: must be between 1 and 2147483647, inclusive (omit "
                "maxConnections for no limit)",
                R"(services[0].maxConnectionsPerSource: Invalid value: "10": must be an integer (omit maxConnectionsPerSource for no limit))"});
  CHECK(has_problem(load_problems(native(R"("maxConnections": 2147483648,)")), "must be between 1 and 2147483647"));
  CHECK(has_problem(load_problems(native(R"("maxconnections": 5,)")), R"(unknown field "maxconnections" (did you mean "maxConnections"?))"));
}

TEST_CASE("PROXY protocol is refused for a Service with a UDP port and limits need a TCP port") {
  const std::string dns_ports =
      R"([{"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053}, {"name": "dns-tcp", "port": 53, "nodePort": 30053}])";
  auto problems = load_problems(native(R"("proxyProtocol": "v1",)", dns_ports));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] ==
        R"(services[0].proxyProtocol: Forbidden: PROXY protocol is sent on TCP connections only and port "dns" is UDP; put the UDP ports in a Service of their own)");
  // Limits on a Service with a TCP port apply to it; without one they are refused.
  CHECK(load(native(R"("maxConnections": 5, "allowSourceRanges": ["10.0.0.0/8"],)", dns_ports)).services.at(0).max_connections == 5);
  const std::string udp_only = R"([{"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053}])";
  CHECK(load_problems(native(R"("maxConnections": 5, "maxConnectionsPerSource": 1,)", udp_only)) ==
        strings{"services[0].maxConnections: Forbidden: limits TCP connections and the Service has no TCP port (UDP "
                "sessions are capped by --udp-max-sessions)",
                "services[0].maxConnectionsPerSource: Forbidden: limits TCP connections and the Service has no TCP "
                "port (UDP sessions are capped by --udp-max-sessions)"});
  // An allowlist applies to UDP as well.
  CHECK(blocks(load(native(R"("allowSourceRanges": ["10.0.0.0/8"],)", udp_only)).services.at(0)) == strings{"10.0.0.0/8"});
}

TEST_CASE("the nodeport-proxy.io annotations set the same fields on a Kubernetes Service") {
  auto snap = load_any(manifest(
      "    nodeport-proxy.io/allow-source-ranges: \" 10.0.0.0/8, 2001:db8::/32 ,,\"\n"
      "    nodeport-proxy.io/proxy-protocol: v1\n"
      "    nodeport-proxy.io/max-connections: \"1000\"\n"
      "    nodeport-proxy.io/max-connections-per-source: \"7\"\n"
      "    kubectl.kubernetes.io/last-applied-configuration: '{}'\n"));
  const auto& svc = snap.services.at(0);
  CHECK(blocks(svc) == strings{"10.0.0.0/8", "2001:db8::/32"});
  CHECK(svc.proxy_protocol == proxy_protocol_version::v1);
  CHECK(svc.max_connections == 1000);
  CHECK(svc.max_connections_per_source == 7);
  // An empty value allows every source, as an empty list does.
  CHECK(load_any(manifest("    nodeport-proxy.io/allow-source-ranges: \"\"\n")).services.at(0).allow_source_ranges.empty());
}

TEST_CASE("invalid annotation values are problems naming the Service and the annotation") {
  auto problems = any_problems(manifest(
      "    nodeport-proxy.io/allow-source-ranges: \"10.0.0.1/8,300.1.1.1\"\n"
      "    nodeport-proxy.io/proxy-protocol: \"on\"\n"
      "    nodeport-proxy.io/max-connections: \"0\"\n"
      "    nodeport-proxy.io/max-connections-per-source: \"-1\"\n"
      "    nodeport-proxy.io/allow-source-range: 10.0.0.0/8\n"));
  CHECK(problems ==
        strings{
            R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/allow-source-range]: unknown annotation "nodeport-proxy.io/allow-source-range": supported annotations: "nodeport-proxy.io/allow-source-ranges", "nodeport-proxy.io/max-connections", "nodeport-proxy.io/max-connections-per-source", "nodeport-proxy.io/proxy-protocol", "nodeport-proxy.io/tls-cert-file", "nodeport-proxy.io/tls-client-ca-file", "nodeport-proxy.io/tls-crl-file", "nodeport-proxy.io/tls-key-file", "nodeport-proxy.io/tls-ocsp-response-file", "nodeport-proxy.io/tls-sni-certificates", "nodeport-proxy.io/upstream-tls", "nodeport-proxy.io/upstream-tls-ca-file", "nodeport-proxy.io/upstream-tls-insecure-skip-verify", "nodeport-proxy.io/upstream-tls-server-name")",
            R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/allow-source-ranges]: Invalid value: "10.0.0.1/8": host bits set below the prefix length (write the network address))",
            R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/allow-source-ranges]: Invalid value: "300.1.1.1": not an IP address)",
            R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/max-connections]: Invalid value: "0": must be an integer: must be between 1 and 2147483647, inclusive (remove the annotation for no limit))",
            R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/max-connections-per-source]: Invalid value: "-1": must be an integer: must be between 1 and 2147483647, inclusive (remove the annotation for no limit))",
            R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/proxy-protocol]: Unsupported value: "on": supported values: "v1", "v2")",
        });
}

TEST_CASE("annotation rules across ports name the annotation") {
  auto problems = any_problems(manifest("    nodeport-proxy.io/proxy-protocol: v2\n",
                                        "  - {name: dns, port: 53, protocol: UDP, nodePort: 30053}\n"));
  CHECK(problems == strings{R"(Service ops/admin: metadata.annotations[nodeport-proxy.io/proxy-protocol]: Forbidden: PROXY protocol is sent on TCP connections only and port "dns" is UDP; put the UDP ports in a Service of their own)"});
}
