// The Kubernetes API client (one HTTPS GET per connection, body streamed) and the list/watch
// source built on it. See kube_api.hpp for the protocol. Callback style, like the rest of proxy/.
//
//   informer (per kind):  list --200--> replace store, rv --> watch --events--> store, rv
//                           |                                    |  \--410 / ERROR 410--> list
//                           +--error--> backoff --> list         +--drop/error--> backoff --> watch(rv)
//   any store change --> sync timer (min_sync_period since the last sync) --> build --> deliver
#include "proxy/kube_api.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "config/kube_store.hpp"
#include "config/loader_internal.hpp"
#include "config/problem.hpp"
#include "config/watch_events.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

/// CPU time of the calling thread: the API thread's own cost, apart from waiting for a busy CPU.
std::chrono::microseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::nanoseconds(ts.tv_nsec));
}

/// Bytes of an error response body kept (a Status object is small).
constexpr std::size_t error_body_cap = 64 * 1024;

std::string host_header(const config::api_server_config& s) {
  const bool v6 = s.host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + s.host + "]" : s.host;
  return s.port == "443" ? h : h + ":" + s.port;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

/// The TLS client context: the CA to trust (or the system's), the client certificate.
std::shared_ptr<ssl::context> make_tls_context(const config::api_server_config& s) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  try {
    if (s.insecure_skip_tls_verify) {
      ctx->set_verify_mode(ssl::verify_none);
    } else {
      ctx->set_verify_mode(ssl::verify_peer);
      if (!s.ca_pem.empty())
        ctx->add_certificate_authority(asio::buffer(s.ca_pem));
      else
        ctx->set_default_verify_paths();
    }
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot use the API server's CA certificate (" + s.origin + "): " + e.code().message());
  }
  try {
    if (!s.client_cert_pem.empty()) {
      ctx->use_certificate_chain(asio::buffer(s.client_cert_pem));
      ctx->use_private_key(asio::buffer(s.client_key_pem), ssl::context::pem);
    }
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot use the client certificate/key (" + s.origin + "): " + e.code().message());
  }
  return ctx;
}

/// A failure explained for the log: what went wrong and, where it is likely, what to check.
std::string explain(const boost::system::error_code& ec, const char* step) {
  std::string m = std::string(step) + ": " + ec.message();
  if (ec.category() == asio::error::get_ssl_category() || ec == asio::ssl::error::stream_truncated) {
    const auto reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
      m += " (the server's certificate is not signed by the configured CA, or does not name this host: "
           "check certificate-authority(-data) / the service account's ca.crt)";
  }
  if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable || ec == beast::error::timeout)
    m += " (is the API server address right and reachable from this node?)";
  return m;
}

/// One GET on a fresh TLS connection; the body is handed over in pieces as it arrives (a watch
/// never ends on its own). Callbacks run on the io_context's thread. Dropping the last
/// reference (after abort()) closes the connection.
class api_get : public std::enable_shared_from_this<api_get> {
 public:
  struct handlers {
    std::function<void(unsigned status)> on_header;
    /// Returns false to stop reading (the request is then abandoned, on_end never runs).
    std::function<bool(std::string_view)> on_body;
    /// "" when the response ended normally, else what went wrong.
    std::function<void(const std::string& error)> on_end;
  };

  api_get(asio::io_context& ioc, std::shared_ptr<ssl::context> tls, const config::api_server_config& server,
          std::string target, std::string token, std::chrono::milliseconds header_timeout,
          std::chrono::milliseconds body_timeout, handlers h)
      : resolver_(ioc),
        tls_(std::move(tls)),
        stream_(ioc, *tls_),
        server_(server),
        target_(std::move(target)),
        token_(std::move(token)),
        header_timeout_(header_timeout),
        body_timeout_(body_timeout),
        h_(std::move(h)) {}

  void start() {
    beast::get_lowest_layer(stream_).expires_after(header_timeout_);
    resolver_.async_resolve(server_.host, server_.port,
                            [self = shared_from_this()](const boost::system::error_code& ec, tcp::resolver::results_type r) {
                              if (ec) return self->fail(explain(ec, "resolving the API server's host"));
                              self->connect(std::move(r));
                            });
  }

  void abort() {
    aborted_ = true;
    resolver_.cancel();
    beast::get_lowest_layer(stream_).close();
  }

 private:
  void connect(tcp::resolver::results_type results) {
    if (aborted_) return;
    beast::get_lowest_layer(stream_).async_connect(
        results, [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
          if (ec) return self->fail(explain(ec, "connecting"));
          self->keepalive();
          self->handshake();
        });
  }

  // A watch can be quiet for minutes; TCP keepalive notices a vanished server (no FIN, no RST)
  // within about a minute instead of at the read deadline (client-go dials with 30 s keepalive).
  void keepalive() {
    auto& sock = beast::get_lowest_layer(stream_).socket();
    boost::system::error_code ignored;
    sock.set_option(asio::socket_base::keep_alive(true), ignored);
    const int idle = 30, interval = 10, count = 3;
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  }

  void handshake() {
    if (aborted_) return;
    if (!server_.insecure_skip_tls_verify) stream_.set_verify_callback(ssl::host_name_verification(server_.host));
    if (!is_ip_literal(server_.host)) SSL_set_tlsext_host_name(stream_.native_handle(), server_.host.c_str());
    stream_.async_handshake(ssl::stream_base::client, [self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return self->fail(explain(ec, "TLS handshake"));
      self->write();
    });
  }

  void write() {
    if (aborted_) return;
    req_.version(11);
    req_.method(http::verb::get);
    req_.target(server_.base_path + target_);
    req_.set(http::field::host, host_header(server_));
    req_.set(http::field::user_agent, "nodeport-proxy/" NPP_VERSION);
    req_.set(http::field::accept, "application/json");
    if (!token_.empty()) req_.set(http::field::authorization, "Bearer " + token_);
    http::async_write(stream_, req_, [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
      if (ec) return self->fail(explain(ec, "sending the request"));
      self->read_header();
    });
  }

  void read_header() {
    if (aborted_) return;
    parser_.body_limit(boost::none);  // the callers cap what they keep
    parser_.header_limit(64 * 1024);
    http::async_read_header(stream_, buffer_, parser_, [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
      if (ec) return self->fail(explain(ec, "reading the response header"));
      if (self->aborted_) return;
      self->h_.on_header(self->parser_.get().result_int());
      if (self->aborted_) return;
      if (self->parser_.is_done()) return self->finish("");
      self->read_body();
    });
  }

  void read_body() {
    beast::get_lowest_layer(stream_).expires_after(body_timeout_);
    auto& body = parser_.get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    http::async_read_some(stream_, buffer_, parser_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (self->aborted_) return;
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t got = self->chunk_.size() - self->parser_.get().body().size;
      if (got > 0 && !self->h_.on_body(std::string_view(self->chunk_.data(), got))) return;
      if (self->aborted_) return;
      if (ec) return self->fail(ec == http::error::partial_message || ec == http::error::end_of_stream
                                    ? "the connection closed in the middle of the response"
                                    : explain(ec, "reading the response"));
      if (self->parser_.is_done()) return self->finish("");
      self->read_body();
    });
  }

  void fail(const std::string& why) {
    if (!aborted_) finish(why);
  }
  void finish(const std::string& why) {
    if (done_) return;
    done_ = true;
    beast::get_lowest_layer(stream_).close();
    h_.on_end(why);
  }

  tcp::resolver resolver_;
  std::shared_ptr<ssl::context> tls_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  const config::api_server_config& server_;
  std::string target_;
  std::string token_;
  std::chrono::milliseconds header_timeout_, body_timeout_;
  handlers h_;
  http::request<http::empty_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::buffer_body> parser_;
  std::array<char, 64 * 1024> chunk_{};
  bool aborted_ = false;
  bool done_ = false;
};

const char* kind_path(config::api_kind k) {
  return k == config::api_kind::service ? "/api/v1/services" : "/apis/discovery.k8s.io/v1/endpointslices";
}
const char* kind_plural(config::api_kind k) { return k == config::api_kind::service ? "Services" : "EndpointSlices"; }

std::string resource_version_of(const nlohmann::json& obj) {
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return "";
  auto rv = meta->find("resourceVersion");
  return rv != meta->end() && rv->is_string() ? rv->get<std::string>() : "";
}

/// What a non-200 response means, for the log. `body` may hold a Status object.
std::string explain_status(unsigned status, const std::string& body, const std::string& what) {
  std::string detail;
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_discarded() && doc.is_object() && doc.contains("message")) detail = ": " + config::status_text(doc);
  std::string hint;
  if (status == 401)
    hint = " (the API server does not accept the credentials: the token is invalid or expired, or the client "
           "certificate is not trusted)";
  else if (status == 403)
    hint = " (the credentials are valid but not allowed to " + what +
           ": grant get/list/watch on services, endpointslices and nodes, see examples/kubernetes/)";
  return "HTTP " + std::to_string(status) + detail + hint;
}

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct api_source::impl : std::enable_shared_from_this<api_source::impl> {
  struct informer {
    config::api_kind kind;
    std::string rv;
    bool listed = false;
    std::shared_ptr<api_get> active;
    std::unique_ptr<asio::steady_timer> retry;
    std::chrono::milliseconds backoff{0};
    std::unique_ptr<config::ndjson_reader> reader;
    // A list in progress: items are decoded as their bytes arrive.
    std::unique_ptr<config::list_stream_reader> list_reader;
    std::unique_ptr<config::object_store::pending_list> pending;
    std::vector<std::string> list_problems;
    std::size_t list_bytes = 0;
    std::chrono::microseconds list_cpu{0};
    std::string body;  ///< a list response, or an error response's body
    unsigned status = 0;
    clock_type::time_point started{};
  };

  api_options opts;
  deliver_fn deliver;
  asio::io_context ioc{1};
  std::shared_ptr<ssl::context> tls;
  std::thread thread;
  config::object_store store;
  informer informers[2];
  asio::steady_timer sync_timer{ioc};
  bool sync_pending = false;
  bool first_sync_done = false;
  clock_type::time_point last_sync{};
  std::string token;
  clock_type::time_point token_read{};
  bool token_stale = true;
  std::mt19937_64 rng{std::random_device{}()};
  std::string source_name;

  impl(api_options o, deliver_fn d) : opts(std::move(o)), deliver(std::move(d)) {
    tls = make_tls_context(opts.server);
    informers[0].kind = config::api_kind::service;
    informers[1].kind = config::api_kind::endpoint_slice;
    for (auto& inf : informers) inf.retry = std::make_unique<asio::steady_timer>(ioc);
    source_name = "Kubernetes API " + opts.server.server;
  }

  /// The bearer token: static, or the token file's content re-read every token_refresh and after
  /// a 401. A failed re-read keeps the previous token (and says so).
  const std::string& current_token() {
    if (opts.server.token_file.empty()) return opts.server.token;
    const auto now = clock_type::now();
    if (token_stale || now - token_read >= opts.token_refresh) {
      std::ifstream in(opts.server.token_file, std::ios::binary);
      std::ostringstream ss;
      if (in && (ss << in.rdbuf())) {
        std::string t = ss.str();
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
        if (t != token && !token.empty()) spdlog::info("API: token file {} changed: using the new token", opts.server.token_file.string());
        token = std::move(t);
      } else {
        spdlog::error("API: cannot read the token file {}; keeping the previous token", opts.server.token_file.string());
      }
      token_read = now;
      token_stale = false;
    }
    return token;
  }

  std::chrono::milliseconds next_backoff(informer& inf) {
    inf.backoff = inf.backoff.count() == 0 ? opts.backoff_initial : std::min(inf.backoff * 2, opts.backoff_max);
    // Jitter: up to +50%, so a fleet of proxies does not reconnect in lockstep after an outage.
    std::uniform_real_distribution<double> jitter(1.0, 1.5);
    return std::chrono::milliseconds(static_cast<long long>(static_cast<double>(inf.backoff.count()) * jitter(rng)));
  }

  void retry_later(informer& inf, bool relist) {
    const auto delay = next_backoff(inf);
    spdlog::info("API: {} {} again in {} ms", relist ? "listing" : "watching", kind_plural(inf.kind), delay.count());
    inf.retry->expires_after(delay);
    inf.retry->async_wait([self = shared_from_this(), &inf, relist](const boost::system::error_code& ec) {
      if (ec) return;
      relist ? self->list(inf) : self->watch(inf);
    });
  }

  std::shared_ptr<api_get> request(std::string target, std::chrono::milliseconds body_timeout, api_get::handlers h) {
    auto g = std::make_shared<api_get>(ioc, tls, opts.server, std::move(target), current_token(), opts.request_timeout,
                                       body_timeout, std::move(h));
    g->start();
    return g;
  }

  /// A non-200 answer: log it clearly; 401 makes the next request re-read the token.
  void log_status(informer& inf, const char* op) {
    if (inf.status == 401) token_stale = true;
    spdlog::error("API: {} {} at {} failed: {}; keeping the last applied configuration", op, kind_plural(inf.kind),
                  opts.server.server, explain_status(inf.status, inf.body, std::string(op) + " " + kind_plural(inf.kind)));
  }

  void list(informer& inf) {
    inf.body.clear();
    inf.status = 0;
    inf.started = clock_type::now();
    inf.list_bytes = 0;
    inf.list_cpu = {};
    inf.list_problems.clear();
    inf.pending = std::make_unique<config::object_store::pending_list>(inf.kind);
    inf.list_reader = std::make_unique<config::list_stream_reader>(
        opts.max_event_bytes, opts.load.max_depth, [&inf](nlohmann::json&& item) {
          auto bad = inf.pending->add(item);
          inf.list_problems.insert(inf.list_problems.end(), bad.begin(), bad.end());
        });
    spdlog::debug("API: listing {}", kind_plural(inf.kind));
    inf.active = request(kind_path(inf.kind), opts.request_timeout,
                         {[&inf](unsigned status) { inf.status = status; },
                          [this, &inf](std::string_view data) { return on_list_data(inf, data); },
                          [self = shared_from_this(), &inf](const std::string& error) { self->listed(inf, error); }});
  }

  /// A piece of a list response: decoded at once (the list is never held whole); an error body
  /// is kept (capped) for the log.
  bool on_list_data(informer& inf, std::string_view data) {
    if (inf.status != 200) {
      if (inf.body.size() < error_body_cap) inf.body.append(data.substr(0, error_body_cap - inf.body.size()));
      return true;
    }
    inf.list_bytes += data.size();
    std::string why;
    if (inf.list_bytes > opts.max_list_bytes) {
      why = "larger than " + std::to_string(opts.max_list_bytes) + " bytes";
    } else {
      const auto cpu0 = thread_cpu();
      inf.list_reader->feed(data);
      inf.list_cpu += thread_cpu() - cpu0;
      why = inf.list_reader->error();
    }
    if (why.empty()) return true;
    spdlog::error("API: the list of {} is not usable ({}); retrying", kind_plural(inf.kind), why);
    inf.active->abort();
    inf.active.reset();
    inf.list_reader.reset();
    inf.pending.reset();
    retry_later(inf, true);
    return false;
  }

  void listed(informer& inf, const std::string& error) {
    inf.active.reset();
    auto reader = std::move(inf.list_reader);
    auto pending = std::move(inf.pending);
    if (!error.empty()) {
      spdlog::error("API: listing {} at {} failed: {}; keeping the last applied configuration", kind_plural(inf.kind),
                    opts.server.server, error);
      return retry_later(inf, true);
    }
    if (inf.status != 200) {
      log_status(inf, "listing");
      return retry_later(inf, true);
    }
    const auto received = clock_type::now();
    const auto cpu0 = thread_cpu();
    std::string rv;
    if (!reader->finish(&rv)) {
      spdlog::error("API: the list of {} is not usable ({}); retrying", kind_plural(inf.kind), reader->error());
      return retry_later(inf, true);
    }
    if (rv.empty()) {
      spdlog::error("API: the list of {} has no metadata.resourceVersion; retrying", kind_plural(inf.kind));
      return retry_later(inf, true);
    }
    store.commit(std::move(*pending));
    for (const auto& p : inf.list_problems) spdlog::error("API: {}; left out until it is fixed", p);
    inf.list_problems.clear();
    inf.rv = rv;
    inf.listed = true;
    inf.backoff = {};
    const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    spdlog::info("API: listed {} {} ({} bytes, resourceVersion {}): received in {} ms, decoded as it arrived "
                 "({} ms CPU), done {} ms after the last byte",
                 store.size(inf.kind), kind_plural(inf.kind), inf.list_bytes, rv, ms(received - inf.started),
                 ms(inf.list_cpu + (thread_cpu() - cpu0)), ms(clock_type::now() - received));
    schedule_sync();
    watch(inf);
  }

  void watch(informer& inf) {
    inf.body.clear();
    inf.status = 0;
    inf.reader = std::make_unique<config::ndjson_reader>(opts.max_event_bytes);
    std::uniform_int_distribution<long long> spread(opts.watch_timeout.count(), 2 * opts.watch_timeout.count() - 1);
    const auto timeout = std::chrono::seconds(opts.watch_timeout.count() > 0 ? spread(rng) : 0);
    std::string target = std::string(kind_path(inf.kind)) + "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                         url_escape(inf.rv) + "&timeoutSeconds=" + std::to_string(timeout.count());
    spdlog::debug("API: watching {} from resourceVersion {}", kind_plural(inf.kind), inf.rv);
    // The server ends the stream after timeoutSeconds; allow some slack before calling it dead.
    inf.active = request(std::move(target), std::chrono::duration_cast<std::chrono::milliseconds>(timeout + 30s),
                         {[&inf](unsigned status) { inf.status = status; },
                          [this, &inf](std::string_view data) { return on_watch_data(inf, data); },
                          [self = shared_from_this(), &inf](const std::string& error) { self->watch_ended(inf, error); }});
  }

  /// Returns false once it has abandoned the stream (and arranged what comes next).
  bool on_watch_data(informer& inf, std::string_view data) {
    if (inf.status != 200) {
      if (inf.body.size() < error_body_cap) inf.body.append(data.substr(0, error_body_cap - inf.body.size()));
      return true;
    }
    inf.backoff = {};  // the server answers: a later drop starts again at the initial backoff
    inf.reader->feed(data);
    bool changed = false;
    auto stop = [&](bool relist) {
      if (changed) schedule_sync();
      inf.active->abort();
      inf.active.reset();
      if (relist) {
        list(inf);  // the store keeps serving what it has until the new list replaces it
      } else {
        retry_later(inf, false);
      }
      return false;
    };
    while (auto line = inf.reader->next_line()) {
      std::string why;
      auto ev = config::parse_watch_event(*line, &why);
      if (!ev) {
        spdlog::error("API: malformed event in the watch of {} ({}): {}; reconnecting", kind_plural(inf.kind), why,
                      config::detail::quote_short(*line));
        return stop(false);
      }
      switch (ev->type) {
        case config::watch_event_type::added:
        case config::watch_event_type::modified:
          for (const auto& p : store.upsert(inf.kind, ev->object)) spdlog::error("API: {}; left out until it is fixed", p);
          changed = true;
          break;
        case config::watch_event_type::deleted:
          store.erase(inf.kind, ev->object);
          changed = true;
          break;
        case config::watch_event_type::bookmark:
          spdlog::debug("API: bookmark in the watch of {}: resourceVersion {}", kind_plural(inf.kind),
                        resource_version_of(ev->object));
          break;
        case config::watch_event_type::error: {
          const int code = config::status_code(ev->object);
          if (code == 410) {
            spdlog::info("API: the watch of {} expired ({}): re-listing", kind_plural(inf.kind),
                         config::status_text(ev->object));
            return stop(true);
          }
          spdlog::error("API: the watch of {} reported an error: {}; reconnecting", kind_plural(inf.kind),
                        config::status_text(ev->object));
          return stop(false);
        }
      }
      if (auto rv = resource_version_of(ev->object); !rv.empty()) inf.rv = rv;
    }
    if (!inf.reader->failed().empty()) {
      // The same event would come again on a resumed watch; a list has a larger cap.
      spdlog::error("API: the watch of {} sent a {}: re-listing", kind_plural(inf.kind), inf.reader->failed());
      return stop(true);
    }
    if (changed) schedule_sync();
    return true;
  }

  void watch_ended(informer& inf, const std::string& error) {
    inf.active.reset();
    if (inf.status == 410) {
      spdlog::info("API: the watch of {} expired (HTTP 410 Gone{}): re-listing", kind_plural(inf.kind),
                   inf.body.empty() ? "" : ": " + explain_status(410, inf.body, ""));
      return list(inf);
    }
    if (inf.status != 0 && inf.status != 200) {
      log_status(inf, "watching");
      return retry_later(inf, false);
    }
    if (!error.empty()) {
      spdlog::warn("API: the watch of {} was interrupted: {}", kind_plural(inf.kind), error);
      return retry_later(inf, false);
    }
    if (inf.reader && inf.reader->pending() > 0)
      spdlog::warn("API: the watch of {} ended inside an event ({} bytes); resuming", kind_plural(inf.kind), inf.reader->pending());
    spdlog::debug("API: the watch of {} ended; resuming from resourceVersion {}", kind_plural(inf.kind), inf.rv);
    watch(inf);
  }

  // -- coalescing: at most one snapshot per min_sync_period (kube-proxy's BoundedFrequencyRunner)
  void schedule_sync() {
    if (sync_pending || !informers[0].listed || !informers[1].listed) return;
    sync_pending = true;
    auto due = std::max(clock_type::now(), last_sync + opts.min_sync_period);
    if (!first_sync_done) due = clock_type::now();
    sync_timer.expires_at(due);
    sync_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->sync();
    });
  }

  void sync() {
    sync_pending = false;
    last_sync = clock_type::now();
    const auto t0 = clock_type::now();
    const auto cpu0 = thread_cpu();
    config::snapshot_ptr snap;
    std::exception_ptr error;
    try {
      snap = std::make_shared<const config::snapshot>(store.build(opts.load, source_name));
    } catch (...) {
      error = std::current_exception();
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count();
    const auto cpu_us = (thread_cpu() - cpu0).count();
    if (!first_sync_done)
      spdlog::info("API: initial sync: {} Services, {} EndpointSlices; snapshot built in {} ms ({} ms CPU)",
                   store.size(config::api_kind::service), store.size(config::api_kind::endpoint_slice), us / 1000,
                   cpu_us / 1000);
    else
      spdlog::debug("API: sync: snapshot built in {} us ({} us CPU; {} Service(s) assembled again{})", us, cpu_us,
                    store.last_build_assembled(), store.last_build_whole() ? ", then the whole set" : "");
    first_sync_done = true;
    if (snap)
      for (const auto& note : snap->notes) spdlog::debug("API: {}", note);
    deliver([snap, error]() -> config::snapshot_ptr {
      if (error) std::rethrow_exception(error);
      return snap;
    });
  }

  void shutdown() {
    for (auto& inf : informers) {
      inf.retry->cancel();
      if (inf.active) inf.active->abort();
      inf.active.reset();
    }
    sync_timer.cancel();
  }
};

api_source::api_source(api_options opts, deliver_fn deliver)
    : impl_(std::make_shared<impl>(std::move(opts), std::move(deliver))) {}

api_source::~api_source() { stop(); }

void api_source::start() {
  auto s = impl_;
  spdlog::info("API: watching Services and EndpointSlices at {} ({})", s->opts.server.server, s->opts.server.origin);
  asio::post(s->ioc, [s] {
    for (auto& inf : s->informers) s->list(inf);
  });
  s->thread = std::thread([s] {
    auto guard = asio::make_work_guard(s->ioc);
    s->ioc.run();
  });
}

void api_source::stop() {
  auto s = impl_;
  if (!s->thread.joinable()) return;
  asio::post(s->ioc, [s] {
    s->shutdown();
    s->ioc.stop();
  });
  s->thread.join();
}

// ---------------------------------------------------------------------------------------------

api_listing list_once(const api_options& opts, bool want_nodes) {
  asio::io_context ioc{1};
  auto tls = make_tls_context(opts.server);
  std::string token = opts.server.token;
  if (!opts.server.token_file.empty()) {
    std::ifstream in(opts.server.token_file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the token file " + opts.server.token_file.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  }
  struct result {
    std::string path, what, body, error;
    unsigned status = 0;
  };
  std::vector<result> results{{kind_path(config::api_kind::service), "list services"},
                              {kind_path(config::api_kind::endpoint_slice), "list endpointslices"}};
  if (want_nodes) results.push_back({"/api/v1/nodes", "list nodes"});
  std::vector<std::shared_ptr<api_get>> gets;
  for (auto& r : results) {
    gets.push_back(std::make_shared<api_get>(
        ioc, tls, opts.server, r.path, token, opts.request_timeout, opts.request_timeout,
        api_get::handlers{[&r](unsigned s) { r.status = s; },
                          [&r, &opts](std::string_view d) {
                            if (r.body.size() + d.size() > opts.max_list_bytes) {
                              r.error = "response larger than " + std::to_string(opts.max_list_bytes) + " bytes";
                              return false;
                            }
                            r.body.append(d);
                            return true;
                          },
                          [&r](const std::string& e) { r.error = e; }}));
    gets.back()->start();
  }
  ioc.run();
  gets.clear();

  api_listing out;
  config::object_store store;
  config::load_options parse_opts = opts.load;
  parse_opts.max_bytes = opts.max_list_bytes;
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto& r = results[i];
    const std::string where = opts.server.server + r.path;
    if (!r.error.empty()) throw std::runtime_error("API: " + r.what + " at " + where + ": " + r.error);
    if (r.status != 200) throw std::runtime_error("API: " + r.what + " at " + where + ": " + explain_status(r.status, r.body, r.what));
    if (i < 2) {
      std::string rv;
      try {
        auto bad = store.replace(i == 0 ? config::api_kind::service : config::api_kind::endpoint_slice, r.body,
                                 opts.load.max_depth, &rv);
        out.problems.insert(out.problems.end(), bad.begin(), bad.end());
      } catch (const std::runtime_error& e) {
        throw std::runtime_error("API: " + r.what + ": the response is not valid JSON: " + e.what());
      }
      continue;
    }
    std::vector<config::problem> problems;
    auto doc = config::detail::parse_json(r.body, parse_opts, problems);
    if (!doc || !doc->is_object())
      throw std::runtime_error("API: " + r.what + ": the response is not a JSON object");
    const auto items = doc->find("items");
    const nlohmann::json none = nlohmann::json::array();
    const nlohmann::json& list = items != doc->end() ? *items : none;
    // Nodes: status.addresses, InternalIP first (what kube-proxy calls the node IP), then ExternalIP.
    for (const char* type : {"InternalIP", "ExternalIP"}) {
      for (const auto& node : list) {
        const auto status = node.find("status");
        if (status == node.end() || !status->is_object()) continue;
        const auto addrs = status->find("addresses");
        if (addrs == status->end() || !addrs->is_array()) continue;
        for (const auto& a : *addrs) {
          if (!a.is_object() || a.value("type", "") != type) continue;
          const std::string ip = a.value("address", "");
          if (!ip.empty() && config::ip_address::parse(ip) &&
              std::find(out.node_addresses.begin(), out.node_addresses.end(), ip) == out.node_addresses.end())
            out.node_addresses.push_back(ip);
        }
      }
    }
  }
  out.snap = store.build(opts.load, "Kubernetes API " + opts.server.server);
  return out;
}

}  // namespace npp::proxy
