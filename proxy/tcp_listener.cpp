#include "proxy/tcp_listener.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "proxy/access_log.hpp"
#include "proxy/asio_tuning.hpp"
#include "proxy/endpoint_format.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

/// Pause after a resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM) before accepting again: the
/// pending connection stays in the backlog, and retrying at once would spin on the same error.
static constexpr auto accept_backoff = std::chrono::milliseconds(100);
/// Connections taken from the queue before other work on the worker gets a turn.
static constexpr int accept_batch = 32;

tcp_listener::tcp_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port)
    : worker_(w),
      key_(std::move(key)),
      acceptor_(w.context()),
      port_(std::move(port)),
      backoff_(w.context()) {
  acceptor_.assign(key_.addr.ip.v6 ? tcp::v6() : tcp::v4(), fd);  // non-blocking since socket()
}

void tcp_listener::start() { do_accept(/*known_empty=*/false); }

void tcp_listener::close() {
  error_code ignored_ec;
  acceptor_.close(ignored_ec);
  backoff_.cancel();
}

void tcp_listener::do_accept(bool known_empty) {
  // The reactor is edge-triggered: a wait while connections are still queued would not wake up
  // until the next one arrives. So only the first wait (connections may have queued since the
  // socket was opened) may find the queue non-empty; every other wait follows an EAGAIN.
  ready_.start(
      worker_.context(), acceptor_, shared_from_this(),
      [](void* target, int, const error_code& ec, std::size_t) {
        auto* self = static_cast<tcp_listener*>(target);
        if (ec || !self->acceptor_.is_open()) return;  // closed by an update or the drain
        self->accept_queued();
      },
      this, known_empty);
}

void tcp_listener::accept_queued() {
  // accept4 instead of Asio's accept: the client socket is born non-blocking (splice needs
  // O_NONBLOCK, which would otherwise cost an ioctl), and the peer address comes with it (no
  // getpeername). TCP_NODELAY is inherited from the listening socket.
  const int listen_fd = acceptor_.native_handle();
  for (int i = 0; i < accept_batch; ++i) {
    sockaddr_storage peer_addr{};
    socklen_t len = sizeof peer_addr;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer_addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        do_accept(/*known_empty=*/true);
        return;
      }
      // A client that reset while queued (ECONNABORTED), or a signal: take the next one.
      if (err == ECONNABORTED || err == EINTR || err == EPROTO) continue;
      accept_failed(err);
      return;
    }
    tcp::endpoint peer;
    std::memcpy(peer.data(), &peer_addr, std::min<std::size_t>(len, peer.capacity()));
    peer.resize(std::min<std::size_t>(len, peer.capacity()));
    admit(fd, peer);
    if (!acceptor_.is_open()) return;
  }
  // A full batch and perhaps more queued: let the worker's other connections run first (a
  // burst on one port must not starve the rest), then continue without waiting for an edge.
  asio::post(worker_.context(), [self = shared_from_this()] {
    if (self->acceptor_.is_open()) self->accept_queued();
  });
}

void tcp_listener::accept_failed(int err) {
  const bool resource = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
  auto now = std::chrono::steady_clock::now();
  if (now - last_error_log_ > std::chrono::seconds(1)) {
    last_error_log_ = now;
    spdlog::warn("accept on {} failed: {}{}", key_.str(), std::strerror(err),
                 resource ? " (pausing accepts for 100 ms; raise the open-file limit or lower --max-connections)" : "");
  }
  // Either way the queue is tried again directly (not by waiting for an edge): the pending
  // connection stays queued, and no new edge may come. Resource errors pause first, so the
  // same error does not spin.
  backoff_.expires_after(resource ? accept_backoff : std::chrono::milliseconds(1));
  backoff_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec && self->acceptor_.is_open()) self->accept_queued();
  });
}

void tcp_listener::reject(int fd, const tcp::endpoint& peer, std::atomic<std::uint64_t>& counter, close_reason why) {
  if (access_log* alog = worker_.shared().access; alog || spdlog::should_log(spdlog::level::debug)) {
    access_record r;
    r.protocol = "tcp";
    r.client = format_endpoint(peer);
    r.node_port = key_.port;
    if (port_) {
      r.service = port_->service_id;
      r.port_name = port_->port_name;
    }
    r.reason = to_string(why);
    if (alog) alog->write(r);
    spdlog::debug("connection closed {}", access_fields(r));
  }
  // A reset at once, before reading a byte: the client learns immediately instead of waiting on
  // a connection we will never serve, and a denied client gets no more than a refusal would
  // tell it (the handshake itself is completed by the kernel before we see the client). The
  // descriptor never reaches the reactor.
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
  bump(counter);  // after the close: a scrape that sees the count finds the client reset
}

void tcp_listener::admit(int fd, const tcp::endpoint& peer) {
  auto port = port_;
  auto& c = port->stats->worker(worker_.index());
  // The checks, cheapest and most fundamental first: who may connect at all, then how many.
  const config::ip_address source = from_asio(peer.address());  // IPv4-mapped -> IPv4
  if (!worker_.cfg().allowed_sources.allows(source) || !port->allowed_sources.allows(source)) {
    reject(fd, peer, c.connections_rejected_allowlist, close_reason::allowlist);
    return;
  }
  auto& shared = worker_.shared();
  if (shared.active_connections.fetch_add(1, std::memory_order_relaxed) >= shared.max_connections) {
    shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
    reject(fd, peer, c.connections_rejected_limit, close_reason::limit);
    return;
  }
  connection_limits::slot slot;
  switch (port->limits->admit(source, port->max_connections, port->max_connections_per_source, slot)) {
    case connection_limits::verdict::admitted: break;
    case connection_limits::verdict::service_limit:
      shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
      reject(fd, peer, c.connections_rejected_service_limit, close_reason::service_limit);
      return;
    case connection_limits::verdict::source_limit:
      shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
      reject(fd, peer, c.connections_rejected_source_limit, close_reason::source_limit);
      return;
  }
  // TLS: a slot among --tls-max-handshakes, held until the handshake ends (the session gives it
  // back). Last: a client reset for this reason takes no other budget.
  if (port->tls && shared.tls_handshakes.fetch_add(1, std::memory_order_relaxed) >= worker_.cfg().tls_max_handshakes) {
    shared.tls_handshakes.fetch_sub(1, std::memory_order_relaxed);
    shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
    slot.release();
    reject(fd, peer, c.tls_handshake_errors_limit, close_reason::tls_handshake_limit);
    return;
  }
  tcp::socket sock(worker_.context());
  error_code ec;
  adopt_socket(sock, peer.protocol(), fd, ec);  // registers with the reactor
  if (ec) {
    ::close(fd);
    shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
    if (port->tls) shared.tls_handshakes.fetch_sub(1, std::memory_order_relaxed);
    spdlog::warn("accepted connection on {} dropped: {}", key_.str(), ec.message());
    return;
  }
  // The session gives back the global count (its destructor) and the Service's (the slot).
  auto id = shared.next_connection_id.fetch_add(1, std::memory_order_relaxed);
  std::make_shared<tcp_session>(worker_, std::move(sock), peer, std::move(port), std::move(slot), id)->start();
}

}  // namespace npp::proxy
