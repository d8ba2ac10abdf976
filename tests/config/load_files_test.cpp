// load_files(): several inputs merged into one snapshot (a manifest paired with local backends,
// a cluster dump next to a native file), validated together, problems naming their file.
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::fixture;
using npp::config::test::has_problem;
using npp::config::test::problems_of;
using npp::config::test::scratch_dir;
using strings = std::vector<std::string>;
namespace fs = std::filesystem;

namespace {
const fs::path examples = fs::path(NPP_SOURCE_DIR) / "examples/kubernetes";

strings files_problems(const std::vector<fs::path>& paths, const load_options& opts = {}) {
  return problems_of([&] { load_files(paths, opts); });
}
strings addresses(const std::vector<endpoint>& eps) {
  strings out;
  for (const auto& ep : eps) out.push_back(ep.address.str());
  return out;
}
}  // namespace

TEST_CASE("the guide manifest and native backends load together into one Service with local endpoints") {
  auto snap = load_files({examples / "guide-service.yaml", examples / "guide-endpoints.json"}, {});
  REQUIRE(snap.services.size() == 1);
  const auto& svc = snap.services[0];
  CHECK(svc.id() == "default/my-nodeport-service");
  CHECK(svc.ports.at(0).node_port == 30080);
  CHECK(addresses(svc.ports[0].endpoints) == strings{"127.0.0.1:8080", "127.0.0.1:8081"});
  CHECK(snap.source == (examples / "guide-service.yaml").string() + " + " + (examples / "guide-endpoints.json").string());
  // The order of the files does not matter.
  auto reversed = load_files({examples / "guide-endpoints.json", examples / "guide-service.yaml"}, {});
  CHECK(addresses(reversed.services.at(0).ports.at(0).endpoints) == strings{"127.0.0.1:8080", "127.0.0.1:8081"});
}

TEST_CASE("the guide manifest and an EndpointSlice load together") {
  auto local = load_files({examples / "guide-service.yaml", examples / "guide-endpointslice.yaml"}, {});
  CHECK(addresses(local.services.at(0).ports.at(0).endpoints) == strings{"127.0.0.1:8080"});
  auto cluster = load_files({fixture("guide-service.yaml"), fixture("guide-slice.yaml")}, {});
  const auto& port = cluster.services.at(0).ports.at(0);
  CHECK(addresses(port.endpoints) == strings{"10.244.1.5:8080", "10.244.2.6:8080"});
  CHECK(port.endpoints[0].node_name == "node-1");
  CHECK(!port.endpoints[1].ready);
}

TEST_CASE("a backends entry naming a Service no input defines is an error") {
  CHECK(files_problems({examples / "guide-endpoints.json"}) ==
        strings{"backends[0].service: Not found: \"default/my-nodeport-service\": no input defines this Service"});
  scratch_dir dir("backends");
  auto typo = dir.write("b.json", R"({"backends": [{"service": "my-nodeport-servce", "ports": [{"port": 80, "endpoints": ["127.0.0.1:8080"]}]}]})");
  CHECK(files_problems({examples / "guide-service.yaml", typo}) ==
        strings{typo.string() + ": backends[0].service: Not found: \"default/my-nodeport-servce\": no input defines this Service"});
}

TEST_CASE("a backends entry for a skipped Service says why") {
  scratch_dir dir("skipped");
  auto svc = dir.write("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: admin-ui, namespace: ops}\nspec:\n  ports:\n    - port: 80\n");
  auto b = dir.write("b.json", R"({"backends": [{"namespace": "ops", "service": "admin-ui", "ports": [{"port": 80, "endpoints": ["127.0.0.1:8080"]}]}]})");
  CHECK(files_problems({svc, b}) ==
        strings{b.string() + ": backends[0].service: Invalid value: \"ops/admin-ui\": the Service is not proxied (type "
                             "ClusterIP has no nodePorts)"});
}

TEST_CASE("a backends port that matches no Service port lists the ports there are") {
  scratch_dir dir("noport");
  auto b = dir.write("b.json", R"({"backends": [{"service": "my-nodeport-service", "ports": [
      {"port": 8080, "endpoints": ["127.0.0.1:8080"]},
      {"name": "http", "endpoints": ["127.0.0.1:8080"]},
      {"port": 80, "protocol": "UDP", "endpoints": ["127.0.0.1:8080"]}]}]})");
  CHECK(files_problems({examples / "guide-service.yaml", b}) ==
        strings{
            b.string() + ": backends[0].ports[0]: Not found: port 8080: Service default/my-nodeport-service has port(s) (unnamed) 80/TCP",
            b.string() + ": backends[0].ports[1]: Not found: name \"http\": Service default/my-nodeport-service has port(s) (unnamed) 80/TCP",
            b.string() + ": backends[0].ports[2]: Not found: port 80, protocol UDP: Service default/my-nodeport-service has port(s) (unnamed) 80/TCP",
        });
}

TEST_CASE("backends entries are checked like native fields") {
  scratch_dir dir("fields");
  auto b = dir.write("b.json", R"({"backends": [
      {"service": "my-nodeport-service", "ports": [{"endpoints": ["127.0.0.1:8080"]}]},
      {"service": "my-nodeport-service", "ports": [{"port": 80, "nodePort": 30080, "endpoints": ["127.0.0.1"]}]},
      {"ports": []}]})");
  CHECK(files_problems({examples / "guide-service.yaml", b}) ==
        strings{
            b.string() + ": backends[0].ports[0]: Required value: \"name\" or \"port\" (which port of the Service these endpoints serve)",
            b.string() + ": backends[1].ports[0]: unknown field \"nodePort\"",
            b.string() + ": backends[1].ports[0].endpoints[0]: Invalid value: \"127.0.0.1\": missing port: must be IP:port, e.g. \"10.0.0.5:8080\" or \"[fd00::5]:8080\"",
            b.string() + ": backends[2].service: Required value",
            b.string() + ": backends[2].ports: Required value",
        });
}

TEST_CASE("a backends entry matched by port covers a TCP and a UDP port, and merges with slices") {
  scratch_dir dir("dns");
  auto svc = dir.write("dns.yaml",
                       "apiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: kube-system}\nspec:\n  type: NodePort\n"
                       "  ports:\n    - {name: dns, protocol: UDP, port: 53, nodePort: 30053}\n"
                       "    - {name: dns-tcp, protocol: TCP, port: 53, nodePort: 30053}\n"
                       "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: dns-1\n  namespace: kube-system\n"
                       "  labels: {kubernetes.io/service-name: dns}\naddressType: IPv4\nports:\n  - {name: dns, protocol: UDP, port: 5353}\n"
                       "endpoints:\n  - addresses: [127.0.0.1]\n    conditions: {ready: false}\n");
  auto b = dir.write("b.json", R"({"backends": [{"namespace": "kube-system", "service": "dns",
      "ports": [{"port": 53, "endpoints": ["127.0.0.1:5353"]}]}]})");
  auto snap = load_files({svc, b}, {});
  const auto& ports = snap.services.at(0).ports;
  CHECK(addresses(ports.at(0).endpoints) == strings{"127.0.0.1:5353"});
  CHECK(ports[0].endpoints[0].ready);  // the backends copy is ready, the slice's was not: the better one wins
  CHECK(addresses(ports.at(1).endpoints) == strings{"127.0.0.1:5353"});
}

TEST_CASE("with several files every problem starts with its file") {
  scratch_dir dir("prefix");
  auto bad = dir.write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  ports:\n    - port: 80\n      nodePort: 40000\n");
  auto broken = dir.write("broken.yaml", "a:\n\t- 1\n");
  auto problems = files_problems({bad, broken, dir.write("native.json", R"({"services": [{"name": "x", "ports": [{"port": "80"}]}]})")});
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].rfind(broken.string() + ": invalid YAML: parse error at line 2", 0) == 0);
  CHECK(problems[1] == (dir.write("native.json", R"({"services": [{"name": "x", "ports": [{"port": "80"}]}]})").string() +
                        ": services[0].ports[0].port: Invalid value: \"80\": must be an integer"));
  CHECK(problems[2] == bad.string() + ": Service default/web: spec.ports[0].nodePort: Invalid value: 40000: provided port is "
                                      "not in the valid range. The range of valid ports is 30000-32767");
  CHECK_THROWS_WITH_AS(load_files({bad, broken}, {}), doctest::Contains((bad.string() + " + " + broken.string() + ": 2 problems").c_str()),
                       config_error);
}

TEST_CASE("nodePort collisions across files name both objects") {
  scratch_dir dir("collide");
  auto native = dir.write("native.json", R"({"services": [{"name": "todo", "ports": [{"port": 80, "nodePort": 30080}]}]})");
  auto problems = files_problems({native, examples / "guide-service.yaml"});
  CHECK(problems == strings{(examples / "guide-service.yaml").string() +
                            ": Service default/my-nodeport-service: spec.ports[0].nodePort: Invalid value: 30080: provided "
                            "port is already allocated (by default/todo port 80/TCP)"});
  auto reversed = files_problems({examples / "guide-service.yaml", native});
  CHECK(reversed == strings{native.string() + ": services[0].ports[0].nodePort: Invalid value: 30080: provided port is already "
                                              "allocated (by default/my-nodeport-service port 80/TCP)"});
}

TEST_CASE("duplicate Services across files are refused") {
  scratch_dir dir("dup");
  auto native = dir.write("native.json", R"({"services": [{"name": "my-nodeport-service", "ports": [{"port": 80}]}]})");
  CHECK(files_problems({examples / "guide-service.yaml", native}) ==
        strings{native.string() + ": services[0].name: Duplicate value: \"default/my-nodeport-service\""});
  CHECK(files_problems({native, examples / "guide-service.yaml"}) ==
        strings{(examples / "guide-service.yaml").string() +
                ": Service default/my-nodeport-service: metadata.name: Duplicate value: \"default/my-nodeport-service\""});
}

TEST_CASE("nodePortRange comes from the native file and must agree across files") {
  scratch_dir dir("range");
  auto narrow = dir.write("a.json", R"({"nodePortRange": "30000-30100", "services": []})");
  auto other = dir.write("b.json", R"({"nodePortRange": "31000-31100", "services": []})");
  auto snap = load_files({narrow, examples / "guide-service.yaml"}, {});
  CHECK(snap.range == port_range{30000, 30100});
  CHECK(files_problems({narrow, other}) ==
        strings{"nodePortRange: Invalid value: \"31000-31100\": conflicts with \"30000-30100\" from another file"});
  load_options opts;
  opts.range_override = port_range{30000, 32767};
  CHECK_NOTHROW(load_files({narrow, other}, opts));  // the flag wins over both
}

TEST_CASE("load_files with no paths is an error and load_file is load_files of one") {
  CHECK(files_problems({}) == strings{"no input files given"});
  auto one = load_file(examples / "local-list.json", {});
  CHECK(one.source == (examples / "local-list.json").string());
}

TEST_CASE("the shipped kubernetes examples say what the README promises") {
  auto local = load_file(examples / "local-list.json", {});
  REQUIRE(local.services.size() == 1);
  const auto& demo = local.services[0];
  CHECK(demo.id() == "default/demo");
  CHECK(demo.ports.at(0).node_port == 30081);
  CHECK(demo.affinity == session_affinity::client_ip);
  CHECK(addresses(demo.ports[0].endpoints) == strings{"127.0.0.1:18081", "127.0.0.1:18082"});
  CHECK(has_problem(local.notes, "default/kubernetes: skipped: type ClusterIP has no nodePorts"));
  // The example manifest is byte for byte the guide's (and the test fixture).
  std::ifstream a(examples / "guide-service.yaml"), b(fixture("guide-service.yaml"));
  std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
  CHECK(sa == sb);
  CHECK(sa.find("nodePort: 30080 # static node port on each node") != std::string::npos);
}

TEST_CASE("a cluster dump and a native file with other services merge") {
  scratch_dir dir("merge");
  auto native = dir.write("n.json", R"({"services": [{"name": "local", "ports": [{"port": 80, "nodePort": 30999, "endpoints": ["127.0.0.1:8080"]}]}]})");
  auto snap = load_files({fixture("cluster.json"), native}, {});
  CHECK(snap.services.size() == 3);
  CHECK(snap.services.back().id() == "default/local");
  CHECK(!snap.services.back().kubernetes_object);
  // Notes name the file they come from when there are several.
  CHECK(has_problem(snap.notes, fixture("cluster.json").string() + ": default/kubernetes: skipped: type ClusterIP has no nodePorts"));
}
