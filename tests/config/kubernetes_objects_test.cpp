// Kubernetes Service and EndpointSlice input: which Services are bound, how slices join them,
// and how problems name the objects. Fixtures in fixtures/ are real `kubectl` output shapes.
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::any_problems;
using npp::config::test::fixture;
using npp::config::test::has_problem;
using npp::config::test::load_any;
using strings = std::vector<std::string>;

namespace {
const service& find_service(const snapshot& snap, std::string_view id) {
  auto it = std::find_if(snap.services.begin(), snap.services.end(), [&](const service& s) { return s.id() == id; });
  REQUIRE_MESSAGE(it != snap.services.end(), "no service " << std::string(id));
  return *it;
}
const service_port& find_port(const service& svc, std::string_view name) {
  auto it = std::find_if(svc.ports.begin(), svc.ports.end(), [&](const service_port& p) { return p.name == name; });
  REQUIRE_MESSAGE(it != svc.ports.end(), "no port " << std::string(name));
  return *it;
}
strings addresses(const std::vector<endpoint>& eps) {
  strings out;
  for (const auto& ep : eps) out.push_back(ep.address.str());
  return out;
}
strings addresses(const std::vector<host_port>& eps) {
  strings out;
  for (const auto& ep : eps) out.push_back(ep.str());
  return out;
}
bool has_note(const snapshot& snap, std::string_view needle) { return has_problem(snap.notes, needle); }

// A NodePort Service manifest with the given spec lines appended (YAML, 2-space indented under spec).
std::string nodeport_service(std::string_view extra_spec = "", std::string_view name = "web") {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + std::string(name) +
         "\n  namespace: shop\nspec:\n  type: NodePort\n" + std::string(extra_spec);
}
std::string slice(std::string_view name, std::string_view body, std::string_view service = "web") {
  return "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + std::string(name) +
         "\n  namespace: shop\n  labels:\n    kubernetes.io/service-name: " + std::string(service) + "\n" +
         std::string(body);
}
}  // namespace

TEST_CASE("kubectl List output loads: NodePort and LoadBalancer ports bound, ClusterIP skipped with notes") {
  auto snap = load_file(fixture("cluster.json"), {});
  REQUIRE(snap.services.size() == 2);
  CHECK(snap.services[0].id() == "shop/web");
  CHECK(snap.services[1].id() == "shop/checkout");
  CHECK(has_note(snap, "default/kubernetes: skipped: type ClusterIP has no nodePorts"));
  CHECK(has_note(snap, "kube-system/kube-dns: skipped: type ClusterIP has no nodePorts"));

  const auto& web = snap.services[0];
  CHECK(web.kubernetes_object);
  CHECK(web.affinity == session_affinity::client_ip);
  CHECK(web.affinity_timeout_seconds == 600);
  CHECK(web.external_traffic_policy == traffic_policy::cluster);
  CHECK(web.health_check_node_port == 0);
  REQUIRE(web.ports.size() == 2);
  CHECK(web.ports[0].name == "http");
  CHECK(web.ports[0].port == 80);
  CHECK(web.ports[0].node_port == 30080);
  CHECK(!web.ports[0].node_port_allocated);
  CHECK(web.ports[1].node_port == 30091);

  const auto& checkout = snap.services[1];
  CHECK(checkout.external_traffic_policy == traffic_policy::local);
  CHECK(checkout.health_check_node_port == 30250);
  CHECK(!checkout.health_check_node_port_allocated);
  CHECK(checkout.ports.at(0).node_port == 30443);
}

TEST_CASE("the multi-document YAML of the same objects gives the same snapshot") {
  auto from_json = load_file(fixture("cluster.json"), {});
  auto from_yaml = load_file(fixture("cluster.yaml"), {});
  REQUIRE(from_json.services.size() == from_yaml.services.size());
  for (std::size_t i = 0; i < from_json.services.size(); ++i) {
    const auto& a = from_json.services[i];
    const auto& b = from_yaml.services[i];
    CHECK(a.id() == b.id());
    CHECK(a.affinity == b.affinity);
    CHECK(a.affinity_timeout_seconds == b.affinity_timeout_seconds);
    CHECK(a.external_traffic_policy == b.external_traffic_policy);
    CHECK(a.health_check_node_port == b.health_check_node_port);
    REQUIRE(a.ports.size() == b.ports.size());
    for (std::size_t k = 0; k < a.ports.size(); ++k) {
      CHECK(a.ports[k].node_port == b.ports[k].node_port);
      CHECK(a.ports[k].endpoints == b.ports[k].endpoints);
    }
  }
  CHECK(from_json.notes.size() == from_yaml.notes.size());
}

TEST_CASE("named targetPorts resolve per slice so one port name may have two endpoint ports") {
  auto snap = load_file(fixture("cluster.json"), {});
  const auto& web = find_service(snap, "shop/web");
  // web-7xk2p says http=8080, web-q4r8s (another pod template) says http=8081; web-v6n2d is IPv6.
  CHECK(addresses(find_port(web, "http").endpoints) ==
        strings{"10.244.1.17:8080", "10.244.2.9:8080", "10.244.3.4:8081", "[fd00:10:244:1::17]:8080"});
  CHECK(addresses(find_port(web, "metrics").endpoints) ==
        strings{"10.244.1.17:9100", "10.244.2.9:9100", "10.244.3.4:9101", "[fd00:10:244:1::17]:9100"});
  CHECK(find_port(web, "http").endpoints[0].node_name == "node-1");
}

TEST_CASE("an endpoint listed in two slices is merged and the most usable copy wins") {
  // In the fixture 10.244.2.9:8080 is ready in web-7xk2p and not ready in web-z2v6c.
  auto snap = load_file(fixture("cluster.json"), {});
  const auto& http = find_port(find_service(snap, "shop/web"), "http");
  auto it = std::find_if(http.endpoints.begin(), http.endpoints.end(),
                         [](const endpoint& ep) { return ep.address.str() == "10.244.2.9:8080"; });
  REQUIRE(it != http.endpoints.end());
  CHECK(it->ready);
  CHECK(std::count_if(http.endpoints.begin(), http.endpoints.end(),
                      [](const endpoint& ep) { return ep.address.str() == "10.244.2.9:8080"; }) == 1);

  SUBCASE("the better copy wins even when it comes second") {
    auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                      slice("a", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                                 "  - addresses: [10.0.0.1]\n    conditions: {ready: false, serving: true, terminating: true}\n") +
                      slice("b", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                                 "  - addresses: [10.0.0.1]\n    nodeName: node-9\n"));
    const auto& eps = s.services.at(0).ports.at(0).endpoints;
    REQUIRE(eps.size() == 1);
    CHECK(eps[0].ready);
    CHECK(eps[0].node_name == "node-9");
  }
  SUBCASE("on a tie the first copy stays") {
    auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                      slice("a", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                                 "  - addresses: [10.0.0.1]\n    nodeName: first\n") +
                      slice("b", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                                 "  - addresses: [10.0.0.1]\n    nodeName: second\n"));
    CHECK(s.services.at(0).ports.at(0).endpoints.at(0).node_name == "first");
  }
}

TEST_CASE("IPv6 slices are used and an address of the wrong family is skipped with a note") {
  auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                    slice("v6", "addressType: IPv6\nports:\n  - port: 8080\nendpoints:\n"
                                "  - addresses: [\"fd00::1\"]\n  - addresses: [10.0.0.9]\n"));
  CHECK(addresses(s.services.at(0).ports.at(0).endpoints) == strings{"[fd00::1]:8080"});
  CHECK(has_note(s, "EndpointSlice shop/v6: endpoints[1].addresses[0]: ignored: \"10.0.0.9\" is not an IPv6 address"));
}

TEST_CASE("FQDN slices and slices without the service-name label are ignored with notes") {
  auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                    slice("names", "addressType: FQDN\nports:\n  - port: 8080\nendpoints:\n  - addresses: [db.example.com]\n") +
                    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: orphan\n  namespace: shop\n"
                    "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n  - addresses: [10.0.0.1]\n");
  CHECK(s.services.at(0).ports.at(0).endpoints.empty());
  CHECK(has_note(s, "EndpointSlice shop/names: ignored: addressType FQDN is not proxied"));
  CHECK(has_note(s, "EndpointSlice shop/orphan: ignored: no kubernetes.io/service-name label set on endpoint slice"));
}

TEST_CASE("only addresses[0] of an endpoint is used, as kube-proxy does") {
  auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                    slice("a", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                               "  - addresses: [10.0.0.1, 10.0.0.2, 10.0.0.3]\n"));
  CHECK(addresses(s.services.at(0).ports.at(0).endpoints) == strings{"10.0.0.1:8080"});
}

TEST_CASE("missing conditions read ready and serving true and terminating false") {
  auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                    slice("a", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                               "  - addresses: [10.0.0.1]\n"
                               "  - addresses: [10.0.0.2]\n    conditions: {}\n"
                               "  - addresses: [10.0.0.3]\n    conditions: {ready: null, serving: null, terminating: null}\n"
                               "  - addresses: [10.0.0.4]\n    conditions: {ready: false}\n"));
  const auto& eps = s.services.at(0).ports.at(0).endpoints;
  REQUIRE(eps.size() == 4);
  for (int i = 0; i < 3; ++i) {
    CHECK(eps[i].ready);
    CHECK(eps[i].serving);
    CHECK(!eps[i].terminating);
  }
  CHECK(!eps[3].ready);
  CHECK(eps[3].serving);
}

TEST_CASE("slice ports match Service ports by name and protocol") {
  auto s = load_any(nodeport_service("  ports:\n"
                                     "    - {name: dns, protocol: UDP, port: 53, nodePort: 30053}\n"
                                     "    - {name: dns-tcp, protocol: TCP, port: 53, nodePort: 30053}\n",
                                     "dns") +
                    slice("dns-1", "addressType: IPv4\nports:\n"
                                   "  - {name: dns, protocol: UDP, port: 5353}\n"
                                   "  - {name: dns-tcp, protocol: TCP, port: 5354}\n"
                                   "  - {name: dns, protocol: TCP, port: 9999}\n"
                                   "endpoints:\n  - addresses: [10.0.0.1]\n",
                          "dns"));
  const auto& svc = s.services.at(0);
  CHECK(addresses(find_port(svc, "dns").endpoints) == strings{"10.0.0.1:5353"});
  CHECK(addresses(find_port(svc, "dns-tcp").endpoints) == strings{"10.0.0.1:5354"});
  CHECK(find_port(svc, "dns").proto == protocol::udp);
}

TEST_CASE("usable endpoints prefer ready ones and fall back to serving terminating ones") {
  auto snap = load_file(fixture("cluster.json"), {});
  const auto& web = find_service(snap, "shop/web");
  const auto& http = find_port(web, "http");
  // Cluster policy: every ready endpoint, whatever its node.
  CHECK(addresses(usable_endpoints(web, http, "node-1")) ==
        strings{"10.244.1.17:8080", "10.244.2.9:8080", "10.244.3.4:8081", "[fd00:10:244:1::17]:8080"});

  auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                    slice("a", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                               "  - addresses: [10.0.0.1]\n    conditions: {ready: false, serving: true, terminating: true}\n"
                               "  - addresses: [10.0.0.2]\n    conditions: {ready: false, serving: false, terminating: true}\n"
                               "  - addresses: [10.0.0.3]\n    conditions: {ready: false, serving: true, terminating: false}\n"));
  const auto& svc = s.services.at(0);
  CHECK(addresses(usable_endpoints(svc, svc.ports.at(0), "")) == strings{"10.0.0.1:8080"});
}

TEST_CASE("externalTrafficPolicy Local keeps only this node's endpoints, terminating ones as fallback") {
  auto snap = load_file(fixture("cluster.json"), {});
  const auto& checkout = find_service(snap, "shop/checkout");
  const auto& https = checkout.ports.at(0);
  CHECK(addresses(usable_endpoints(checkout, https, "node-1")) == strings{"10.244.1.30:8443"});
  // node-2 has only a terminating, still serving endpoint: it drains there.
  CHECK(addresses(usable_endpoints(checkout, https, "node-2")) == strings{"10.244.2.31:8443"});
  CHECK(usable_endpoints(checkout, https, "node-3").empty());
}

TEST_CASE("healthCheckNodePort is read for LoadBalancer with Local and refused elsewhere") {
  const std::string ports = "  ports:\n    - port: 443\n      nodePort: 30443\n";
  auto lb = load_any("apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec:\n  type: LoadBalancer\n"
                     "  externalTrafficPolicy: Local\n  healthCheckNodePort: 30250\n" + ports);
  CHECK(lb.services.at(0).health_check_node_port == 30250);
  CHECK(any_problems(nodeport_service("  externalTrafficPolicy: Local\n  healthCheckNodePort: 30250\n" + ports)) ==
        strings{"Service shop/web: spec.healthCheckNodePort: Forbidden: may only be set when `type` is 'LoadBalancer' "
                "and `externalTrafficPolicy` is 'Local'"});
  CHECK(any_problems("apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec:\n  type: LoadBalancer\n"
                     "  healthCheckNodePort: 30250\n" + ports) ==
        strings{"Service shop/lb: spec.healthCheckNodePort: Forbidden: may only be set when `type` is 'LoadBalancer' "
                "and `externalTrafficPolicy` is 'Local'"});
}

TEST_CASE("a missing healthCheckNodePort is allocated for LoadBalancer with Local, with a note") {
  auto s = load_any("apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec:\n  type: LoadBalancer\n"
                    "  externalTrafficPolicy: Local\n  ports:\n    - port: 443\n      nodePort: 30443\n");
  const auto& svc = s.services.at(0);
  CHECK(svc.health_check_node_port_allocated);
  CHECK(svc.health_check_node_port >= 30086);  // the dynamic band
  CHECK(svc.health_check_node_port != 30443);
  CHECK(has_note(s, "shop/lb: no healthCheckNodePort given; allocated " + std::to_string(svc.health_check_node_port)));
}

TEST_CASE("healthCheckNodePort collisions and range use the nodePort rules") {
  const std::string lb = "apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec:\n"
                         "  type: LoadBalancer\n  externalTrafficPolicy: Local\n";
  CHECK(any_problems(lb + "  healthCheckNodePort: 30443\n  ports:\n    - port: 443\n      nodePort: 30443\n") ==
        strings{"Service shop/lb: spec.healthCheckNodePort: Invalid value: 30443: provided port is already allocated "
                "(by shop/lb port 443/TCP)"});
  CHECK(any_problems(lb + "  healthCheckNodePort: 40000\n  ports:\n    - port: 443\n      nodePort: 30443\n") ==
        strings{"Service shop/lb: spec.healthCheckNodePort: Invalid value: 40000: provided port is not in the valid range. "
                "The range of valid ports is 30000-32767"});
  CHECK(any_problems(lb + "  healthCheckNodePort: 30250\n  ports:\n    - port: 443\n      nodePort: 30443\n" +
                     "---\n" + nodeport_service("  ports:\n    - port: 80\n      nodePort: 30250\n")) ==
        strings{"documents[1] (Service shop/web): spec.ports[0].nodePort: Invalid value: 30250: provided port is already "
                "allocated (by shop/lb healthCheckNodePort)"});
}

TEST_CASE("headless, ExternalName, ClusterIP, service-proxy-name and unallocated LoadBalancer Services are skipped with a reason") {
  auto s = load_file(fixture("skipped.yaml"), {});
  CHECK(s.services.empty());
  CHECK(has_note(s, "shop/db: skipped: headless (clusterIP: None) Services are not proxied"));
  CHECK(has_note(s, "shop/gateway: skipped: labelled service.kubernetes.io/service-proxy-name=other-proxy: another proxy serves it"));
  CHECK(has_note(s, "shop/search: skipped: type ExternalName is a DNS alias, not proxied"));
  CHECK(has_note(s, "shop/edge: skipped: no port to bind; spec.ports[0] (https): no nodePort (allocateLoadBalancerNodePorts: false)"));
  CHECK(has_note(s, "shop/admin: skipped: type ClusterIP has no nodePorts"));
  // The slice of the skipped headless Service is dropped without a second note.
  CHECK(!has_note(s, "db-abcde"));
  auto headless_label = load_any(
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n  labels:\n"
      "    service.kubernetes.io/headless: \"\"\nspec:\n  type: NodePort\n  ports:\n    - port: 80\n");
  CHECK(has_note(headless_label, "shop/web: skipped: labelled service.kubernetes.io/headless"));
}

TEST_CASE("a LoadBalancer without allocated nodePorts binds only the ports that have one") {
  auto s = load_any("apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec:\n  type: LoadBalancer\n"
                    "  allocateLoadBalancerNodePorts: false\n  ports:\n"
                    "    - {name: http, port: 80}\n    - {name: https, port: 443, nodePort: 30443}\n");
  REQUIRE(s.services.size() == 1);
  REQUIRE(s.services[0].ports.size() == 1);
  CHECK(s.services[0].ports[0].name == "https");
  CHECK(has_note(s, "shop/lb: spec.ports[0] (http): no nodePort (allocateLoadBalancerNodePorts: false); not bound"));
}

TEST_CASE("a NodePort port without nodePort in a manifest is allocated with a note") {
  auto s = load_any(nodeport_service("  ports:\n    - name: http\n      port: 80\n    - name: admin\n      port: 81\n      nodePort: 0\n"));
  const auto& svc = s.services.at(0);
  for (const auto& port : svc.ports) {
    CHECK(port.node_port_allocated);
    CHECK(port.node_port >= 30086);
  }
  CHECK(has_note(s, "shop/web: spec.ports[0]: no nodePort given; allocated " + std::to_string(svc.ports[0].node_port)));
  CHECK(has_note(s, "shop/web: spec.ports[1]: no nodePort given; allocated " + std::to_string(svc.ports[1].node_port)));
}

TEST_CASE("the guide manifest loads as written, comments included") {
  auto s = load_file(fixture("guide-service.yaml"), {});
  REQUIRE(s.services.size() == 1);
  const auto& svc = s.services[0];
  CHECK(svc.id() == "default/my-nodeport-service");  // no namespace: "default", as kubectl applies it
  REQUIRE(svc.ports.size() == 1);
  CHECK(svc.ports[0].name == "");
  CHECK(svc.ports[0].proto == protocol::tcp);
  CHECK(svc.ports[0].port == 80);
  CHECK(svc.ports[0].node_port == 30080);
  CHECK(svc.ports[0].endpoints.empty());
}

TEST_CASE("a nodePort written as a quoted string is refused like the API server refuses it") {
  CHECK(any_problems(nodeport_service("  ports:\n    - port: 80\n      nodePort: \"30080\"\n")) ==
        strings{"Service shop/web: spec.ports[0].nodePort: Invalid value: \"30080\": must be an integer"});
  CHECK(any_problems(nodeport_service("  ports:\n    - port: \"80\"\n")) ==
        strings{"Service shop/web: spec.ports[0].port: Invalid value: \"80\": must be an integer"});
  CHECK(any_problems(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080.5\n")) ==
        strings{"Service shop/web: spec.ports[0].nodePort: Invalid value: 30080.5: must be an integer"});
}

TEST_CASE("session affinity and its timeout are read with the Kubernetes defaults and limits") {
  auto plain = load_any(nodeport_service("  sessionAffinity: ClientIP\n  ports:\n    - port: 80\n"));
  CHECK(plain.services.at(0).affinity == session_affinity::client_ip);
  CHECK(plain.services.at(0).affinity_timeout_seconds == 10800);
  auto set = load_any(nodeport_service("  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n"
                                       "      timeoutSeconds: 86400\n  ports:\n    - port: 80\n"));
  CHECK(set.services.at(0).affinity_timeout_seconds == 86400);
  CHECK(any_problems(nodeport_service("  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n"
                                      "      timeoutSeconds: 0\n  ports:\n    - port: 80\n")) ==
        strings{"Service shop/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be "
                "greater than 0 and less than 86400"});
  CHECK(any_problems(nodeport_service("  sessionAffinity: Sticky\n  ports:\n    - port: 80\n")) ==
        strings{"Service shop/web: spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""});
  // Kubernetes drops the config when affinity is None; so do we, quietly (API output never has it).
  auto none = load_any(nodeport_service("  sessionAffinity: None\n  sessionAffinityConfig:\n    clientIP:\n"
                                        "      timeoutSeconds: 5\n  ports:\n    - port: 80\n"));
  CHECK(none.services.at(0).affinity == session_affinity::none);
  CHECK(any_problems(nodeport_service("  externalTrafficPolicy: Global\n  ports:\n    - port: 80\n")) ==
        strings{"Service shop/web: spec.externalTrafficPolicy: Unsupported value: \"Global\": supported values: \"Cluster\", \"Local\""});
}

TEST_CASE("publishNotReadyAddresses makes every endpoint of the Service ready") {
  const std::string slices =
      slice("a", "addressType: IPv4\nports:\n  - port: 8080\nendpoints:\n"
                 "  - addresses: [10.0.0.1]\n    conditions: {ready: false, serving: false, terminating: false}\n"
                 "  - addresses: [10.0.0.2]\n    conditions: {ready: false, serving: true, terminating: true}\n");
  auto published = load_any(nodeport_service("  publishNotReadyAddresses: true\n  ports:\n    - port: 80\n      nodePort: 30080\n") + slices);
  const auto& svc = published.services.at(0);
  CHECK(svc.publish_not_ready_addresses);
  CHECK(addresses(usable_endpoints(svc, svc.ports.at(0), "")) == strings{"10.0.0.1:8080", "10.0.0.2:8080"});

  auto normal = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") + slices);
  const auto& n = normal.services.at(0);
  CHECK(!n.publish_not_ready_addresses);
  CHECK(addresses(usable_endpoints(n, n.ports.at(0), "")) == strings{"10.0.0.2:8080"});
}

TEST_CASE("problems name the object: Service ns/name alone, items[i] in lists, documents[i] in streams") {
  CHECK(any_problems(nodeport_service("  ports:\n    - port: 0\n")) ==
        strings{"Service shop/web: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"});
  const std::string list =
      R"({"apiVersion": "v1", "kind": "List", "items": [
           {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "ops"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}},
           {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "admin-ui", "namespace": "ops"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}]})";
  CHECK(any_problems(list) == strings{"items[1] (Service ops/admin-ui): spec.ports[0].nodePort: Invalid value: 30080: "
                                      "provided port is already allocated (by ops/a port 80/TCP)"});
  CHECK(any_problems(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n", "a") + "---\n" +
                     nodeport_service("  ports:\n    - port: 80\n      nodePort: 37896\n", "b")) ==
        strings{"documents[1] (Service shop/b): spec.ports[0].nodePort: Invalid value: 37896: provided port is not in "
                "the valid range. The range of valid ports is 30000-32767"});
  CHECK(any_problems("apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {type: NodePort}\n") ==
        strings{"Service: metadata.name: Required value"});
  CHECK(any_problems(nodeport_service("")) == strings{"Service shop/web: spec.ports: Required value"});
  CHECK(any_problems(nodeport_service("  ports:\n    - port: 80\n") + "---\n" + nodeport_service("  ports:\n    - port: 81\n")) ==
        strings{"documents[1] (Service shop/web): metadata.name: Duplicate value: \"shop/web\""});
}

TEST_CASE("a single Service collision uses Kubernetes' words exactly") {
  const std::string two = R"({"kind": "ServiceList", "apiVersion": "v1", "items": [
      {"metadata": {"name": "todo", "namespace": "ops"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}},
      {"metadata": {"name": "admin-ui", "namespace": "ops"}, "spec": {"type": "NodePort", "ports": [{"port": 443, "nodePort": 30080}]}}]})";
  auto problems = any_problems(two);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].rfind("items[1] (Service ops/admin-ui): spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated", 0) == 0);
}

TEST_CASE("ServiceList and EndpointSliceList items without kind take the list's kind") {
  auto s = load_any(R"({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "10245"}, "items": [
      {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}]})");
  CHECK(s.services.at(0).id() == "shop/web");
  auto slices = load_any(R"({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "items": [
      {"metadata": {"name": "x", "namespace": "shop", "labels": {"kubernetes.io/service-name": "nope"}},
       "addressType": "IPv4", "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.0.0.1"]}]}]})");
  CHECK(has_note(slices, "EndpointSlice shop/x: ignored: Service shop/nope not found"));
}

TEST_CASE("other kinds are skipped inside lists and streams and refused as the only object") {
  auto s = load_any(nodeport_service("  ports:\n    - port: 80\n      nodePort: 30080\n") +
                    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
                    "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: shop}\n");
  CHECK(s.services.size() == 1);
  CHECK(has_note(s, "documents[1] (Deployment shop/web): ignored: kind \"Deployment\" is not used"));
  CHECK(has_note(s, "documents[2] (Endpoints shop/web): ignored: kind \"Endpoints\" (v1 Endpoints are not read; EndpointSlices are)"));
  CHECK(has_problem(any_problems("apiVersion: v1\nkind: ConfigMap\n"), "kind: Unsupported value: \"ConfigMap\": this is not an endpoints file"));
  CHECK(any_problems(R"({"kind": "List", "items": [{"kind": "List", "items": []}]})") ==
        strings{"items[0]: kind: Invalid value: \"List\": a list inside a list is not supported"});
  CHECK(has_problem(any_problems(nodeport_service("  ports:\n    - port: 80\n") + "---\nservices: []\n"),
                    "documents[1]: Required value: kind"));
}

TEST_CASE("unknown fields are ignored but known fields are type-checked") {
  auto s = load_any(R"({"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "web", "namespace": "shop", "managedFields": [{"manager": "x"}], "annotations": {"a": "b"}},
      "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "appProtocol": "http", "futureField": 1}],
               "ipFamilies": ["IPv4"], "someNewField": {"x": 1}},
      "status": {"loadBalancer": {}, "conditions": []}})");
  CHECK(s.services.at(0).ports.at(0).node_port == 30080);
  CHECK(any_problems(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": {"port": 80}}})") ==
        strings{"Service default/web: spec.ports: Invalid value: {...}: must be an array"});
  CHECK(any_problems(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "nodeport", "ports": []}})") ==
        strings{"Service default/web: spec.type: Unsupported value: \"nodeport\": supported values: \"ClusterIP\", "
                "\"ExternalName\", \"LoadBalancer\", \"NodePort\""});
  CHECK(any_problems(nodeport_service("  publishNotReadyAddresses: \"yes\"\n  ports:\n    - port: 80\n")) ==
        strings{"Service shop/web: spec.publishNotReadyAddresses: Invalid value: \"yes\": must be a boolean (true or false)"});
}

TEST_CASE("the wrong apiVersion and broken slice fields are refused with the object's name") {
  CHECK(any_problems("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n") ==
        strings{"EndpointSlice default/s: apiVersion: Unsupported value: \"discovery.k8s.io/v1beta1\": supported values: "
                "\"discovery.k8s.io/v1\""});
  auto problems = any_problems(nodeport_service("  ports:\n    - port: 80\n") +
                               slice("s", "addressType: IPv4\nports:\n  - port: \"8080\"\nendpoints:\n"
                                          "  - addresses: [not-an-ip]\n  - addresses: []\n  - addresses: [0.0.0.0]\n"
                                          "  - addresses: [10.0.0.1]\n    conditions: {ready: yes}\n"));
  CHECK(problems == strings{
                        "documents[1] (EndpointSlice shop/s): ports[0].port: Invalid value: \"8080\": must be an integer",
                        "documents[1] (EndpointSlice shop/s): endpoints[0].addresses[0]: Invalid value: \"not-an-ip\": must be a valid IP address",
                        "documents[1] (EndpointSlice shop/s): endpoints[1].addresses: Required value",
                        "documents[1] (EndpointSlice shop/s): endpoints[2].addresses[0]: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
                        "documents[1] (EndpointSlice shop/s): endpoints[3].conditions.ready: Invalid value: \"yes\": must be a boolean (true or false)",
                    });
  CHECK(has_problem(any_problems("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv5\n"),
                    "addressType: Unsupported value: \"IPv5\""));
}

TEST_CASE("SCTP ports are skipped with a note and slice ports without a number are ignored") {
  auto s = load_any(nodeport_service("  ports:\n    - {name: a, protocol: SCTP, port: 80, nodePort: 30080}\n"
                                     "    - {name: b, port: 81, nodePort: 30081}\n") +
                    slice("s", "addressType: IPv4\nports:\n  - {name: b}\n  - {name: b, port: 0}\n"
                               "endpoints:\n  - addresses: [10.0.0.1]\n"));
  REQUIRE(s.services.at(0).ports.size() == 1);
  CHECK(s.services[0].ports[0].name == "b");
  CHECK(s.services[0].ports[0].endpoints.empty());
  CHECK(has_note(s, "shop/web: spec.ports[0] (a): SCTP is not supported; not bound"));
  CHECK(has_note(s, "EndpointSlice shop/s: ports[0]: ignored: no port number"));
  CHECK(has_note(s, "EndpointSlice shop/s: ports[1]: ignored: no port number"));
}

TEST_CASE("a slice for a missing Service is noted and one for a skipped Service is silent") {
  auto s = load_file(fixture("cluster.json"), {});
  // kubernetes and kube-dns are skipped ClusterIP Services: their slices add no note.
  CHECK(!has_note(s, "EndpointSlice default/kubernetes"));
  CHECK(!has_note(s, "EndpointSlice kube-system/kube-dns"));
  auto lonely = load_any(slice("x", "addressType: IPv4\nports:\n  - port: 80\nendpoints:\n  - addresses: [10.0.0.1]\n"));
  CHECK(lonely.services.empty());
  CHECK(has_note(lonely, "EndpointSlice shop/x: ignored: Service shop/web not found"));
}

TEST_CASE("a ClusterIP Service that sets a nodePort is refused in the API server's words") {
  const char* yaml = R"(apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: ClusterIP
  ports:
    - port: 80
      nodePort: 30080
)";
  auto problems = npp::config::test::problems_of([&] { npp::config::load_text(yaml, npp::config::load_options{}); });
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("Service default/web: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'") !=
        std::string::npos);
}
