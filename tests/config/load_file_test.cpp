// load_file(): reading, size cap, format detection, and the shipped examples.
#include "test_support.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

using namespace npp::config;
using npp::config::test::has_problem;
using npp::config::test::problems_of;
using strings = std::vector<std::string>;
namespace fs = std::filesystem;

namespace {
// A file under a per-process temporary directory, removed with the directory at exit.
class temp_dir {
 public:
  temp_dir() : path_(fs::temp_directory_path() / ("npp-config-test-" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ignored_ec;
    fs::remove_all(path_, ignored_ec);
  }
  fs::path write(const std::string& name, std::string_view content) const {
    auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::string> file_problems(const fs::path& p, const load_options& opts = {}) {
  return problems_of([&] { load_file(p, opts); });
}

const fs::path source_dir = NPP_SOURCE_DIR;
}  // namespace

TEST_CASE("a native file loads, validates, allocates and records its path") {
  temp_dir dir;
  auto p = dir.write("svc.json", R"({"services": [{"name": "a", "ports": [{"port": 80}]}]})");
  auto snap = load_file(p, {});
  CHECK(snap.source == p.string());
  REQUIRE(snap.services.size() == 1);
  CHECK(snap.services[0].ports[0].node_port_allocated);
  CHECK(snap.range.contains(snap.services[0].ports[0].node_port));
}

TEST_CASE("missing, unreadable and directory paths give clear errors") {
  temp_dir dir;
  CHECK(file_problems(dir.path() / "nope.json") == strings{"cannot open file: No such file or directory"});
  CHECK(file_problems(dir.path()) == strings{"cannot read file: is a directory"});
  CHECK_THROWS_WITH_AS(load_file(dir.path() / "nope.json", {}), doctest::Contains("nope.json: 1 problem"), config_error);
  if (::geteuid() != 0) {  // root reads anything
    auto p = dir.write("secret.json", "{}");
    fs::permissions(p, fs::perms::none);
    CHECK(file_problems(p) == strings{"cannot open file: Permission denied"});
  }
}

TEST_CASE("a file above max_bytes is refused before it is read") {
  temp_dir dir;
  load_options opts;
  opts.max_bytes = 64;
  auto p = dir.write("big.json", R"({"services": []})" + std::string(100, ' '));
  CHECK(file_problems(p, opts) == strings{"file is larger than 64 bytes"});
  opts.max_bytes = 1024;
  CHECK_NOTHROW(load_file(p, opts));
}

TEST_CASE("a lone object of another kind is not an endpoints file") {
  temp_dir dir;
  auto p = dir.write("d.json", R"({"apiVersion": "apps/v1", "kind": "Deployment"})");
  CHECK(file_problems(p) == strings{"kind: Unsupported value: \"Deployment\": this is not an endpoints file; expected a "
                                    "Service, an EndpointSlice, a List of them, or the native format {\"services\": [...]}"});
  for (const char* kind : {"List", "ServiceList", "EndpointSliceList"}) {
    INFO(kind);
    auto empty = dir.write("k.json", R"({"apiVersion": "v1", "kind": ")" + std::string(kind) + R"(", "items": []})");
    auto snap = load_file(empty, {});
    CHECK(snap.services.empty());
  }
}

TEST_CASE("a native document written in YAML loads like its JSON") {
  temp_dir dir;
  auto p = dir.write("svc.yaml", "# native format, YAML syntax\nservices:\n  - name: web\n    ports:\n      - port: 80\n        nodePort: 30080\n        endpoints: [\"127.0.0.1:8080\"]\n");
  auto snap = load_file(p, {});
  REQUIRE(snap.services.size() == 1);
  CHECK(snap.services[0].ports.at(0).node_port == 30080);
  CHECK(snap.services[0].ports.at(0).endpoints.at(0).address.str() == "127.0.0.1:8080");
  // Its problems keep the native paths.
  auto bad = dir.write("bad.yaml", "services:\n  - name: web\n");
  CHECK(file_problems(bad) == strings{"services[0].ports: Required value"});
}

TEST_CASE("hostile files fail with problems, never a crash") {
  temp_dir dir;
  CHECK(has_problem(file_problems(dir.write("deep.json", std::string(100'000, '['))), "nesting is deeper than 64 levels"));
  CHECK(has_problem(file_problems(dir.write("nul.json", std::string("{\"services\": []}\0", 17))), "invalid JSON"));
  CHECK(file_problems(dir.write("empty.json", "")) ==
        strings{"invalid JSON: the input is empty (expected an object such as {\"services\": []})"});
  CHECK_NOTHROW(load_file(dir.write("bom.json", "\xEF\xBB\xBF{\"services\": []}"), {}));
}

TEST_CASE("every shipped example loads") {
  // Files that only make sense with their partner (see examples/README.md): backends and slices
  // for a manifest.
  const std::map<std::string, std::string> partner = {
      {"guide-endpoints.json", "guide-service.yaml"},
      {"guide-endpointslice.yaml", "guide-service.yaml"},
  };
  std::vector<fs::path> examples;
  // deploy/ directories hold manifests that deploy the proxy (DaemonSet, RBAC), not inputs to it
  // (tests/repo/validate_deploy.py checks those). examples/tls names certificates that
  // examples/tls/make-certs.sh generates (no keys in the repository);
  // tests/repo/validate_examples_cli.sh loads it with freshly generated ones.
  for (auto it = fs::recursive_directory_iterator(source_dir / "examples"); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && (it->path().filename() == "deploy" || it->path().filename() == "tls")) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->path().extension() == ".json" || it->path().extension() == ".yaml") examples.push_back(it->path());
  }
  REQUIRE(examples.size() >= 8);
  for (const auto& p : examples) {
    INFO(p.string());
    auto it = partner.find(p.filename().string());
    if (it == partner.end()) {
      CHECK_NOTHROW(load_file(p, {}));
    } else {
      CHECK_NOTHROW(load_files({p.parent_path() / it->second, p}, {}));
      if (p.extension() == ".json")
        CHECK_THROWS_AS(load_file(p, {}), config_error);  // alone it names a Service nobody defines
    }
  }
}

TEST_CASE("the examples say what their README promises") {
  auto demo = load_file(source_dir / "examples/demo.json", {});
  REQUIRE(demo.services.size() == 1);
  CHECK(demo.services[0].id() == "default/demo");
  const auto& http = demo.services[0].ports.at(0);
  CHECK(http.name == "http");
  CHECK(http.node_port == 30080);
  CHECK(http.endpoints.size() == 3);
  CHECK(http.endpoints[0].address.str() == "127.0.0.1:18081");

  auto dns = load_file(source_dir / "examples/dns-udp.json", {});
  CHECK(dns.services[0].ports.at(0).node_port == 30053);
  CHECK(dns.services[0].ports.at(1).node_port == 30053);
  CHECK(dns.services[0].ports.at(0).proto != dns.services[0].ports.at(1).proto);

  auto allocated = load_file(source_dir / "examples/allocated.json", {});
  for (const auto& svc : allocated.services)
    for (const auto& port : svc.ports) {
      CHECK(port.node_port_allocated);
      CHECK(port.node_port >= 30086);  // the dynamic band of the default range
    }
  const auto& syslog = allocated.services.at(1).ports;
  CHECK(syslog.at(0).node_port == syslog.at(1).node_port);
}
