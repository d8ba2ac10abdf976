// TLS settings of a Service: the native "tls" and "upstreamTLS" keys, the nodeport-proxy.io/tls-*
// and upstream-tls* annotations, relative paths, and the file checks (readable, PEM, a key that
// matches its certificate) that make a broken certificate a configuration problem.
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::any_problems;
using npp::config::test::fixture;
using npp::config::test::has_problem;
using npp::config::test::load_any;
using npp::config::test::problems_of;
using npp::config::test::scratch_dir;

namespace {

std::string tls_dir() { return fixture("tls").string(); }

// A native document with one TCP service and `fields` (JSON members with a trailing comma).
std::string native(std::string_view fields, std::string_view proto = "TCP") {
  return R"({"services": [{"name": "admin", )" + std::string(fields) +
         R"( "ports": [{"name": "https", "protocol": ")" + std::string(proto) + R"(", "port": 443, "nodePort": 30443}]}]})";
}

std::vector<std::string> file_problems(const scratch_dir& dir, const std::string& text) {
  auto path = dir.write("svc.json", text);
  return problems_of([&] { load_file(path, {}); });
}

std::string manifest(std::string_view annotations) {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: admin\n  namespace: ops\n  annotations:\n" +
         std::string(annotations) + "spec:\n  type: NodePort\n  ports:\n  - {name: https, port: 443, nodePort: 30443}\n";
}

}  // namespace

TEST_CASE("tls keys load with paths relative to the file's directory") {
  scratch_dir dir("tls-relative");
  for (auto name : {"cert.pem", "key.pem", "ca.pem"})
    std::filesystem::copy_file(fixture("tls") / name, std::filesystem::path(dir.write("x", "")).parent_path() / name);
  auto path = dir.write("svc.json", native(R"("tls": {"certFile": "cert.pem", "keyFile": "./key.pem",
      "clientCAFile": "ca.pem", "certificates": [{"certFile": "cert.pem", "keyFile": "key.pem"}]},
      "upstreamTLS": {"caFile": "ca.pem", "serverName": "pod.internal"},)"));
  auto snap = load_file(path, {});
  const auto& svc = snap.services.at(0);
  const auto base = std::filesystem::absolute(path).parent_path();
  REQUIRE(svc.tls.certificates.size() == 2);
  CHECK(svc.tls.certificates[0].cert_file == (base / "cert.pem").string());
  CHECK(svc.tls.certificates[0].key_file == (base / "key.pem").string());
  CHECK(svc.tls.client_ca_file == (base / "ca.pem").string());
  CHECK(svc.upstream_tls.enabled);
  CHECK(svc.upstream_tls.ca_file == (base / "ca.pem").string());
  CHECK(svc.upstream_tls.server_name == "pod.internal");
  CHECK_FALSE(svc.upstream_tls.insecure_skip_verify);
  CHECK(tls_files(snap) == std::vector<std::string>{(base / "cert.pem").string(), (base / "key.pem").string(),
                                                     (base / "ca.pem").string()});
}

TEST_CASE("absent tls keys mean plain TCP") {
  auto snap = load_any(native(""));
  CHECK_FALSE(snap.services.at(0).tls.enabled());
  CHECK_FALSE(snap.services.at(0).upstream_tls.enabled);
}

TEST_CASE("missing files, garbage and a key of another certificate are problems with their paths") {
  scratch_dir dir("tls-bad");
  const std::string d = tls_dir();
  auto p = file_problems(dir, native(R"("tls": {"certFile": ")" + d + R"(/cert.pem", "keyFile": ")" + d +
                                     R"(/other-key.pem", "clientCAFile": "missing-ca.pem"},)"));
  CHECK(has_problem(p, "services[0].tls.keyFile: Invalid value: \"" + d + "/other-key.pem\": the private key does not match the certificate"));
  CHECK(has_problem(p, "services[0].tls.clientCAFile: Invalid value: "));
  CHECK(has_problem(p, "missing-ca.pem\": cannot open file: No such file or directory"));
  p = file_problems(dir, native(R"("tls": {"certFile": ")" + d + R"(/garbage.pem", "keyFile": ")" + d + R"(/garbage.pem"},)"));
  CHECK(has_problem(p, "services[0].tls.certFile: Invalid value: \"" + d + "/garbage.pem\": no PEM certificate"));
  p = file_problems(dir, native(R"("tls": {"certFile": ")" + d + R"(/cert.pem", "keyFile": ")" + d + R"(/cert.pem"},)"));
  CHECK(has_problem(p, "services[0].tls.keyFile: Invalid value: \"" + d + "/cert.pem\": no unencrypted PEM private key"));
  p = file_problems(dir, native(R"("tls": {"certFile": ")" + d + R"(/cert.pem", "keyFile": ")" + d +
                                R"(/key.pem", "certificates": [{"certFile": ")" + d + R"(/cert.pem", "keyFile": ")" + d +
                                R"(/other-key.pem"}]},)"));
  CHECK(has_problem(p, "services[0].tls.certificates[0].keyFile: Invalid value"));
}

TEST_CASE("shape problems: required keys, unknown keys, a CRL without client CAs, UDP, insecure with a CA") {
  const std::string d = tls_dir();
  const std::string pair = R"("certFile": ")" + d + R"(/cert.pem", "keyFile": ")" + d + R"(/key.pem")";
  auto p = any_problems(native(R"("tls": {"certFile": "x.pem", "extra": 1},)"));
  CHECK(has_problem(p, "services[0].tls.keyFile: Required value"));
  CHECK(has_problem(p, "services[0].tls: unknown field \"extra\""));
  p = any_problems(native(R"("tls": {)" + pair + R"(, "crlFile": ")" + d + R"(/ca.pem"},)"));
  CHECK(has_problem(p, "services[0].tls.crlFile: Forbidden: a CRL applies to client certificates"));
  p = any_problems(native(R"("tls": {)" + pair + "},", "UDP"));
  CHECK(has_problem(p, "services[0].tls: Forbidden: TLS applies to TCP connections only"));
  p = any_problems(native(R"("upstreamTLS": {"caFile": ")" + d + R"(/ca.pem", "insecureSkipVerify": true},)"));
  CHECK(has_problem(p, "services[0].upstreamTLS.insecureSkipVerify: Forbidden: caFile is set"));
  p = any_problems(native(R"("upstreamTLS": {"insecureSkipVerify": "yes"},)"));
  CHECK(has_problem(p, "services[0].upstreamTLS.insecureSkipVerify: Invalid value: \"yes\": must be a boolean"));
  p = any_problems(native(R"("tls": {"certFile": "", "keyFile": "k"},)"));
  CHECK(has_problem(p, "services[0].tls.certFile: Required value"));
}

TEST_CASE("annotations: tls-cert-file and friends, SNI pairs, upstream-tls") {
  const std::string d = tls_dir();
  auto snap = load_any(manifest("    nodeport-proxy.io/tls-cert-file: " + d + "/cert.pem\n" +
                                "    nodeport-proxy.io/tls-key-file: " + d + "/key.pem\n" +
                                "    nodeport-proxy.io/tls-sni-certificates: \"" + d + "/cert.pem," + d + "/key.pem\"\n" +
                                "    nodeport-proxy.io/tls-client-ca-file: " + d + "/ca.pem\n" +
                                "    nodeport-proxy.io/upstream-tls: \"true\"\n" +
                                "    nodeport-proxy.io/upstream-tls-insecure-skip-verify: \"true\"\n"));
  const auto& svc = snap.services.at(0);
  REQUIRE(svc.tls.certificates.size() == 2);
  CHECK(svc.tls.certificates[1].key_file == d + "/key.pem");
  CHECK(svc.tls.client_ca_file == d + "/ca.pem");
  CHECK(svc.upstream_tls.enabled);
  CHECK(svc.upstream_tls.insecure_skip_verify);

  auto p = any_problems(manifest("    nodeport-proxy.io/tls-cert-file: " + d + "/cert.pem\n" +
                                 "    nodeport-proxy.io/tls-sni-certificates: \"only-one-file\"\n" +
                                 "    nodeport-proxy.io/upstream-tls-server-name: pod\n"));
  CHECK(has_problem(p, "Service ops/admin: metadata.annotations[nodeport-proxy.io/tls-key-file]: Required value"));
  CHECK(has_problem(p, "metadata.annotations[nodeport-proxy.io/tls-sni-certificates]: Invalid value: \"only-one-file\""));
  CHECK(has_problem(p, "metadata.annotations[nodeport-proxy.io/upstream-tls-server-name]: Forbidden: set \"nodeport-proxy.io/upstream-tls\""));
  p = any_problems(manifest("    nodeport-proxy.io/tls-cert-file: " + d + "/cert.pem\n" +
                            "    nodeport-proxy.io/tls-key-file: " + d + "/other-key.pem\n"));
  CHECK(has_problem(p, "Service ops/admin: metadata.annotations[nodeport-proxy.io/tls-key-file]: Invalid value: "));
  CHECK(has_problem(p, "does not match the certificate"));
  p = any_problems(manifest("    nodeport-proxy.io/tls-crt: x\n"));
  CHECK(has_problem(p, "unknown annotation \"nodeport-proxy.io/tls-crt\""));
  CHECK(has_problem(p, "\"nodeport-proxy.io/tls-cert-file\""));
}

TEST_CASE("ocspResponseFile: per certificate, relative to the file's directory, watched, contents left to the proxy") {
  scratch_dir dir("tls-ocsp");
  for (auto name : {"cert.pem", "key.pem"})
    std::filesystem::copy_file(fixture("tls") / name, std::filesystem::path(dir.write("x", "")).parent_path() / name);
  // The response file need not exist yet: stapling is optional and a broken or missing response
  // is the proxy's warning, never a configuration problem.
  auto path = dir.write("svc.json", native(R"("tls": {"certFile": "cert.pem", "keyFile": "key.pem",
      "ocspResponseFile": "ocsp/cert.der",
      "certificates": [{"certFile": "cert.pem", "keyFile": "key.pem"},
                       {"certFile": "cert.pem", "keyFile": "key.pem", "ocspResponseFile": "/abs/other.der"}]},)"));
  auto snap = load_file(path, {});
  const auto base = std::filesystem::absolute(path).parent_path();
  const auto& certs = snap.services.at(0).tls.certificates;
  REQUIRE(certs.size() == 3);
  CHECK(certs[0].ocsp_response_file == (base / "ocsp/cert.der").string());
  CHECK(certs[1].ocsp_response_file.empty());
  CHECK(certs[2].ocsp_response_file == "/abs/other.der");
  CHECK(tls_files(snap) == std::vector<std::string>{(base / "cert.pem").string(), (base / "key.pem").string(),
                                                     (base / "ocsp/cert.der").string(), "/abs/other.der"});
}

TEST_CASE("ocspResponseFile: wrong type, empty, unknown sibling keys") {
  const std::string d = tls_dir();
  const std::string pair = R"("certFile": ")" + d + R"(/cert.pem", "keyFile": ")" + d + R"(/key.pem")";
  auto p = any_problems(native(R"("tls": {)" + pair + R"(, "ocspResponseFile": 42},)"));
  CHECK(has_problem(p, "services[0].tls.ocspResponseFile: Invalid value: 42: must be a string"));
  p = any_problems(native(R"("tls": {)" + pair + R"(, "ocspResponseFile": ""},)"));
  CHECK(has_problem(p, "services[0].tls.ocspResponseFile: Required value: a file name"));
  p = any_problems(native(R"("tls": {)" + pair + R"(, "certificates": [{)" + pair + R"(, "ocspResponseFile": true}]},)"));
  CHECK(has_problem(p, "services[0].tls.certificates[0].ocspResponseFile: Invalid value: true: must be a string"));
  p = any_problems(native(R"("tls": {)" + pair + R"(, "ocspFile": "x.der"},)"));
  CHECK(has_problem(p, "services[0].tls: unknown field \"ocspFile\""));
}

TEST_CASE("annotations: tls-ocsp-response-file and a third item in tls-sni-certificates") {
  const std::string d = tls_dir();
  auto snap = load_any(manifest("    nodeport-proxy.io/tls-cert-file: " + d + "/cert.pem\n" +
                                "    nodeport-proxy.io/tls-key-file: " + d + "/key.pem\n" +
                                "    nodeport-proxy.io/tls-ocsp-response-file: /etc/ocsp/default.der\n" +
                                "    nodeport-proxy.io/tls-sni-certificates: \"" + d + "/cert.pem," + d +
                                "/key.pem, /etc/ocsp/sni.der;" + d + "/cert.pem," + d + "/key.pem\"\n"));
  const auto& certs = snap.services.at(0).tls.certificates;
  REQUIRE(certs.size() == 3);
  CHECK(certs[0].ocsp_response_file == "/etc/ocsp/default.der");
  CHECK(certs[1].ocsp_response_file == "/etc/ocsp/sni.der");
  CHECK(certs[2].ocsp_response_file.empty());

  auto p = any_problems(manifest("    nodeport-proxy.io/tls-ocsp-response-file: /etc/ocsp/default.der\n"));
  CHECK(has_problem(p, "metadata.annotations[nodeport-proxy.io/tls-ocsp-response-file]: Forbidden: TLS is off"));
  p = any_problems(manifest("    nodeport-proxy.io/tls-cert-file: " + d + "/cert.pem\n" +
                            "    nodeport-proxy.io/tls-key-file: " + d + "/key.pem\n" +
                            "    nodeport-proxy.io/tls-ocsp-response-file: \" \"\n" +
                            "    nodeport-proxy.io/tls-sni-certificates: \"a,b,c,d\"\n"));
  CHECK(has_problem(p, "metadata.annotations[nodeport-proxy.io/tls-ocsp-response-file]: Required value: a file name"));
  CHECK(has_problem(p, "metadata.annotations[nodeport-proxy.io/tls-sni-certificates]: Invalid value: \"a,b,c,d\": must be "
                       "\"CERT_FILE,KEY_FILE\" or \"CERT_FILE,KEY_FILE,OCSP_RESPONSE_FILE\""));
}
