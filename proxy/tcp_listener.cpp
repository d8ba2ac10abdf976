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

tcp_listener::tcp_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port)
    : worker_(w),
      key_(std::move(key)),
      acceptor_(w.context()),
      port_(std::move(port)),
      backoff_(w.context()) {
  acceptor_.assign(key_.addr.ip.v6 ? tcp::v6() : tcp::v4(), fd);
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

void tcp_listener::reject(tcp::socket& sock) {
  // A reset at once: the client learns immediately instead of waiting on a connection we
  // will never serve.
  error_code ignored_ec;
  sock.set_option(asio::socket_base::linger(true, 0), ignored_ec);
  sock.close(ignored_ec);
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
  auto& shared = worker_.shared();
  auto port = port_;
  if (shared.active_connections.fetch_add(1, std::memory_order_relaxed) >= shared.max_connections) {
    shared.active_connections.fetch_sub(1, std::memory_order_relaxed);
    auto& c = port->stats->worker(worker_.index());
    bump(c.connections_rejected_limit);
    if (spdlog::should_log(spdlog::level::debug)) {
      error_code peer_ec;
      auto peer = sock.remote_endpoint(peer_ec);
      spdlog::debug("connection closed id=0 client={} node_port={} endpoint=- attempts=0 bytes_in=0 bytes_out=0 "
                    "duration_ms=0 reason=limit",
                    peer_ec ? "?" : format_endpoint(peer), key_.port);
    }
    reject(sock);
  } else {
    auto id = shared.next_connection_id.fetch_add(1, std::memory_order_relaxed);
    std::make_shared<tcp_session>(worker_, std::move(sock), std::move(port), id)->start();
  }
  do_accept();
}

}  // namespace npp::proxy
