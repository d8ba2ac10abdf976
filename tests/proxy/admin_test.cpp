// Observability: the admin HTTP server (routes, limits), /metrics text, the status page and
// `check`. The admin server runs on a local io_context driven with run_for in a bounded loop;
// clients are blocking loopback sockets on a helper thread.
#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "proxy/admin_server.hpp"
#include "proxy/check.hpp"
#include "proxy/metrics_text.hpp"
#include "proxy/server.hpp"
#include "proxy/status_page.hpp"
#include "test_net.hpp"

using namespace npp;
using namespace npp::test;
using proxy::admin_server;

namespace {

proxy::status_report fake_report(bool ready = true) {
  proxy::status_report r;
  r.version = "9.9.9-test";
  r.started = std::chrono::system_clock::now() - std::chrono::seconds(42);
  r.last_applied = ready ? std::chrono::system_clock::now() - std::chrono::seconds(5) : std::chrono::system_clock::time_point{};
  r.generation = ready ? 3 : 0;
  r.reloads_total = 4;
  r.reload_failures_total = 1;
  r.last_reload_ok = false;
  r.last_reload_error = "endpoints.json: services[0].ports[0].nodePort: 99 is outside 30000-32767";
  r.source = "endpoints.json";
  r.ready = ready;
  r.workers = 2;
  r.max_connections = 1000;
  r.connections_active = 7;
  r.bind_addresses = {"127.0.0.1"};
  proxy::port_status web;
  web.service = "default/web";
  web.port_name = "http";
  web.port = 80;
  web.node_port = 30080;
  web.listening = true;
  web.endpoints = {{"10.0.0.5:8080", true, true, false, "node-1", true, 0, false},
                   {"10.0.0.6:8080", false, true, true, "node-2", false, 3, true}};
  // Distinct values so a mix-up between counters shows.
  std::uint64_t v = 11;
#define NPP_FILL(name, help) web.counters.name = v++;
  NPP_PORT_COUNTERS(NPP_FILL)
#undef NPP_FILL
  web.counters.connections_active = 7;
  proxy::port_status dns;
  dns.service = "kube-system/dns";
  dns.port_name = "dns";
  dns.proto = config::protocol::udp;
  dns.port = 53;
  dns.node_port = 30053;
  dns.bind_error = "address already in use";
  r.ports = {web, dns};
  return r;
}

struct response {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string body;
};

response parse_response(const std::string& raw) {
  response r;
  auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  std::istringstream head(raw.substr(0, end));
  std::string line;
  std::getline(head, line);
  if (line.size() > 12) r.status = std::stoi(line.substr(9, 3));
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  r.body = raw.substr(end + 4);
  return r;
}

/// Runs `client` on a thread while driving ctx; bounded.
template <class F>
auto drive(boost::asio::io_context& ctx, F client) {
  auto fut = std::async(std::launch::async, client);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fut.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready &&
         std::chrono::steady_clock::now() < deadline)
    ctx.run_for(std::chrono::milliseconds(5));
  REQUIRE(fut.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready);
  return fut.get();
}

/// Sends raw bytes on a new connection and reads until the server closes.
std::string exchange(boost::asio::io_context& ctx, int port, const std::string& request) {
  return drive(ctx, [port, request] {
    int fd = connect_to(port);
    if (fd < 0) return std::string("connect failed");
    fd_guard g(fd);
    send_all(fd, request);
    ::shutdown(fd, SHUT_WR);  // all requests sent: lets the server finish without waiting
    return read_all(fd);
  });
}

response get(boost::asio::io_context& ctx, int port, const std::string& target, const std::string& method = "GET") {
  return parse_response(exchange(ctx, port, method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
}

struct fixture {
  boost::asio::io_context ctx{1};
  proxy::status_report report = fake_report();
  std::unique_ptr<admin_server> srv;
  explicit fixture(admin_server::role r = admin_server::role::both) {
    srv = std::make_unique<admin_server>(ctx, "127.0.0.1:0", r, proxy::admin_hooks{[this] { return report; }});
  }
  response get(const std::string& target, const std::string& method = "GET") {
    return ::get(ctx, srv->port(), target, method);
  }
};

/// Minimal exposition-format checker: every sample line is `name{labels} value`, each family
/// has exactly one HELP and one TYPE before its samples, families are contiguous.
std::string metrics_format_problems(const std::string& text, std::map<std::string, double>* samples = nullptr) {
  static const std::regex sample_re(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$)");
  static const std::regex help_re(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  static const std::regex type_re(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::set<std::string> helped, typed, finished;
  std::string current, problems;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help_re)) {
      if (helped.count(m[1])) problems += "second HELP for " + m[1].str() + "\n";
      if (!current.empty()) finished.insert(current);
      current = m[1];
      helped.insert(current);
    } else if (std::regex_match(line, m, type_re)) {
      if (typed.count(m[1])) problems += "second TYPE for " + m[1].str() + "\n";
      typed.insert(m[1]);
    } else if (std::regex_match(line, m, sample_re)) {
      std::string name = m[1];
      std::string family = name;
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (!helped.count(family) && family.size() > std::strlen(suffix) &&
            family.compare(family.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
          family = family.substr(0, family.size() - std::strlen(suffix));
      if (!helped.count(family) || !typed.count(family)) problems += "no HELP/TYPE before " + line + "\n";
      if (family != current || finished.count(family)) problems += "family not contiguous: " + line + "\n";
      if (samples) (*samples)[line.substr(0, line.rfind(' '))] = std::stod(line.substr(line.rfind(' ') + 1));
    } else {
      problems += "bad line: " + line + "\n";
    }
  }
  return problems;
}

const std::string web_labels = R"(service="default/web",port="http",protocol="TCP",node_port="30080")";

}  // namespace

TEST_CASE("admin bind addresses must be IP literals with a port") {
  boost::asio::io_context ctx{1};
  auto make = [&](const std::string& a) { admin_server s(ctx, a, admin_server::role::both, {}); return s.port(); };
  CHECK(make("127.0.0.1:0") > 0);
  CHECK_THROWS_WITH_AS(make("localhost:10356"), doctest::Contains("not an IP address literal"), std::runtime_error);
  CHECK_THROWS_WITH_AS(make("127.0.0.1"), doctest::Contains("expected IP:PORT"), std::runtime_error);
  CHECK_THROWS_WITH_AS(make("127.0.0.1:99999"), doctest::Contains("port must be"), std::runtime_error);
  CHECK_THROWS_WITH_AS(make(":10356"), doctest::Contains("missing IP address"), std::runtime_error);
  CHECK_THROWS_WITH_AS(make("::1:10356"), doctest::Contains("brackets"), std::runtime_error);
  // The port is taken: a clear error, not a crash.
  admin_server first(ctx, "127.0.0.1:0", admin_server::role::both, {});
  CHECK_THROWS_WITH_AS(make("127.0.0.1:" + std::to_string(first.port())), doctest::Contains("cannot listen"), std::runtime_error);
  fd_guard v6(::socket(AF_INET6, SOCK_STREAM, 0));
  if (v6.fd >= 0) CHECK(make("[::1]:0") > 0);
}

TEST_CASE("livez readyz and healthz answer like kube-proxy and the apiserver") {
  fixture f(admin_server::role::health);
  auto live = f.get("/livez");
  CHECK(live.status == 200);
  CHECK(live.body == "ok");
  CHECK(live.headers["content-type"] == "text/plain; charset=utf-8");
  auto ready = f.get("/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == "ok");
  auto verbose = f.get("/readyz?verbose");
  CHECK(verbose.status == 200);
  CHECK(verbose.body.find("[+]config ok\n") != std::string::npos);
  CHECK(verbose.body.find("readyz check passed") != std::string::npos);
  auto health = f.get("/healthz");
  CHECK(health.status == 200);
  CHECK(health.headers["content-type"] == "application/json");
  static const std::regex body_re(
      R"(^\{"lastUpdated": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","currentTime": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "nodeEligible": true\}$)");
  CHECK_MESSAGE(std::regex_match(health.body, body_re), health.body);
  auto j = nlohmann::json::parse(health.body);
  CHECK(j.size() == 3);
  CHECK(j["nodeEligible"] == true);
  CHECK(j["lastUpdated"] == proxy::format_rfc3339(f.report.last_applied));

  SUBCASE("not ready before the first configuration") {
    f.report = fake_report(false);
    auto r = f.get("/readyz");
    CHECK(r.status == 503);
    CHECK(r.body.find("[-]config failed: no configuration applied yet") != std::string::npos);
    CHECK(r.body.find("readyz check failed") != std::string::npos);
    CHECK(f.get("/healthz").status == 503);
    CHECK(f.get("/livez").status == 200);
  }
  SUBCASE("not ready while draining") {
    f.report.ready = false;
    f.report.draining = true;
    auto r = f.get("/readyz?verbose=1");
    CHECK(r.status == 503);
    CHECK(r.body.find("[+]config ok") != std::string::npos);
    CHECK(r.body.find("[-]shutdown failed: draining") != std::string::npos);
    CHECK(f.get("/healthz").status == 503);
  }
}

TEST_CASE("each role serves only its routes and unknown paths are 404") {
  fixture health(admin_server::role::health);
  CHECK(health.get("/metrics").status == 404);
  CHECK(health.get("/status").status == 404);
  CHECK(health.get("/status.json").status == 404);
  CHECK(health.get("/").status == 200);
  fixture metrics(admin_server::role::metrics);
  CHECK(metrics.get("/livez").status == 404);
  CHECK(metrics.get("/healthz").status == 404);
  auto m = metrics.get("/metrics");
  CHECK(m.status == 200);
  CHECK(m.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metrics.get("/status").headers["content-type"] == "text/html; charset=utf-8");
  CHECK(metrics.get("/status.json").headers["content-type"] == "application/json");
  fixture both;
  for (const char* path : {"/livez", "/readyz", "/healthz", "/metrics", "/status", "/status.json"})
    CHECK_MESSAGE(both.get(path).status == 200, path);
  CHECK(both.get("/nope").status == 404);
  CHECK(both.get("/metrics/x").status == 404);
}

TEST_CASE("only GET and HEAD are allowed and HEAD sends no body") {
  fixture f;
  auto post = f.get("/metrics", "POST");
  CHECK(post.status == 405);
  CHECK(post.headers["allow"] == "GET, HEAD");
  CHECK(f.get("/livez", "DELETE").status == 405);
  auto full = f.get("/status.json");
  auto head = f.get("/status.json", "HEAD");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(std::stoul(head.headers["content-length"]) > 100);
}

TEST_CASE("an oversized header gets 431 and a request body gets 413") {
  fixture f;
  auto big = parse_response(exchange(f.ctx, f.srv->port(),
                                     "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n"));
  CHECK(big.status == 431);
  CHECK(big.headers["connection"] == "close");
  auto body = parse_response(exchange(f.ctx, f.srv->port(),
                                      "GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
  CHECK(body.status == 413);
  auto chunked = parse_response(exchange(f.ctx, f.srv->port(),
                                         "GET /livez HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  CHECK(chunked.status == 413);
  auto garbage = parse_response(exchange(f.ctx, f.srv->port(), "NOT HTTP AT ALL\r\n\r\n"));
  CHECK(garbage.status == 400);
}

TEST_CASE("keep-alive serves several requests on one connection") {
  fixture f;
  std::string raw = exchange(f.ctx, f.srv->port(),
                             "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::size_t count = 0;
  for (auto pos = raw.find("HTTP/1.1 "); pos != std::string::npos; pos = raw.find("HTTP/1.1 ", pos + 1)) ++count;
  CHECK(count == 3);
  CHECK(raw.find("HTTP/1.1 404") != std::string::npos);
}

TEST_CASE("admin connections beyond the cap are closed at accept") {
  fixture f;
  std::vector<fd_guard> held;
  for (int i = 0; i < 32; ++i) {
    int fd = connect_to(f.srv->port());
    REQUIRE(fd >= 0);
    held.emplace_back(fd);
  }
  // Let the server accept all of them.
  for (int i = 0; i < 40; ++i) f.ctx.run_for(std::chrono::milliseconds(5));
  CHECK(exchange(f.ctx, f.srv->port(), "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").empty());
  held.pop_back();  // one closes: the server notices EOF and frees its slot
  for (int i = 0; i < 40; ++i) f.ctx.run_for(std::chrono::milliseconds(5));
  CHECK(f.get("/livez").status == 200);
}

TEST_CASE("close stops accepting and closes open admin connections") {
  fixture f;
  int fd = connect_to(f.srv->port());
  REQUIRE(fd >= 0);
  fd_guard g(fd);
  for (int i = 0; i < 20; ++i) f.ctx.run_for(std::chrono::milliseconds(5));
  f.srv->close();
  auto got = drive(f.ctx, [fd] { return read_all(fd); });
  CHECK(got.empty());
  CHECK(connect_to(f.srv->port()) < 0);
}

TEST_CASE("metrics text is well-formed and counts equal the report") {
  auto r = fake_report();
  std::string text = proxy::render_metrics(r);
  std::map<std::string, double> samples;
  std::string problems = metrics_format_problems(text, &samples);
  CHECK_MESSAGE(problems.empty(), problems);
  CHECK(samples["nodeport_proxy_connections_accepted_total{" + web_labels + "}"] == r.ports[0].counters.connections_accepted);
  CHECK(samples["nodeport_proxy_connections_rejected_total{" + web_labels + ",reason=\"limit\"}"] ==
        r.ports[0].counters.connections_rejected_limit);
  CHECK(samples["nodeport_proxy_connections_rejected_total{" + web_labels + ",reason=\"no_endpoints\"}"] ==
        r.ports[0].counters.connections_rejected_no_endpoints);
  CHECK(samples["nodeport_proxy_connections_rejected_total{" + web_labels + ",reason=\"connect_failed\"}"] ==
        r.ports[0].counters.connections_connect_failed);
  CHECK(samples["nodeport_proxy_bytes_total{" + web_labels + ",direction=\"client_to_upstream\"}"] ==
        r.ports[0].counters.bytes_client_to_upstream);
  CHECK(samples["nodeport_proxy_bytes_total{" + web_labels + ",direction=\"upstream_to_client\"}"] ==
        r.ports[0].counters.bytes_upstream_to_client);
  CHECK(samples["nodeport_proxy_connections_closed_total{" + web_labels + ",reason=\"upstream_reset\"}"] ==
        r.ports[0].counters.closed_upstream_reset);
  CHECK(samples["nodeport_proxy_connections_active{" + web_labels + "}"] == 7);
  CHECK(samples["nodeport_proxy_endpoints{" + web_labels + ",state=\"ready\"}"] == 1);
  CHECK(samples["nodeport_proxy_endpoints{" + web_labels + ",state=\"terminating\"}"] == 1);
  CHECK(samples["nodeport_proxy_endpoints{" + web_labels + ",state=\"failing\"}"] == 1);
  CHECK(samples["nodeport_proxy_endpoints{" + web_labels + ",state=\"in_use\"}"] == 1);
  CHECK(samples["nodeport_proxy_port_bind_error{service=\"kube-system/dns\",port=\"dns\",protocol=\"UDP\",node_port=\"30053\"}"] == 1);
  CHECK(samples["nodeport_proxy_config_reloads_total{result=\"success\"}"] == 3);
  CHECK(samples["nodeport_proxy_config_reloads_total{result=\"failure\"}"] == 1);
  CHECK(samples["nodeport_proxy_config_last_reload_successful"] == 0);
  CHECK(samples["nodeport_proxy_config_generation"] == 3);
  CHECK(samples["nodeport_proxy_build_info{version=\"9.9.9-test\"}"] == 1);
  CHECK(samples["nodeport_proxy_max_connections"] == 1000);
  CHECK(samples["nodeport_proxy_process_connections_active"] == 7);
  CHECK(samples["nodeport_proxy_config_last_applied_timestamp_seconds"] > 1.6e9);
  for (const char* m : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                        "process_open_fds", "process_max_fds", "process_start_time_seconds"})
    CHECK_MESSAGE(samples.count(m) == 1, m);
  CHECK(samples["process_resident_memory_bytes"] > 1e6);
  CHECK(samples["process_start_time_seconds"] > 1.6e9);

  // Every NPP_PORT_COUNTERS entry is exported (udp_* ones for UDP ports only, tls_* and
  // upstream_tls_* for TLS ports only): the web port's counters sum to the same total.
  double sum_report = 0, sum_metrics = 0;
#define NPP_SUM(name, help)                                                                                 \
  if (std::string_view(#name).substr(0, 4) != "udp_" && std::string_view(#name).substr(0, 4) != "tls_" && \
      std::string_view(#name).substr(0, 13) != "upstream_tls_")                                             \
    sum_report += static_cast<double>(r.ports[0].counters.name);
  NPP_PORT_COUNTERS(NPP_SUM)
#undef NPP_SUM
  for (const auto& [key, value] : samples)
    if (key.find("_total{" + web_labels) != std::string::npos) sum_metrics += value;
  CHECK(sum_metrics == sum_report);
  CHECK(text.find("nodeport_proxy_udp_datagrams_total{" + web_labels) == std::string::npos);
  CHECK(text.find(R"(nodeport_proxy_udp_datagrams_total{service="kube-system/dns")") != std::string::npos);
  // Endpoint (pod) addresses are not labels, and nothing identifies a client.
  CHECK(text.find("10.0.0.") == std::string::npos);
  CHECK(text.find("client=") == std::string::npos);
}

TEST_CASE("counters map to Prometheus names and unmapped counters are still exported") {
  CHECK(proxy::counter_metric_name("connections_accepted") == "nodeport_proxy_connections_accepted_total");
  CHECK(proxy::counter_metric_name("connections_rejected_limit") == R"(nodeport_proxy_connections_rejected_total{reason="limit"})");
  CHECK(proxy::counter_metric_name("bytes_upstream_to_client") ==
        R"(nodeport_proxy_bytes_total{direction="upstream_to_client"})");
  CHECK(proxy::counter_metric_name("closed_idle_timeout") == R"(nodeport_proxy_connections_closed_total{reason="idle_timeout"})");
  CHECK(proxy::counter_metric_name("tls_handshake_errors") == "nodeport_proxy_tls_handshake_errors_total");
  // Every counter in the list has a distinct exported identity (no two collapse into one sample).
  std::set<std::string> names;
#define NPP_NAME(name, help) names.insert(proxy::counter_metric_name(#name));
  NPP_PORT_COUNTERS(NPP_NAME)
#undef NPP_NAME
  std::size_t n = 0;
#define NPP_COUNT(name, help) ++n;
  NPP_PORT_COUNTERS(NPP_COUNT)
#undef NPP_COUNT
  CHECK(names.size() == n);
  for (const auto& name : names) CHECK_MESSAGE(name.rfind("nodeport_proxy_", 0) == 0, name);
}

TEST_CASE("metrics label values are escaped") {
  auto r = fake_report();
  r.ports[0].service = "ns/we\"ird\\na\nme";
  std::string text = proxy::render_metrics(r);
  CHECK(text.find(R"(service="ns/we\"ird\\na\nme")") != std::string::npos);
  CHECK(metrics_format_problems(text).empty());
  r.ports.clear();  // no ports: every family still has HELP and TYPE
  std::string empty = proxy::render_proxy_metrics(r);
  CHECK(metrics_format_problems(empty).empty());
  CHECK(empty.find("# TYPE nodeport_proxy_bytes_total counter") != std::string::npos);
}

TEST_CASE("the status page escapes text from the report and status json carries the same data") {
  auto r = fake_report();
  r.ports[0].service = "default/<script>alert(1)</script>";
  r.version = "<b>v</b>";
  std::string page = proxy::render_status_html(r);
  CHECK(page.find("<script>alert") == std::string::npos);
  CHECK(page.find("</script>alert") == std::string::npos);
  CHECK(page.find("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e") != std::string::npos);
  CHECK(page.find("&lt;b&gt;v&lt;/b&gt;") != std::string::npos);
  CHECK(page.find("http://") == std::string::npos);  // no external assets
  CHECK(page.find("https://") == std::string::npos);
  CHECK(proxy::html_escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&#39;");

  auto j = nlohmann::json::parse(proxy::render_status_json(r));
  CHECK(j["version"] == "<b>v</b>");
  CHECK(j["ready"] == true);
  CHECK(j["config"]["generation"] == 3);
  CHECK(j["config"]["last_reload_ok"] == false);
  CHECK(j["config"]["last_reload_error"].get<std::string>().find("outside") != std::string::npos);
  REQUIRE(j["ports"].size() == 2);
  auto& web = j["ports"][0];
  CHECK(web["service"] == "default/<script>alert(1)</script>");
  CHECK(web["state"] == "listening");
  CHECK(web["counters"]["connections_accepted"] == r.ports[0].counters.connections_accepted);
  CHECK(web["counters"].size() == j["counter_help"].size());
  CHECK(web["endpoints"][0]["state"] == "ready");
  CHECK(web["endpoints"][1]["state"] == "serving");
  CHECK(web["endpoints"][1]["failing"] == true);
  CHECK(j["ports"][1]["state"] == "bind_error");
  CHECK(j["ports"][1]["protocol"] == "UDP");
}

namespace {

proxy::settings check_settings() {
  proxy::settings s;
  s.workers = 1;
  s.nodeport_addresses = {*config::cidr::parse("127.0.0.1/32")};
  s.connect_timeout = std::chrono::milliseconds(500);
  s.shutdown_grace_period = std::chrono::milliseconds(100);
  return s;
}

config::service one_service(const std::string& name, int node_port, std::vector<config::host_port> eps) {
  config::service svc;
  svc.name = name;
  config::service_port p;
  p.name = "http";
  p.port = 80;
  p.node_port = node_port;
  for (auto& e : eps) p.endpoints.push_back(config::endpoint{e});
  svc.ports.push_back(p);
  return svc;
}

/// A loopback port that is bound but not listening: connects are refused.
struct closed_port {
  fd_guard fd{::socket(AF_INET, SOCK_STREAM, 0)};
  int port = 0;
  closed_port() {
    auto a = loopback(0);
    ::bind(fd.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd.fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  config::host_port address() const { return *config::host_port::parse("127.0.0.1:" + std::to_string(port)); }
};

}  // namespace

TEST_CASE("check probes a live proxy and diagnoses each broken service") {
  backend be([](int fd) { send_all(fd, "hi"); });
  closed_port dead;
  int np_web = free_port(), np_broken = free_port(), np_empty = free_port();
  config::snapshot snap;
  snap.source = "test";
  snap.range = {1024, 65535};
  snap.services = {one_service("web", np_web, {be.address()}), one_service("broken", np_broken, {dead.address()}),
                   one_service("empty", np_empty, {})};
  proxy::server srv(check_settings(), "node-1");
  REQUIRE(srv.apply(snap).errors.empty());
  snap.services.push_back(one_service("outside", 1000, {be.address()}));  // never applied

  proxy::check_options opts;
  opts.timeout = std::chrono::milliseconds(1000);
  std::ostringstream text;
  CHECK(proxy::run_check(snap, opts, text) == 1);
  const std::string t = text.str();
  INFO(t);
  auto line_with = [&](const std::string& a, const std::string& b) {
    std::istringstream in(t);
    std::string line;
    while (std::getline(in, line))
      if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) return line;
    return std::string();
  };
  CHECK(line_with("default/web:http", "127.0.0.1:" + std::to_string(np_web)).find("OPEN") != std::string::npos);
  CHECK(line_with("default/web:http", be.address().str()).find("OPEN") != std::string::npos);
  CHECK(line_with("default/broken:http", dead.address().str()).find("CLOSED") != std::string::npos);
  CHECK(line_with("default/empty:http", "127.0.0.1:" + std::to_string(np_empty)).find("CLOSED") != std::string::npos);
  CHECK(line_with("default/broken:http", "[endpoint_port_closed]").find("endpoint port closed") != std::string::npos);
  CHECK(!line_with("default/empty:http", "[no_endpoints]").empty());
  CHECK(line_with("default/outside:http", "[out_of_range]").find("1024-65535") != std::string::npos);
  CHECK(line_with("default/web:http", "[").empty());  // the healthy one has no diagnosis
  CHECK(t.find("4 problem(s) found") == std::string::npos);  // outside: out_of_range only (its port is closed too)
  CHECK(t.find("3 problem(s) found") != std::string::npos);

  opts.json = true;
  std::ostringstream js;
  CHECK(proxy::run_check(snap, opts, js) == 1);
  auto j = nlohmann::json::parse(js.str());
  CHECK(j["ok"] == false);
  CHECK(j["problems"] == 3);
  CHECK(j["node_port_range"] == "1024-65535");
  REQUIRE(j["ports"].size() == 4);
  auto& web = j["ports"][0];
  CHECK(web["service"] == "default/web");
  CHECK(web["ok"] == true);
  CHECK(web["node_port"] == np_web);
  CHECK(web["target_ports"][0] == be.port());
  CHECK(web["probes"][0]["kind"] == "node_port");
  CHECK(web["probes"][0]["result"] == "OPEN");
  CHECK(web["probes"][0]["latency_ms"].get<double>() >= 0);
  CHECK(web["probes"][1]["kind"] == "endpoint");
  CHECK(web["probes"][1]["result"] == "OPEN");
  CHECK(j["ports"][1]["diagnoses"][0]["code"] == "endpoint_port_closed");
  // The proxy listens (it may reset at once once it knows the endpoint fails): the endpoint is the problem.
  CHECK((j["ports"][1]["probes"][0]["result"] == "OPEN" || j["ports"][1]["probes"][0]["result"] == "RESET"));
  CHECK(j["ports"][1]["diagnoses"].size() == 1);
  CHECK(j["ports"][2]["diagnoses"][0]["code"] == "no_endpoints");
  CHECK(j["ports"][3]["diagnoses"][0]["code"] == "out_of_range");
  CHECK(j["ports"][3]["in_range"] == false);

  SUBCASE("only the healthy service: exit 0") {
    snap.services = {snap.services[0]};
    std::ostringstream ok;
    opts.json = false;
    CHECK(proxy::run_check(snap, opts, ok) == 0);
    CHECK(ok.str().find("OK: 2 probe(s), all reachable") != std::string::npos);
  }
  SUBCASE("nothing listening: the proxy does not serve a port that has endpoints") {
    config::snapshot other;
    other.range = {1024, 65535};
    other.services = {one_service("web", free_port(), {be.address()})};
    std::ostringstream out;
    opts.json = true;
    CHECK(proxy::run_check(other, opts, out) == 1);
    auto k = nlohmann::json::parse(out.str());
    CHECK(k["ports"][0]["diagnoses"][0]["code"] == "nothing_listening");
  }
  SUBCASE("UDP ports are listed but not probed") {
    config::snapshot udp;
    udp.range = {1024, 65535};
    udp.services = {one_service("dns", free_port(), {be.address()})};
    udp.services.edit(0).ports[0].proto = config::protocol::udp;
    std::ostringstream out;
    opts.json = true;
    CHECK(proxy::run_check(udp, opts, out) == 0);
    auto k = nlohmann::json::parse(out.str());
    CHECK(k["ports"][0]["probes"][0]["result"] == "n/a");
  }
  SUBCASE("node addresses must be IP literals") {
    opts.node_addresses = {"localhost"};
    std::ostringstream out;
    CHECK_THROWS_AS(proxy::run_check(snap, opts, out), std::invalid_argument);
  }
}

TEST_CASE("check reports every probe of a large snapshot with bounded concurrency") {
  // 60 ports where nothing listens (refused at once) and their endpoints, 16 connects in flight:
  // every one is reported, in snapshot order.
  config::snapshot snap;
  snap.range = {1024, 65535};
  closed_port dead;
  for (int i = 0; i < 60; ++i) snap.services.push_back(one_service("s" + std::to_string(i), free_port(), {dead.address()}));
  proxy::check_options opts;
  opts.json = true;
  opts.concurrency = 16;
  std::ostringstream out;
  auto t0 = std::chrono::steady_clock::now();
  CHECK(proxy::run_check(snap, opts, out) == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  auto j = nlohmann::json::parse(out.str());
  CHECK(j["ports"].size() == 60);
  for (auto& p : j["ports"]) CHECK(p["probes"][1]["result"] == "CLOSED");
}
