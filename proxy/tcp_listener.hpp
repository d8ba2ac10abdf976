#pragma once
// One worker's SO_REUSEPORT acceptor for one (address, nodePort). Accepts and hands each client
// to a new tcp_session; the kernel spreads connections over the workers' sockets.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "proxy/listener.hpp"
#include "proxy/tcp_session.hpp"

namespace npp::proxy {

class worker;

class tcp_listener : public listener, public std::enable_shared_from_this<tcp_listener> {
 public:
  /// Adopts `fd` (a bound, listening, non-blocking socket).
  tcp_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port);
  void start() override;
  /// Stops accepting; connections already accepted are not affected.
  void close() override;
  /// New connections use `port` from now on.
  void update(std::shared_ptr<const port_runtime> port) override { port_ = std::move(port); }

 private:
  /// Waits until the queue has a connection (the reactor reports a new one). known_empty: an
  /// accept4 just said EAGAIN (see readable_wait).
  void do_accept(bool known_empty);
  /// Takes up to accept_batch queued connections with accept4(2), then waits again once the
  /// queue is empty, or lets other work run first if it is not.
  void accept_queued();
  /// A failed accept4: pause on resource errors (EMFILE...), else carry on.
  void accept_failed(int err);
  /// Runs the admission checks on an accepted client (allowlists, --max-connections, the
  /// Service's limits) and starts its session, or resets it and counts why. Takes `fd`.
  void admit(int fd, const boost::asio::ip::tcp::endpoint& peer);
  /// Resets a client that will not be served (closes `fd`), bumps `counter` and logs `why`.
  void reject(int fd, const boost::asio::ip::tcp::endpoint& peer, std::atomic<std::uint64_t>& counter,
              close_reason why);

  worker& worker_;                            ///< owning worker
  listener_key key_;                          ///< what this socket is bound to
  /// The SO_REUSEPORT listening socket. Held as a tcp::socket, not an acceptor: the proxy
  /// accepts with accept4 itself, and readable_wait needs the socket's reactor state, which
  /// basic_socket_acceptor keeps private.
  boost::asio::ip::tcp::socket acceptor_;
  readable_wait ready_;                       ///< waits for queued connections
  std::shared_ptr<const port_runtime> port_;  ///< config for new connections
  boost::asio::steady_timer backoff_;         ///< pause after accept errors such as EMFILE
  std::chrono::steady_clock::time_point last_error_log_{};  ///< rate limit for accept errors
};

}  // namespace npp::proxy
