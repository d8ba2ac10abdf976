// The admin HTTP server: Boost.Beast HTTP/1.1 on the control thread's io_context, callback
// style (enable_shared_from_this, `self` captured in every handler) like the data plane.
//
//   acceptor --accept--> connection: read request (header <= 8 KiB, no body, 10 s)
//                                      -> route -> write response (10 s) -> read next (keep-alive)
//
// Hardening, because /healthz listens on 0.0.0.0 by default: only GET and HEAD; a request body
// or an oversized header is answered with 413/431 and the connection closed; every read and
// write has a deadline; at most max_connections admin connections are open at once (more are
// closed at accept). Nothing here blocks: the status callback builds a report from counters.
#include "proxy/admin_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <charconv>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "proxy/metrics_text.hpp"
#include "proxy/status_page.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t header_limit = 8 * 1024;                 // request line + headers, bytes
constexpr auto io_timeout = std::chrono::seconds(10);          // per read (incl. keep-alive idle) and write
constexpr std::size_t max_connections = 32;                    // open admin connections at once
constexpr auto linger_timeout = std::chrono::seconds(1);      // discarding unread bytes before close
constexpr std::size_t linger_limit = 64 * 1024;                // ... at most this many
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);  // after a failed accept (EMFILE...)

/// Parses "IP:PORT" / "[IPv6]:PORT". Names are rejected: a bind address must be a literal.
tcp::endpoint parse_bind_address(const std::string& text) {
  auto fail = [&](const std::string& why) -> std::runtime_error {
    return std::runtime_error("invalid admin bind address '" + text + "': " + why);
  };
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw fail("expected [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) throw fail("expected IP:PORT (e.g. 0.0.0.0:10356 or [::]:10356)");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) throw fail("put an IPv6 address in brackets: [::1]:PORT");
  }
  if (host.empty()) throw fail("missing IP address (use 0.0.0.0 for every IPv4 address, [::] for every address)");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw fail("'" + host + "' is not an IP address literal (host names are not resolved; use e.g. 127.0.0.1 or [::1])");
  int p = -1;
  auto [ptr, perr] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || perr != std::errc() || ptr != port.data() + port.size() || p < 0 || p > 65535)
    throw fail("port must be a number from 0 to 65535");
  return {addr, static_cast<std::uint16_t>(p)};
}

bool serves(admin_server::role served, admin_server::role needed) {
  return served == admin_server::role::both || served == needed;
}

/// "/readyz?verbose" -> path "/readyz", query "verbose".
std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

bool has_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    auto key = item.substr(0, item.find('='));
    if (key == name) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

/// What a route produced.
struct reply {
  http::status status = http::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool allow_header = false;  ///< 405: add "Allow: GET, HEAD"
};

reply text(http::status s, std::string body) { return {s, "text/plain; charset=utf-8", std::move(body)}; }

/// apiserver-style check lines: "[+]name ok" / "[-]name failed: reason".
reply readyz(const status_report& r, bool verbose) {
  std::string lines;
  bool config_ok = r.generation > 0;
  lines += config_ok ? "[+]config ok\n" : "[-]config failed: no configuration applied yet\n";
  lines += r.draining ? "[-]shutdown failed: draining (SIGTERM received)\n" : "[+]shutdown ok\n";
  if (!r.ready && config_ok && !r.draining) lines += "[-]ready failed: not ready\n";
  if (r.ready) return text(http::status::ok, verbose ? lines + "readyz check passed\n" : "ok");
  return text(http::status::service_unavailable, lines + "readyz check failed\n");
}

/// kube-proxy's /healthz body (pkg/proxy/healthcheck/proxier_health.go), byte for byte in shape.
reply healthz(const status_report& r) {
  reply out;
  out.status = r.ready ? http::status::ok : http::status::service_unavailable;
  out.content_type = "application/json";
  // nodeEligible is always true: without Node objects (file mode) nothing marks the node as
  // being deleted. API mode can set it from the Node's deletion timestamp / autoscaler taint.
  out.body = "{\"lastUpdated\": \"" + format_rfc3339(r.last_applied) + "\",\"currentTime\": \"" +
             format_rfc3339(std::chrono::system_clock::now()) + "\", \"nodeEligible\": true}";
  return out;
}

reply index_page(admin_server::role role) {
  std::string body = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nodeport-proxy</title>"
                     "</head><body><h1>nodeport-proxy</h1><ul>";
  if (serves(role, admin_server::role::health))
    body += "<li><a href=\"livez\">livez</a></li><li><a href=\"readyz?verbose\">readyz</a></li>"
            "<li><a href=\"healthz\">healthz</a></li>";
  if (serves(role, admin_server::role::metrics))
    body += "<li><a href=\"metrics\">metrics</a></li><li><a href=\"status\">status</a></li>"
            "<li><a href=\"status.json\">status.json</a></li>";
  body += "</ul></body></html>\n";
  return {http::status::ok, "text/html; charset=utf-8", std::move(body)};
}

reply route(admin_server::role role, const admin_hooks& hooks, http::verb method, std::string_view target) {
  auto [path, query] = split_target(target);
  const bool health = serves(role, admin_server::role::health);
  const bool metrics = serves(role, admin_server::role::metrics);
  const bool known = path == "/" || (health && (path == "/livez" || path == "/readyz" || path == "/healthz")) ||
                     (metrics && (path == "/metrics" || path == "/status" || path == "/status.json"));
  if (!known) return text(http::status::not_found, "404 page not found\n");
  if (method != http::verb::get && method != http::verb::head) {
    reply r = text(http::status::method_not_allowed, "405 method not allowed (GET or HEAD)\n");
    r.allow_header = true;
    return r;
  }
  if (path == "/") return index_page(role);
  // /livez answers without the report: reaching this line proves the control loop runs.
  if (path == "/livez") return text(http::status::ok, "ok");
  if (!hooks.status) return text(http::status::internal_server_error, "no status source\n");
  const status_report report = hooks.status();
  if (path == "/readyz") return readyz(report, has_param(query, "verbose"));
  if (path == "/healthz") return healthz(report);
  if (path == "/metrics") return {http::status::ok, std::string(metrics_content_type), render_metrics(report)};
  if (path == "/status") return {http::status::ok, "text/html; charset=utf-8", render_status_html(report)};
  return {http::status::ok, "application/json", render_status_json(report)};
}

using request = http::request<http::empty_body>;
using response = http::response<http::string_body>;

/// Bytes one read may buffer: the header plus room for the start of a pipelined request.
constexpr std::size_t read_buffer_limit = header_limit + 1024;

/// Gives a fresh parser the server's limits: header <= header_limit, no body.
void limit(http::request_parser<http::empty_body>& parser) {
  parser.header_limit(header_limit);
  parser.body_limit(0);
}

/// What to answer when reading a request failed; nullopt: close without answering (the client
/// left, went idle, or sent half a request).
std::optional<reply> reply_to_read_error(const boost::system::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset || ec == asio::error::eof || ec == http::error::partial_message)
    return std::nullopt;
  if (ec == http::error::header_limit) return text(http::status::request_header_fields_too_large, "request header too large\n");
  if (ec == http::error::body_limit || ec == http::error::unexpected_body)
    return text(http::status::payload_too_large, "request bodies are not accepted\n");
  return text(http::status::bad_request, "bad request\n");
}

/// route() for a parsed request; an exception while rendering becomes a 500.
reply answer(admin_server::role role, const admin_hooks& hooks, const request& req) {
  try {
    return route(role, hooks, req.method(), req.target());
  } catch (const std::exception& e) {
    spdlog::warn("admin: {} {} failed: {}", std::string(req.method_string()), std::string(req.target()), e.what());
    return text(http::status::internal_server_error, "internal error\n");
  }
}

/// The response message for a reply. HEAD gets the GET response's headers and no body.
std::shared_ptr<response> make_response(reply r, bool head, bool keep_alive, unsigned version) {
  auto res = std::make_shared<response>(r.status, version);
  res->set(http::field::server, "nodeport-proxy");
  res->set(http::field::content_type, r.content_type);
  res->set(http::field::cache_control, "no-store");
  res->set("X-Content-Type-Options", "nosniff");
  if (r.allow_header) res->set(http::field::allow, "GET, HEAD");
  res->keep_alive(keep_alive);
  const std::size_t length = r.body.size();
  if (!head) res->body() = std::move(r.body);
  res->prepare_payload();
  if (head) res->content_length(length);  // HEAD: the GET response's length, no body
  return res;
}

}  // namespace

struct admin_server::impl : std::enable_shared_from_this<admin_server::impl> {
  impl(asio::io_context& ctx, role r, admin_hooks h) : acceptor(ctx), retry(ctx), served(r), hooks(std::move(h)) {}

  tcp::acceptor acceptor;
  asio::steady_timer retry;  ///< waits before accepting again after a failed accept
  role served;
  admin_hooks hooks;
  std::string address;
  int bound_port = 0;
  bool closed = false;
  class connection;
  std::unordered_set<connection*> open;  ///< live connections (each removes itself)

  void do_accept();
  void on_accept(const boost::system::error_code& ec, tcp::socket socket);
};

/// One admin HTTP connection; owned by its pending handlers.
class admin_server::impl::connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp::socket socket, std::shared_ptr<admin_server::impl> server)
      : stream_(std::move(socket)), server_(std::move(server)) {
    server_->open.insert(this);
  }
  ~connection() { server_->open.erase(this); }

  void start() { do_read(); }
  void close() {
    boost::system::error_code ignored_ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored_ec);
    stream_.close();
  }

 private:
  void do_read() {
    parser_.emplace();
    limit(*parser_);
    stream_.expires_after(io_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(const boost::system::error_code& ec) {
    if (ec) {
      if (auto r = reply_to_read_error(ec)) send(make_response(std::move(*r), false, false, 11));
      return;
    }
    const auto& req = parser_->get();
    send(make_response(answer(server_->served, server_->hooks, req), req.method() == http::verb::head, req.keep_alive(),
                       req.version()));
  }

  void send(std::shared_ptr<http::response<http::string_body>> res) {
    stream_.expires_after(io_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](const boost::system::error_code& ec, std::size_t) {
      self->on_write(ec, res->keep_alive());
    });
  }

  void on_write(const boost::system::error_code& ec, bool keep_alive) {
    if (ec) return;
    if (!keep_alive || server_->closed) return linger();
    do_read();
  }

  /// Half-closes, then reads and discards briefly: closing with unread request bytes would make
  /// the kernel send RST, which can destroy the response before the client has read it.
  void linger() {
    boost::system::error_code ignored_ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored_ec);
    stream_.expires_after(linger_timeout);
    do_discard();
  }
  void do_discard() {
    stream_.async_read_some(asio::buffer(discard_), [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
      self->discarded_ += n;
      if (!ec && self->discarded_ < linger_limit && !self->server_->closed) self->do_discard();
    });  // on EOF, error, timeout or enough bytes the last handler releases the connection
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{read_buffer_limit};  ///< bounded: the parser enforces header_limit
  std::optional<http::request_parser<http::empty_body>> parser_;  ///< fresh per request
  std::shared_ptr<admin_server::impl> server_;
  std::array<char, 4096> discard_{};  ///< lingering close: unread request bytes land here
  std::size_t discarded_ = 0;
};

void admin_server::impl::do_accept() {
  acceptor.async_accept([self = shared_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void admin_server::impl::on_accept(const boost::system::error_code& ec, tcp::socket socket) {
  if (closed || !acceptor.is_open()) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    spdlog::warn("admin {}: accept failed: {}; retrying", address, ec.message());
    retry.expires_after(accept_retry_delay);
    retry.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
      if (!wait_ec && !self->closed) self->do_accept();
    });
    return;
  }
  if (open.size() >= max_connections) {
    spdlog::debug("admin {}: {} connections open, closing a new one", address, open.size());
    boost::system::error_code ignored_ec;
    socket.close(ignored_ec);
  } else {
    std::make_shared<connection>(std::move(socket), shared_from_this())->start();
  }
  do_accept();
}

admin_server::admin_server(asio::io_context& ctx, const std::string& address, role r, admin_hooks hooks)
    : impl_(std::make_shared<impl>(ctx, r, std::move(hooks))) {
  const tcp::endpoint ep = parse_bind_address(address);
  impl_->address = address;
  boost::system::error_code ec;
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on admin address " + address + ": " + ec.message());
  impl_->bound_port = a.local_endpoint().port();
  impl_->do_accept();
}

admin_server::~admin_server() { close(); }

void admin_server::close() {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  boost::system::error_code ignored_ec;
  impl_->acceptor.close(ignored_ec);
  impl_->retry.cancel();
  // Copy: close() makes pending handlers complete later, and they erase themselves then.
  std::vector<impl::connection*> conns(impl_->open.begin(), impl_->open.end());
  for (auto* c : conns) c->close();
}

int admin_server::port() const { return impl_->bound_port; }

std::string admin_server::respond(role r, const admin_hooks& hooks, std::string_view bytes) {
  // As the connection reads: at most one buffer's worth, then the client's EOF.
  bytes = bytes.substr(0, read_buffer_limit);
  http::request_parser<http::empty_body> parser;
  limit(parser);
  boost::system::error_code ec;
  while (!parser.is_done() && !ec) {
    const std::size_t used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    bytes.remove_prefix(used);
    if (ec == http::error::need_more || (used == 0 && !ec)) {
      ec = {};
      if (parser.got_some())
        parser.put_eof(ec);
      else
        ec = http::error::end_of_stream;  // what http::async_read reports for EOF before any byte
      break;
    }
  }
  std::shared_ptr<response> res;
  if (ec) {
    auto reply = reply_to_read_error(ec);
    if (!reply) return {};
    res = make_response(std::move(*reply), false, false, 11);
  } else {
    const auto& req = parser.get();
    res = make_response(answer(r, hooks, req), req.method() == http::verb::head, req.keep_alive(), req.version());
  }
  std::ostringstream out;
  out << *res;
  return out.str();
}

}  // namespace npp::proxy
