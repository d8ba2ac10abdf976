// kubeconfig and in-cluster configuration (config/kube_api_config.hpp).
#include <stdexcept>

#include "config/kube_api_config.hpp"
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::scratch_dir;

namespace {
// What load_kubeconfig() throws, or "" if it succeeds.
std::string error_of(const std::filesystem::path& file, const std::string& context = "") {
  try {
    load_kubeconfig(file, context);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}
const char* ca_b64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmZha2UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
}  // namespace

TEST_CASE("kubeconfig: current-context picks cluster and user; -data fields are base64") {
  scratch_dir dir("kubeconfig-data");
  auto kc = dir.write("config", std::string(R"(apiVersion: v1
kind: Config
current-context: prod
preferences: {}
clusters:
- name: dev
  cluster:
    server: https://dev.example.com:6443
- name: prod
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: )") + ca_b64 + R"(
contexts:
- name: dev
  context: {cluster: dev, user: dev-user}
- name: prod
  context:
    cluster: prod
    user: admin
    namespace: kube-system
users:
- name: dev-user
  user: {token: dev-token}
- name: admin
  user:
    token: abc.def
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
)");
  auto c = load_kubeconfig(kc);
  CHECK(c.server == "https://10.0.0.1:6443/");
  CHECK(c.host == "10.0.0.1");
  CHECK(c.port == "6443");
  CHECK(c.base_path == "");
  CHECK(c.ca_pem == "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n");
  CHECK(c.token == "abc.def");
  CHECK(c.client_cert_pem == "cert");
  CHECK(c.client_key_pem == "key");
  CHECK_FALSE(c.insecure_skip_tls_verify);
  CHECK(c.origin.find("(context prod)") != std::string::npos);

  SUBCASE("--context overrides current-context") {
    auto d = load_kubeconfig(kc, "dev");
    CHECK(d.host == "dev.example.com");
    CHECK(d.token == "dev-token");
    CHECK(d.ca_pem.empty());
  }
  SUBCASE("an unknown context is named") {
    CHECK(error_of(kc, "nope").find("context \"nope\" not found in contexts") != std::string::npos);
  }
}

TEST_CASE("kubeconfig: file paths are relative to the kubeconfig; tokenFile and insecure-skip-tls-verify") {
  scratch_dir dir("kubeconfig-files");
  dir.write("ca.crt", "CA PEM");
  dir.write("client.crt", "CERT PEM");
  dir.write("client.key", "KEY PEM");
  auto kc = dir.write("kc.yaml", R"(apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster: {server: "https://[fd00::1]", certificate-authority: ca.crt, insecure-skip-tls-verify: true}
contexts:
- {name: c, context: {cluster: k, user: u}}
users:
- name: u
  user: {tokenFile: token, client-certificate: client.crt, client-key: client.key}
)");
  auto c = load_kubeconfig(kc);
  CHECK(c.host == "fd00::1");
  CHECK(c.port == "443");
  CHECK(c.ca_pem == "CA PEM");
  CHECK(c.insecure_skip_tls_verify);
  CHECK(c.token.empty());
  CHECK(c.token_file == kc.parent_path() / "token");
  CHECK(c.client_cert_pem == "CERT PEM");
  CHECK(c.client_key_pem == "KEY PEM");
}

TEST_CASE("kubeconfig: JSON works too, and a server path prefix is kept") {
  scratch_dir dir("kubeconfig-json");
  auto kc = dir.write("kc.json", R"({"apiVersion":"v1","kind":"Config","current-context":"x",
    "clusters":[{"name":"k","cluster":{"server":"https://rancher.example.com/k8s/clusters/c-1/"}}],
    "contexts":[{"name":"x","context":{"cluster":"k","user":"u"}}],
    "users":[{"name":"u","user":{"token":"t"}}]})");
  auto c = load_kubeconfig(kc);
  CHECK(c.host == "rancher.example.com");
  CHECK(c.base_path == "/k8s/clusters/c-1");
  CHECK(c.token == "t");
}

TEST_CASE("kubeconfig: clear errors") {
  scratch_dir dir("kubeconfig-errors");
  auto write = [&](const std::string& user, const std::string& cluster = "server: https://h:6443",
                   const std::string& head = "current-context: c\n") {
    return dir.write("kc", "apiVersion: v1\nkind: Config\n" + head + "clusters:\n- name: k\n  cluster: {" + cluster +
                               "}\ncontexts:\n- {name: c, context: {cluster: k, user: u}}\nusers:\n- name: u\n  user: {" +
                               user + "}\n");
  };
  CHECK(error_of(write("exec: {command: aws}")).find("exec credential plugins are not supported") != std::string::npos);
  CHECK(error_of(write("auth-provider: {name: gcp}")).find("auth-provider is not supported") != std::string::npos);
  CHECK(error_of(write("client-certificate-data: Y2VydA==")).find("must be given together") != std::string::npos);
  CHECK(error_of(write("token: t", "server: http://h:8080")).find("plain http:// is not supported") != std::string::npos);
  CHECK(error_of(write("token: t", "server: https://h:99999")).find("invalid port") != std::string::npos);
  CHECK(error_of(write("token: t", "server: https://h, certificate-authority-data: '!!'")).find("invalid base64") !=
        std::string::npos);
  CHECK(error_of(write("token: t", "server: https://h, certificate-authority: missing.crt")).find("cannot read") !=
        std::string::npos);
  CHECK(error_of(write("token: t", "server: https://h", "")).find("no current-context") != std::string::npos);
  CHECK(error_of(dir.write("bad", "kind: Pod\n")).find("kind: Unsupported value: \"Pod\"") != std::string::npos);
  CHECK(error_of(dir.write("bad2", "- a\n- b\n")).find("not a kubeconfig") != std::string::npos);
  CHECK(error_of(dir.write("x", "") .parent_path() / "no-such-file").find("cannot read") != std::string::npos);
  // A referenced file is read up to the cap, never whole: /dev/zero would otherwise fill memory.
  CHECK(error_of(write("token: t", "server: https://h, certificate-authority: /dev/zero")).find("larger than 4 MiB") !=
        std::string::npos);
  CHECK(error_of("/dev/zero").find("larger than 4 MiB") != std::string::npos);
}

TEST_CASE("in-cluster configuration: env host/port, token file and ca.crt of the service account") {
  scratch_dir dir("in-cluster");
  dir.write("token", "sa-token\n");
  auto ca = dir.write("ca.crt", "CA");
  const auto account = ca.parent_path();
  auto c = in_cluster_config("10.96.0.1", "443", account);
  CHECK(c.server == "https://10.96.0.1:443");
  CHECK(c.host == "10.96.0.1");
  CHECK(c.token_file == account / "token");
  CHECK(c.ca_pem == "CA");
  auto v6 = in_cluster_config("fd00:10:96::1", "443", account);
  CHECK(v6.host == "fd00:10:96::1");
  CHECK(v6.server == "https://[fd00:10:96::1]:443");
  try {
    in_cluster_config("", "", account);
    FAIL("expected an error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined") !=
          std::string::npos);
  }
  CHECK_THROWS_AS(in_cluster_config("10.96.0.1", "443", account / "missing"), std::runtime_error);
}

TEST_CASE("base64: standard and URL alphabets, padding optional, garbage refused") {
  CHECK(base64_decode("aGVsbG8=") == "hello");
  CHECK(base64_decode("aGVsbG8") == "hello");
  CHECK(base64_decode("aGVs\nbG8=") == "hello");
  CHECK(base64_decode("") == "");
  CHECK_THROWS_AS(base64_decode("a$b="), std::runtime_error);
  CHECK_THROWS_AS(base64_decode("a"), std::runtime_error);
}
