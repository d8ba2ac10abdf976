#include "proxy/tcp_listener.hpp"

#include <spdlog/spdlog.h>

#include "proxy/endpoint_format.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

/// Pause after a resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM) before accepting again: the
/// pending connection stays in the backlog, and retrying at once would spin on the same error.
static constexpr auto accept_backoff = std::chrono::milliseconds(100);
/// Connections taken from the queue per accept completion, after the first.
static constexpr int accept_batch = 16;

tcp_listener::tcp_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port)
    : worker_(w),
      key_(std::move(key)),
      acceptor_(w.context()),
      port_(std::move(port)),
      backoff_(w.context()) {
  acceptor_.assign(key_.addr.ip.v6 ? tcp::v6() : tcp::v4(), fd);
  error_code ignored_ec;
  acceptor_.non_blocking(true, ignored_ec);  // so the batch in on_accept never blocks
}

void tcp_listener::start() { do_accept(); }

void tcp_listener::close() {
  error_code ignored_ec;
  acceptor_.close(ignored_ec);
  backoff_.cancel();
}

void tcp_listener::do_accept() {
  acceptor_.async_accept(worker_.context(), [self = shared_from_this()](const error_code& ec, tcp::socket sock) {
    self->on_accept(ec, std::move(sock));
  });
}

void tcp_listener::reject(tcp::socket& sock, const tcp::endpoint& peer, std::atomic<std::uint64_t>& counter,
                          close_reason why) {
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug("connection closed id=0 client={} node_port={} endpoint=- attempts=0 bytes_in=0 bytes_out=0 "
                  "duration_ms=0 reason={}",
                  format_endpoint(peer), key_.port, to_string(why));
  // A reset at once, before reading a byte: the client learns immediately instead of waiting on
  // a connection we will never serve, and a denied client gets no more than a refusal would
  // tell it (the handshake itself is completed by the kernel before we see the client).
  error_code ignored_ec;
  sock.set_option(asio::socket_base::linger(true, 0), ignored_ec);
  sock.close(ignored_ec);
  bump(counter);  // after the close: a scrape that sees the count finds the client reset
}

void tcp_listener::on_accept(const error_code& ec, tcp::socket sock) {
  if (!acceptor_.is_open()) return;  // closed by an update or the drain
  if (ec) {
    const int e = ec.value();
    const bool resource = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
    auto now = std::chrono::steady_clock::now();
    if (now - last_error_log_ > std::chrono::seconds(1)) {
      last_error_log_ = now;
      spdlog::warn("accept on {} failed: {}{}", key_.str(), ec.message(),
                   resource ? " (pausing accepts for 100 ms; raise the open-file limit or lower --max-connections)" : "");
    }
    if (resource) {
      backoff_.expires_after(accept_backoff);
      backoff_.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec && self->acceptor_.is_open()) self->do_accept();
      });
      return;
    }
    do_accept();
    return;
  }
  admit(std::move(sock));
  // Take what else is already queued without a trip through the reactor per connection (a
  // burst of new connections arrives together); bounded so one listener cannot starve the rest
  // of the worker. The acceptor is non-blocking, so an empty queue answers would_block at once.
  for (int i = 0; i < accept_batch && acceptor_.is_open(); ++i) {
    error_code more_ec;
    tcp::socket next = acceptor_.accept(worker_.context(), more_ec);
    if (more_ec) break;  // would_block, or an error the async accept below reports and handles
    admit(std::move(next));
  }
  do_accept();
}

void tcp_listener::admit(tcp::socket sock) {
  auto port = port_;
  auto& c = port->stats->worker(worker_.index());
  error_code peer_ec;
  const tcp::endpoint peer = sock.remote_endpoint(peer_ec);
  if (peer_ec) {
    // The client reset while it waited in the accept queue: nobody is left to serve, and its
    // address (for the allowlist and limits) is unknown. Close without contacting an endpoint.
    spdlog::debug("accepted connection on {} already gone: {}", key_.str(), peer_ec.message());
    error_code ignored_ec;
    sock.close(ignored_ec);
    return;
  }
  // The checks, cheapest and most fundamental first: who may connect at all, then how many.
  const config::ip_address source = from_asio(peer.address());  // IPv4-mapped -> IPv4
  if (!worker_.cfg().allowed_sources.allows(source) || !port->allowed_sources.allows(source)) {
    reject(sock, peer, c.connections_rejected_allowlist, close_reason::allowlist);
    return;
  }
  auto& shared = worker_.shared();
  if (shared.active_connections.fetch_add(1, std::memory_order_relaxed) >= shared.max_connections) {
    shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
    reject(sock, peer, c.connections_rejected_limit, close_reason::limit);
    return;
  }
  connection_limits::slot slot;
  switch (port->limits->admit(source, port->max_connections, port->max_connections_per_source, slot)) {
    case connection_limits::verdict::admitted: break;
    case connection_limits::verdict::service_limit:
      shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
      reject(sock, peer, c.connections_rejected_service_limit, close_reason::service_limit);
      return;
    case connection_limits::verdict::source_limit:
      shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
      reject(sock, peer, c.connections_rejected_source_limit, close_reason::source_limit);
      return;
  }
  // TLS: a slot among --tls-max-handshakes, held until the handshake ends (the session gives it
  // back). Last: a client reset for this reason takes no other budget.
  if (port->tls && shared.tls_handshakes.fetch_add(1, std::memory_order_relaxed) >= worker_.cfg().tls_max_handshakes) {
    shared.tls_handshakes.fetch_sub(1, std::memory_order_relaxed);
    shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
    slot.release();
    reject(sock, peer, c.tls_handshake_errors_limit, close_reason::tls_handshake_limit);
    return;
  }
  // The session gives back the global count (its destructor) and the Service's (the slot).
  auto id = shared.next_connection_id.fetch_add(1, std::memory_order_relaxed);
  std::make_shared<tcp_session>(worker_, std::move(sock), peer, std::move(port), std::move(slot), id)->start();
}

}  // namespace npp::proxy
