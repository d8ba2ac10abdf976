#include "proxy/tcp_session.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>

#include "proxy/access_log.hpp"
#include "proxy/asio_tuning.hpp"
#include "proxy/endpoint_format.hpp"
#include "proxy/proxy_protocol.hpp"
#include "proxy/tls_context.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

/// Reads per direction before yielding to other connections on the worker (fairness).
static constexpr int max_reads_per_turn = 16;
/// Bytes asked of one splice(2) from a socket; the pipe's capacity (64 KiB by default) caps it.
static constexpr std::size_t splice_chunk = 1 << 20;

/// Tags of tls_stream operations (tls_done): which operation, for which direction or side.
constexpr int tls_read = 0;   ///< + direction: wait_readable()'s 1-byte read from its source
constexpr int tls_write = 2;  ///< + direction: write_out() to its sink
constexpr int tls_client_handshake = 4;
constexpr int tls_upstream_handshake = 5;

const char* to_string(close_reason r) {
  switch (r) {
    case close_reason::eof: return "eof";
    case close_reason::client_reset: return "client_reset";
    case close_reason::upstream_reset: return "upstream_reset";
    case close_reason::idle_timeout: return "idle_timeout";
    case close_reason::half_closed_timeout: return "half_closed_timeout";
    case close_reason::connect_failed: return "connect_failed";
    case close_reason::no_endpoints: return "no_endpoints";
    case close_reason::limit: return "limit";
    case close_reason::allowlist: return "allowlist";
    case close_reason::service_limit: return "service_limit";
    case close_reason::source_limit: return "source_limit";
    case close_reason::tls_handshake_failed: return "tls_handshake_failed";
    case close_reason::tls_handshake_timeout: return "tls_handshake_timeout";
    case close_reason::tls_handshake_limit: return "tls_handshake_limit";
    case close_reason::shutdown: return "shutdown";
    case close_reason::error: return "error";
  }
  return "?";
}

tcp_session::tcp_session(worker& w, tcp::socket client, const tcp::endpoint& client_addr,
                         std::shared_ptr<const port_runtime> port, connection_limits::slot slot, std::uint64_t id)
    : worker_(w),
      client_(std::move(client)),
      upstream_(w.context()),
      client_addr_(client_addr),
      port_(std::move(port)),
      service_slot_(std::move(slot)),
      timer_(w.context()),
      id_(id),
      started_(clock_type::now()),
      last_activity_(started_),
      // TLS relays through the buffer: the bytes must pass through OpenSSL.
      splice_(w.cfg().splice && !port_->tls && !port_->upstream_tls),
      holds_handshake_slot_(port_->tls != nullptr) {
  worker_.add_session(*this);
  bump(port_->stats->worker(worker_.index()).connections_active, 1);
}

tcp_session::~tcp_session() {
  // OpenSSL takes a session out of the server's cache when its SSL is freed without close_notify
  // having been sent (SSL_free -> ssl_clear_bad_session): whenever the client closed first without
  // one (most HTTP clients, python's ssl), reset, or a timeout ended the connection. TLS 1.1 and
  // later no longer require that (RFC 4346, 7.2.1), and OpenSSL still removes the session itself
  // on any fatal alert, sent or received; a failed handshake never cached one. Marking the
  // shutdown as sent keeps the session resumable (nginx does the same with a quiet shutdown).
  if (tls_[client_side]) {
    SSL* ssl = tls_[client_side]->native_handle();
    SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
  }
  release_buffer(in);
  release_buffer(out);
  release_handshake_slot();
  release_slot();
  worker_.session_ended();
}

void tcp_session::release_slot() {
  // Once, when the sockets close (not when the last handler lets go of the object): the gauge
  // and the --max-connections budget count open connections, i.e. descriptors.
  if (!holds_slot_) return;
  holds_slot_ = false;
  bump(port_->stats->worker(worker_.index()).connections_active, -1);
  worker_.shared().active_connections.fetch_sub(1, std::memory_order_relaxed);
  service_slot_.release();  // maxConnections / maxConnectionsPerSource, likewise
}

void tcp_session::start() {
  auto& c = port_->stats->worker(worker_.index());
  bump(c.connections_accepted);
  if (port_->endpoints.empty()) {
    // The listener raced with an update that removed the last endpoint: refuse like a closed port.
    finish(close_reason::no_endpoints, true, false);
    bump(c.connections_rejected_no_endpoints);  // after finish: a scrape never sees it still active
    return;
  }
  first_endpoint_ = port_->pick(from_asio(client_addr_.address()));
  if (port_->tls)
    start_client_handshake();
  else
    try_connect();
}

void tcp_session::release_handshake_slot() {
  if (!holds_handshake_slot_) return;
  holds_handshake_slot_ = false;
  worker_.shared().tls_handshakes.fetch_sub(1, std::memory_order_relaxed);
}

void tcp_session::tls_done(void* self, int tag, const error_code& ec, std::size_t n) {
  auto* s = static_cast<tcp_session*>(self);
  if (s->state_ == state::closed) return;
  switch (tag) {
    case tls_client_handshake: s->on_client_handshake(ec); break;
    case tls_upstream_handshake: s->on_upstream_handshake(ec); break;
    case tls_read:
    case tls_read + 1: s->on_tls_read(tag - tls_read, ec, n); break;
    case tls_write:
    case tls_write + 1: s->on_write(tag - tls_write, ec); break;
    default: break;
  }
}

void tcp_session::start_client_handshake() {
  state_ = state::handshaking;
  tls_[client_side] =
      std::make_unique<tls_stream>(worker_.context(), client_, port_->tls->asio().native_handle(), tls_stream::role::server);
  if (!tls_[client_side]->ok()) {
    finish(close_reason::error, true, false);  // out of memory
    return;
  }
  arm_timer(worker_.cfg().tls_handshake_timeout);
  tls_[client_side]->async_handshake(shared_from_this(), &tls_done, this, tls_client_handshake);
}

// Which tls_handshake_errors reason a failed handshake counts as (never anything about the client).
static std::atomic<std::uint64_t>& handshake_error_counter(port_counters& c, const error_code& ec) {
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe)
    return c.tls_handshake_errors_closed;
  if (ec.category() == asio::error::get_ssl_category()) {
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
      case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      case SSL_R_CERTIFICATE_VERIFY_FAILED:
      case SSL_R_NO_CERTIFICATES_RETURNED:
        return c.tls_handshake_errors_client_certificate;
      default: break;
    }
  }
  return c.tls_handshake_errors_protocol;
}

void tcp_session::on_client_handshake(const error_code& ec) {
  if (state_ == state::closed) return;
  release_handshake_slot();
  auto& c = port_->stats->worker(worker_.index());
  if (ec) {
    // OpenSSL's error queue is per thread and shared by every connection of this worker: what
    // this failure left there must not surface in another connection's next operation.
    ERR_clear_error();
    auto& counter = handshake_error_counter(c, ec);
    if (spdlog::should_log(spdlog::level::debug))
      spdlog::debug("connection id={} client={} node_port={}: TLS handshake failed: {}", id_,
                    format_endpoint(client_addr_), port_->node_port, ec.message());
    // A plain close, not a reset: the alert OpenSSL queued (handshake failure, unknown CA, ...)
    // has been sent and should reach the client.
    finish(close_reason::tls_handshake_failed, false, false);
    bump(counter);  // after finish: a scrape never sees it still active
    return;
  }
  bump(c.tls_handshakes);
  SSL* ssl = tls_[client_side]->native_handle();
  if (SSL_session_reused(ssl)) bump(c.tls_handshakes_resumed);
  // The response the status callback (tls_context.cpp) handed to OpenSSL stays on the SSL
  // until it is freed: present means it was sent.
  unsigned char* ocsp = nullptr;
  if (SSL_get_tlsext_status_ocsp_resp(ssl, &ocsp) > 0) bump(c.tls_handshakes_ocsp_stapled);
  // A client that ended its side before sending a byte (a TLS probe or health check, a handshake
  // benchmark) is not connected to an endpoint, as HAProxy does: the pod never sees it. A
  // close_notify counts as done sending here even though TLS 1.3 allows half-close; a client
  // that sends nothing and waits for the server to speak first keeps its side open and is served.
  switch (tls_[client_side]->peer_ended()) {
    case tls_stream::peer_state::closed: finish(close_reason::eof, false, false); return;
    case tls_stream::peer_state::truncated: finish(close_reason::client_reset, false, false); return;
    case tls_stream::peer_state::open: break;
  }
  state_ = state::connecting;
  try_connect();
}

void tcp_session::abort(close_reason why) { finish(why, false, false); }

void tcp_session::try_connect() {
  const std::size_t n = port_->endpoints.size();
  const unsigned max_attempts = static_cast<unsigned>(std::min<std::size_t>(worker_.cfg().connect_attempts, n));
  auto& c = port_->stats->worker(worker_.index());
  if (attempts_ >= max_attempts) {
    finish(close_reason::connect_failed, true, false);
    bump(c.connections_connect_failed);  // after finish: a scrape never sees it still active
    return;
  }
  endpoint_index_ = (first_endpoint_ + attempts_) % n;
  ++attempts_;
  bump(c.upstream_connect_attempts);
  connect_timed_out_ = false;
  tls_[upstream_side].reset();  // a failed attempt's TLS state goes with its socket
  error_code ignored_ec;
  upstream_.close(ignored_ec);
  attempt_started_ = clock_type::now();
  // A non-blocking connect by hand rather than Asio's async_connect: the socket is born
  // non-blocking with TCP_NODELAY set before the SYN, and completion is known at once or after
  // one writability wait (Asio adds an ioctl and a poll per attempt).
  const tcp::endpoint& target = port_->endpoints[endpoint_index_];
  int fd = ::socket(target.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    on_connect(error_code(errno, boost::system::system_category()));
    return;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  error_code ec;
  adopt_socket(upstream_, target.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    on_connect(ec);
    return;
  }
  int r = ::connect(fd, target.data(), static_cast<socklen_t>(target.size()));
  if (r < 0 && errno == EINPROGRESS) {
    // To an endpoint on this node (loopback, a pod behind a local bridge) the handshake has
    // usually finished by the time connect(2) returns: the SYN, SYN-ACK and ACK are processed
    // before the call leaves the kernel. A second connect(2) tells: 0 when connected, EALREADY
    // while the handshake is under way, the error when it failed. One system call instead of the
    // EPOLL_CTL_MOD that arms a writability wait, the wait itself and the peek after it.
    do r = ::connect(fd, target.data(), static_cast<socklen_t>(target.size()));
    while (r < 0 && errno == EINTR);
  }
  if (r == 0) {
    // The attempt's deadline still covers what follows before the relay (PROXY header, TLS
    // handshake with the endpoint). Without either, no timer is armed for it: each arm that
    // becomes the reactor's earliest deadline costs a timerfd_settime(2).
    if (port_->upstream_tls || port_->proxy_protocol != config::proxy_protocol_version::off)
      arm_timer(worker_.cfg().connect_timeout);
    // Registered with epoll (adopt_socket) in this same handler, before the connect: a byte that
    // arrives from now on is still an edge the reactor will report, so the endpoint's first
    // read need not try at once (see drain_read).
    upstream_known_empty_ = true;
    on_connect({});
    upstream_known_empty_ = false;  // valid only until the next wait for events (see below)
    return;
  }
  if (errno != EALREADY && errno != EINPROGRESS) {
    on_connect(error_code(errno, boost::system::system_category()));
    return;
  }
  arm_timer(worker_.cfg().connect_timeout);
  upstream_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](const error_code& ec) {
    if (self->state_ == state::closed) return;
    error_code result = ec;
    if (!result) {
      // A peek rather than getsockopt(SO_ERROR): a failed connect reports its error here too,
      // and "nothing to read yet" spares the endpoint's first read its EAGAIN (see drain_read).
      char byte;
      ssize_t r;
      do r = ::recv(self->upstream_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      while (r < 0 && errno == EINTR);
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        result = error_code(errno, boost::system::system_category());
      else
        self->upstream_known_empty_ = r < 0;
    }
    self->on_connect(result);
    // Valid only until the next wait for events: used by a relay started just now, or never.
    self->upstream_known_empty_ = false;
  });
}

void tcp_session::on_connect(const error_code& ec) {
  if (state_ == state::closed) return;
  if (ec || connect_timed_out_) {
    attempt_failed(connect_timed_out_ ? std::string("timed out") : ec.message());
    return;
  }
  if (port_->proxy_protocol != config::proxy_protocol_version::off)
    write_proxy_header();
  else
    upstream_ready();
}

void tcp_session::attempt_failed(const std::string& why) {
  bump(port_->stats->worker(worker_.index()).upstream_connect_failures);
  port_->endpoint_failures[endpoint_index_].fetch_add(1, std::memory_order_relaxed);
  port_->endpoint_failing[endpoint_index_].store(true, std::memory_order_relaxed);
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug("connection id={} connect to {} failed (attempt {}): {}", id_,
                  port_->endpoint_addrs[endpoint_index_].str(), attempts_, why);
  try_connect();
}

void tcp_session::upstream_ready() {
  if (port_->upstream_tls)
    start_upstream_handshake();
  else
    connected();
}

void tcp_session::start_upstream_handshake() {
  const auto& ctx = *port_->upstream_tls;
  const auto& settings = ctx.settings();
  tls_[upstream_side] =
      std::make_unique<tls_stream>(worker_.context(), upstream_, ctx.asio().native_handle(), tls_stream::role::client);
  if (!tls_[upstream_side]->ok()) {
    attempt_failed("TLS: out of memory");
    return;
  }
  SSL* ssl = tls_[upstream_side]->native_handle();
  if (!settings.server_name.empty()) {
    SSL_set_tlsext_host_name(ssl, settings.server_name.c_str());
    if (!settings.insecure_skip_verify) SSL_set1_host(ssl, settings.server_name.c_str());
  } else if (!settings.insecure_skip_verify) {
    // No name to check: the endpoint's certificate must carry its IP address.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), port_->endpoint_addrs[endpoint_index_].ip.str().c_str());
  }
  ERR_clear_error();
  // Still inside the attempt's connect timeout: a stuck handshake moves on to the next endpoint.
  tls_[upstream_side]->async_handshake(shared_from_this(), &tls_done, this, tls_upstream_handshake);
}

void tcp_session::on_upstream_handshake(const error_code& ec) {
  if (ec || connect_timed_out_) {
    ERR_clear_error();
    bump(port_->stats->worker(worker_.index()).upstream_tls_handshake_failures);
    attempt_failed("TLS handshake: " + (connect_timed_out_ ? std::string("timed out") : ec.message()));
    return;
  }
  connected();
}

void tcp_session::connected() {
  state_ = state::relaying;
  touch();
  connect_time_ = last_activity_ - attempt_started_;
  port_->stats->worker(worker_.index()).connect_duration.observe(connect_duration_bounds, connect_time_);
  port_->pin(from_asio(client_addr_.address()), endpoint_index_);  // a failed dial picked anew: remember the winner
  if (port_->endpoint_failing[endpoint_index_].load(std::memory_order_relaxed))
    port_->endpoint_failing[endpoint_index_].store(false, std::memory_order_relaxed);
  arm_timer(worker_.cfg().idle_timeout);
  start_relay();
}

void tcp_session::write_proxy_header() {
  // The destination the endpoint learns is the address the client connected to: the accepted
  // socket's local end (on a wildcard listener, the node address the client used).
  error_code local_ec;
  const tcp::endpoint local = client_.local_endpoint(local_ec);
  if (local_ec) {
    finish(close_reason::client_reset, true, true);  // the client is gone already
    return;
  }
  const config::host_port from{from_asio(client_addr_.address()), client_addr_.port()};
  const config::host_port to{from_asio(local.address()), local.port()};
  proxy_header_ = proxy_protocol_header(port_->proxy_protocol, from, to);
  // One async_write of a few dozen bytes to a fresh connection: it completes at once in practice,
  // and the relay starts only in its handler, so no client byte can overtake the header. Not
  // counted in bytes_client_to_upstream, which counts client bytes only.
  asio::async_write(upstream_, asio::buffer(proxy_header_), [self = shared_from_this()](const error_code& ec, std::size_t) {
    if (self->state_ == state::closed) return;
    if (ec) {
      self->finish(close_reason::upstream_reset, true, true);
      return;
    }
    self->proxy_header_ = std::string();
    self->upstream_ready();
  });
}

void tcp_session::start_relay() {
  // Both descriptors are O_NONBLOCK already (accept4, socket): plain relaying uses recv/send/
  // splice on them directly. TLS's close_notify goes out with Asio's synchronous write_some,
  // which must be told the socket is non-blocking so it does not emulate blocking.
  if (tls_[client_side] || tls_[upstream_side]) use_asio_io();
  wait_readable(in);
  if (state_ == state::relaying) wait_readable(out);
}

void tcp_session::use_asio_io() {
  mark_non_blocking(client_);
  mark_non_blocking(upstream_);
}

void tcp_session::do_wait(int d) {
  source(d).async_wait(tcp::socket::wait_read, [self = shared_from_this(), d](const error_code& ec) {
    if (self->state_ == state::closed) return;
    if (ec) {
      self->source_failed(d);
      return;
    }
    self->pump(d);
  });
}

void tcp_session::pump(int d) {
  if (halves_[d].spliced)
    pump_splice(d);
  else
    pump_copy(d);
}

void tcp_session::pump_splice(int d) {
  half& h = halves_[d];
  auto& c = port_->stats->worker(worker_.index());
  const int from = source(d).native_handle();
  const int to = sink(d).native_handle();
  for (int i = 0; i < max_reads_per_turn; ++i) {
    if (!h.pipe) {
      h.pipe = worker_.pipes().acquire();
      if (!h.pipe) {
        // Out of descriptors for a pipe: this connection copies through user space instead.
        splice_ = false;
        h.spliced = false;
        pump_copy(d);
        return;
      }
    }
    bool source_empty = false, source_eof = false;
    if (h.in_pipe == 0) {
      ssize_t n = ::splice(from, nullptr, h.pipe.w, nullptr, splice_chunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        h.in_pipe = static_cast<std::size_t>(n);
        h.bytes += h.in_pipe;
        bump(d == in ? c.bytes_client_to_upstream : c.bytes_upstream_to_client, h.in_pipe);
        touch();
      } else if (n == 0) {
        source_eof = true;
      } else if (errno == EAGAIN) {
        source_empty = true;
      } else if (errno != EINTR) {
        source_failed(d);
        return;
      }
    }
    while (h.in_pipe > 0) {
      ssize_t m = ::splice(h.pipe.r, nullptr, to, nullptr, h.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        h.in_pipe -= static_cast<std::size_t>(m);
        continue;
      }
      if (m < 0 && errno == EINTR) continue;
      if (m < 0 && errno == EAGAIN) {
        // The sink is full: wait until it drains, then continue emptying the pipe. The source is
        // not read meanwhile (flow control).
        sink(d).async_wait(tcp::socket::wait_write, [self = shared_from_this(), d](const error_code& ec) {
          if (self->state_ == state::closed) return;
          if (ec) {
            self->sink_failed(d);
            return;
          }
          self->pump_splice(d);
        });
        return;
      }
      sink_failed(d);
      return;
    }
    if (source_eof) {
      end_direction(d);
      return;
    }
    if (source_empty) {
      worker_.pipes().release(h.pipe, true);
      do_wait(d);
      return;
    }
  }
  asio::post(worker_.context(), [self = shared_from_this(), d] {
    if (self->state_ == state::relaying) self->pump_splice(d);
  });
}

std::size_t tcp_session::read_now(int d, char* buf, std::size_t size, error_code& ec) {
  tls_stream* t = tls_source(d);
  if (!t) {
    const ssize_t r = ::recv(source(d).native_handle(), buf, size, MSG_DONTWAIT);
    if (r > 0) return static_cast<std::size_t>(r);
    ec = r == 0 ? error_code(asio::error::eof) : error_code(errno, boost::system::system_category());
    return 0;
  }
  // TLS: the byte wait_readable() took, then what OpenSSL has already decrypted. SSL_pending
  // bytes come from the current record and need no socket I/O, so this never blocks or writes;
  // further records are decrypted by the next wait_readable() (an Asio operation, which does
  // the socket I/O OpenSSL asks for).
  half& h = halves_[d];
  std::size_t n = 0;
  if (h.peeked) {
    buf[0] = h.peek;
    h.peeked = false;
    n = 1;
  }
  SSL* ssl = t->native_handle();
  while (n < size && SSL_pending(ssl) > 0) {
    std::size_t got = 0;
    if (SSL_read_ex(ssl, buf + n, size - n, &got) != 1) {
      ERR_clear_error();
      break;
    }
    n += got;
  }
  if (n == 0) ec = asio::error::would_block;
  return n;
}

void tcp_session::wait_readable(int d) {
  tls_stream* t = tls_source(d);
  if (!t) {
    half& h = halves_[d];
    if (h.spliced) {
      do_wait(d);  // bulk: readiness, then splice
      return;
    }
    const bool known_empty = d == out && std::exchange(upstream_known_empty_, false);
    h.reader.start(worker_.context(), source(d), h.small, sizeof h.small, shared_from_this(), &small_read_done, this, d,
                   known_empty, &worker_.buffers());
    return;
  }
  t->async_read_some(&halves_[d].peek, 1, shared_from_this(), &tls_done, this, tls_read + d);
}

void tcp_session::on_tls_read(int d, const error_code& ec, std::size_t n) {
  if (ec) {
    tls_read_failed(d, ec);
    return;
  }
  halves_[d].peeked = n == 1;
  pump_copy(d);
}

void tcp_session::tls_read_failed(int d, const error_code& ec) {
  ERR_clear_error();
  // close_notify: the peer ended its direction cleanly; pass it on as a FIN (or close_notify).
  // An endpoint (upstreamTLS) that closes TCP without close_notify is taken as done too: many
  // HTTPS servers end that way, and the hop to the pod is inside the cluster.
  if (ec == asio::error::eof || (d == out && ec == asio::ssl::error::stream_truncated)) {
    end_direction(d);
    return;
  }
  // A client's TCP close without close_notify (ssl::error::stream_truncated: the stream may have
  // been cut short by an attacker or a crash), a reset, or a TLS error: the other side must not
  // take the data for complete, so it is reset.
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug("connection id={} {} TLS read failed: {}", id_, d == in ? "client" : "endpoint", ec.message());
  source_failed(d);
}

void tcp_session::small_read_done(void* self, int d, const error_code& ec, std::size_t n) {
  static_cast<tcp_session*>(self)->on_small_read(d, ec, n);
}

void tcp_session::on_small_read(int d, const error_code& ec, std::size_t n) {
  // A message longer than `small` came in one receive, its rest in a borrowed pool buffer.
  char* const rest = halves_[d].reader.take_overflow();
  if (state_ == state::closed) {
    worker_.buffers().release(rest);
    return;
  }
  if (ec == asio::error::eof) {
    end_direction(d);
    return;
  }
  if (ec) {
    source_failed(d);
    return;
  }
  half& h = halves_[d];
  count(d, n);
  if (d == out && h.small_reads < 2 && ++h.small_reads == 2) {
    // The endpoint's socket carries a conversation, not one exchange: give it TCP_INQ (the
    // client's has it from the listener), so waiting for each further message costs no EAGAIN
    // read (see drain_read). A connection per request never pays this setsockopt.
    const int one = 1;
    ::setsockopt(upstream_.native_handle(), IPPROTO_TCP, TCP_INQ, &one, sizeof one);
  }
  if (rest) {
    // The message is rest[0, n) once `small` is in front. Like any read into a pool buffer: a
    // short one took everything the socket had; a full one may be bulk (see pump_copy).
    std::memcpy(rest, h.small, sizeof h.small);
    h.buf = rest;
    if (n < worker_.buffers().size())
      h.drained = true;
    else if (splice_)
      h.spliced = true;
    if (forward_buffer(d, n)) pump_copy(d);
    return;
  }
  if (n == sizeof h.small) {
    // Filled (a build without the pool-extended receive): more is probably waiting. Read on in
    // a pool buffer behind these bytes, so that they all leave in one write.
    h.buf = worker_.buffers().acquire();
    std::memcpy(h.buf, h.small, n);
    h.filled = n;
    pump_copy(d);
    return;
  }
  // A short read from TCP took everything the socket had: write it and wait again (drain_read
  // queues that read for the next edge instead of trying it at once).
  h.drained = true;
  if (write_out(d, h.small, n) != write_status::done) return;
  wait_again(d);
}

void tcp_session::wait_again(int d) {
  halves_[d].drained = false;
  release_buffer(d);  // an idle direction holds no pool buffer
  wait_readable(d);
}

void tcp_session::count(int d, std::size_t n) {
  auto& c = port_->stats->worker(worker_.index());
  halves_[d].bytes += n;
  bump(d == in ? c.bytes_client_to_upstream : c.bytes_upstream_to_client, n);
  touch();
}

tcp_session::write_status tcp_session::write_out(int d, const char* data, std::size_t n) {
  if (tls_stream* t = tls_sink(d)) {
    // OpenSSL may have to wait for the socket while it writes a record: always asynchronous.
    t->async_write(data, n, shared_from_this(), &tls_done, this, tls_write + d);
    return write_status::pending;
  }
  auto done = [self = shared_from_this(), d](const error_code& ec, std::size_t) { self->on_write(d, ec); };
  ssize_t w = ::send(sink(d).native_handle(), data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      sink_failed(d);  // the sink's peer is gone: reset the source side
      return write_status::failed;
    }
    w = 0;
  }
  if (static_cast<std::size_t>(w) < n) {
    // The sink is full: finish this chunk asynchronously; no further read until it is out.
    asio::async_write(sink(d), asio::buffer(data + w, n - static_cast<std::size_t>(w)), std::move(done));
    return write_status::pending;
  }
  return write_status::done;
}

void tcp_session::pump_copy(int d) {
  half& h = halves_[d];
  if (h.spliced) {
    // The last buffer is out: bulk continues through a pipe.
    release_buffer(d);
    pump_splice(d);
    return;
  }
  const std::size_t size = worker_.buffers().size();
  const bool plain = tls_source(d) == nullptr;
  for (int i = 0; i < max_reads_per_turn; ++i) {
    if (!h.buf) h.buf = worker_.buffers().acquire();
    error_code ec;
    const std::size_t room = size - h.filled;
    const std::size_t got = read_now(d, h.buf + h.filled, room, ec);
    const std::size_t n = h.filled + got;  // bytes to write now
    h.filled = 0;
    if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::eof) {
      if (n == 0) {
        if (ec == asio::error::eof) {
          end_direction(d);
          return;
        }
        // Nothing more to read now: give the buffer back so an idle connection holds none, and
        // wait for the next edge.
        release_buffer(d);
        wait_readable(d);
        return;
      }
      h.drained = true;  // write what the small read brought, then wait (which sees the EOF again)
    } else if (ec) {
      // The source's peer reset (or failed): reset the other side so it learns the same.
      source_failed(d);
      return;
    } else {
      count(d, got);
      if (plain && got < room)
        h.drained = true;  // a short read from TCP took everything the socket had
      else if (plain && splice_ && n == size)
        h.spliced = true;  // a whole buffer at once: bulk; splice from the next read on
    }
    if (!forward_buffer(d, n)) return;
  }
  // Still readable after a full turn: let other connections run, then continue (no wait: the
  // reactor would not report an edge for data that is already there).
  asio::post(worker_.context(), [self = shared_from_this(), d] {
    if (self->state_ == state::relaying) self->pump_copy(d);
  });
}

bool tcp_session::forward_buffer(int d, std::size_t n) {
  half& h = halves_[d];
  if (write_out(d, h.buf, n) != write_status::done) return false;  // on_write continues
  if (h.drained) {
    wait_again(d);
    return false;
  }
  if (h.spliced) {
    release_buffer(d);
    pump_splice(d);
    return false;
  }
  return true;
}

void tcp_session::on_write(int d, const error_code& ec) {
  if (state_ == state::closed) return;
  if (ec) {
    if (tls_sink(d)) ERR_clear_error();
    if (spdlog::should_log(spdlog::level::debug))
      spdlog::debug("connection id={} write to {} failed: {}", id_, d == in ? "endpoint" : "client", ec.message());
    sink_failed(d);
    return;
  }
  touch();
  if (halves_[d].drained) {
    wait_again(d);
    return;
  }
  pump_copy(d);
}

void tcp_session::end_direction(int d) {
  if (spdlog::should_log(spdlog::level::trace))
    spdlog::trace("connection id={} {} sent FIN after {} bytes; half-closed", id_, d == in ? "client" : "endpoint",
                  halves_[d].bytes);
  release_buffer(d);
  halves_[d].done = true;
  // A TLS sink gets close_notify first (the pod's FIN means "end of stream" to a TLS client),
  // whether the FIN then comes from shutdown(2) or from the final close.
  if (tls_stream* t = tls_sink(d)) send_close_notify(*t, sink(d));
  if (halves_[in].done && halves_[out].done) {
    // The other direction ended already: closing both sockets sends this FIN too (nothing is
    // left unread on either, so close(2) means FIN, not RST); no separate shutdown(2).
    finish(close_reason::eof, false, false);
    return;
  }
  // The FIN goes out on a later turn of the event loop, not now. A peer that closes as soon as it
  // has its answer (an HTTP client after a "Connection: close" response) has usually sent its
  // own FIN by then, and the reactor reads it before this turn comes: both directions are then
  // done, and the close(2) in finish() sends this FIN without a shutdown(2).
  asio::post(worker_.context(), [self = shared_from_this(), d] {
    if (self->state_ != state::relaying) return;
    error_code ignored_ec;
    self->sink(d).shutdown(tcp::socket::shutdown_send, ignored_ec);
  });
  // Half-closed from now on: the shorter limit applies.
  touch();
  arm_timer(std::min(worker_.cfg().half_closed_timeout, worker_.cfg().idle_timeout));
}

// Sends close_notify on a TLS sink whose direction has ended, without disturbing a read that may
// be pending on the same stream (the other direction keeps relaying: half-close): OpenSSL writes
// the alert into a memory BIO swapped in for a moment, and the bytes go to the socket with one
// non-blocking write. Every earlier record of this direction has been written already (the
// direction ends only after its last write completed), and a socket too full for a few dozen
// bytes leaves no alert half-sent inside OpenSSL.
void tcp_session::send_close_notify(tls_stream& t, tcp::socket& sock) {
  SSL* ssl = t.native_handle();
  BIO* original = SSL_get_wbio(ssl);
  BIO* mem = BIO_new(BIO_s_mem());
  if (original == nullptr || mem == nullptr) {
    BIO_free(mem);
    return;
  }
  BIO_up_ref(original);
  SSL_set0_wbio(ssl, mem);  // drops the SSL's reference to `original`; ours keeps it alive
  ERR_clear_error();
  SSL_shutdown(ssl);        // writes close_notify into `mem` (returns 0: the peer's is not awaited)
  ERR_clear_error();
  char* data = nullptr;
  const long len = BIO_get_mem_data(mem, &data);
  std::string alert(data, len > 0 ? static_cast<std::size_t>(len) : 0);
  SSL_set0_wbio(ssl, original);  // frees `mem`, hands our reference back to the SSL
  if (alert.empty()) return;
  // A few dozen bytes on a socket whose last write completed: it fits unless the peer stopped
  // reading altogether, and then it would not read the alert either (it sees a truncation).
  error_code ignored_ec;
  sock.write_some(asio::buffer(alert), ignored_ec);
}

void tcp_session::source_failed(int d) {
  // The source's peer reset (or failed): reset the other side so it learns the same.
  finish(d == in ? close_reason::client_reset : close_reason::upstream_reset, d == out, d == in);
}

void tcp_session::sink_failed(int d) {
  // The sink's peer is gone: reset the source side.
  finish(d == in ? close_reason::upstream_reset : close_reason::client_reset, d == in, d == out);
}

void tcp_session::release_buffer(int d) {
  worker_.buffers().release(halves_[d].buf);
  halves_[d].buf = nullptr;
  worker_.pipes().release(halves_[d].pipe, halves_[d].in_pipe == 0);
  halves_[d].in_pipe = 0;
}

static void close_socket(boost::asio::ip::tcp::socket& s, bool reset) {
  if (!s.is_open()) return;
  error_code ignored_ec;
  if (reset) s.set_option(boost::asio::socket_base::linger(true, 0), ignored_ec);
  s.close(ignored_ec);
}

void tcp_session::finish(close_reason why, bool reset_client, bool reset_upstream) {
  if (state_ == state::closed) return;
  state_ = state::closed;
  const bool log_it = spdlog::should_log(spdlog::level::debug);
  close_socket(client_, reset_client);
  close_socket(upstream_, reset_upstream);
  release_handshake_slot();
  release_slot();
  timer_.cancel();
  release_buffer(in);
  release_buffer(out);

  auto& c = port_->stats->worker(worker_.index());
  switch (why) {
    case close_reason::idle_timeout: bump(c.closed_idle_timeout); break;
    case close_reason::half_closed_timeout: bump(c.closed_half_closed_timeout); break;
    case close_reason::client_reset: bump(c.closed_client_reset); break;
    case close_reason::upstream_reset: bump(c.closed_upstream_reset); break;
    default: break;
  }
  if (access_log* alog = worker_.shared().access; alog || log_it) {
    access_record r;
    r.protocol = "tcp";
    r.id = id_;
    r.client = format_endpoint(client_addr_);
    r.node_port = port_->node_port;
    r.service = port_->service_id;
    r.port_name = port_->port_name;
    if (attempts_) r.endpoint = port_->endpoint_addrs[endpoint_index_].str();
    r.attempts = attempts_;
    r.bytes_in = halves_[in].bytes;
    r.bytes_out = halves_[out].bytes;
    r.duration = clock_type::now() - started_;
    r.connect_time = connect_time_;
    r.reason = to_string(why);
    if (alog) alog->write(r);
    if (log_it) spdlog::debug("connection closed {}", access_fields(r));
  }
}

void tcp_session::arm_timer(clock_type::duration after) {
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this()](const error_code& ec) { self->on_timer(ec); });
}

void tcp_session::on_timer(const error_code& ec) {
  if (ec == asio::error::operation_aborted || state_ == state::closed) return;
  if (state_ == state::handshaking) {
    // Slowloris on TLS: the client did not finish its handshake in time. Closing the socket
    // aborts the handshake (its handler sees state closed).
    finish(close_reason::tls_handshake_timeout, true, false);
    bump(port_->stats->worker(worker_.index()).tls_handshake_errors_timeout);
    return;
  }
  if (state_ == state::connecting) {
    // This attempt took too long: closing the socket completes the connect with an error,
    // and on_connect moves on to the next endpoint.
    connect_timed_out_ = true;
    error_code ignored_ec;
    upstream_.close(ignored_ec);
    return;
  }
  const bool half_closed = halves_[in].done || halves_[out].done;
  const auto limit = half_closed ? std::min(worker_.cfg().half_closed_timeout, worker_.cfg().idle_timeout)
                                 : worker_.cfg().idle_timeout;
  const auto quiet = clock_type::now() - last_activity_;
  if (quiet >= limit) {
    finish(half_closed ? close_reason::half_closed_timeout : close_reason::idle_timeout, false, false);
    return;
  }
  arm_timer(limit - quiet);  // traffic moved meanwhile: check again when it could expire
}

}  // namespace npp::proxy
