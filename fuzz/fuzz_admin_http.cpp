// HTTP requests to the health/metrics server: admin_server::respond() runs Beast's request
// parser with the server's limits (8 KiB header, no body), the router and the response writer,
// as a connection does, without sockets. The first input byte picks the role (health, metrics,
// both). Checks: every answer is a well-formed HTTP/1.x response with an expected status, a
// Content-Length equal to the body (GET) or the GET body's length (HEAD), and never a 500.
#include <spdlog/spdlog.h>

#include <cstring>
#include <string>

#include "fuzz/fuzz_support.hpp"
#include "proxy/admin_server.hpp"

using npp::proxy::admin_server;

namespace {

npp::proxy::status_report report() {
  npp::proxy::status_report r;
  r.version = "0.0.0-fuzz";
  r.started = std::chrono::system_clock::now() - std::chrono::seconds(60);
  r.last_applied = r.started;
  r.generation = 1;
  r.source = "endpoints.json";
  r.ready = true;
  r.workers = 1;
  r.max_connections = 100;
  r.bind_addresses = {"127.0.0.1"};
  npp::proxy::port_status web;
  web.service = "default/web";
  web.port_name = "http";
  web.port = 80;
  web.node_port = 30080;
  web.listening = true;
  web.endpoints = {{"10.0.0.5:8080", true, true, false, "node-1", true, 0, false}};
  web.allow_source_ranges = {"10.0.0.0/8"};
  r.ports.push_back(web);
  return r;
}

std::size_t header_value(const std::string& head, const char* name) {
  const auto at = head.find(std::string("\r\n") + name + ": ");
  FUZZ_CHECK(at != std::string::npos, "no %s header", name);
  return std::stoul(head.substr(at + std::strlen(name) + 4));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (spdlog::set_level(spdlog::level::off), true);
  (void)quiet;
  if (size < 1) return 0;
  static const npp::proxy::admin_hooks hooks{[] { return report(); }};
  const auto role = static_cast<admin_server::role>(data[0] % 3);
  const auto request = npp::fuzz::as_text(data + 1, size - 1);
  const std::string response = admin_server::respond(role, hooks, request);
  static const bool verbose = std::getenv("NPP_FUZZ_VERBOSE") != nullptr;  // replay: show the answers
  if (verbose) std::fprintf(stderr, "%.300s\n---\n", response.c_str());
  if (response.empty()) return 0;  // closed without an answer: nothing or half a request
  FUZZ_CHECK(response.rfind("HTTP/1.1 ", 0) == 0 || response.rfind("HTTP/1.0 ", 0) == 0, "status line: %.40s",
             response.c_str());
  const int status = std::stoi(response.substr(9, 3));
  FUZZ_CHECK(status == 200 || status == 400 || status == 404 || status == 405 || status == 413 || status == 431 ||
                 status == 503,
             "status %d", status);
  const auto end = response.find("\r\n\r\n");
  FUZZ_CHECK(end != std::string::npos, "no end of header");
  const std::string head = response.substr(0, end + 2);
  const std::size_t body = response.size() - end - 4;
  const std::size_t length = header_value(head, "Content-Length");
  FUZZ_CHECK(body == length || body == 0, "Content-Length %zu, body %zu bytes", length, body);
  // Only a HEAD request gets headers without the body; Beast accepts only "HEAD" as its method.
  if (body != length) FUZZ_CHECK(request.rfind("HEAD ", 0) == 0, "body missing for a non-HEAD request");
  return 0;
}
