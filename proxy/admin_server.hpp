#pragma once
// The admin HTTP endpoints (Boost.Beast): health (/livez, /readyz, /healthz) and metrics
// (/metrics, /status, /status.json). Runs on the control thread's io_context; everything it
// shows comes from the status callback, so it never touches data-plane state directly.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/status.hpp"

namespace boost::asio {
class io_context;
}

namespace npp::proxy {

/// What the admin server may ask the proxy (called on the io_context's thread).
struct admin_hooks {
  std::function<status_report()> status;
};

class admin_server {
 public:
  /// Which endpoints this listener serves.
  enum class role { health, metrics, both };
  /// Binds `address` ("0.0.0.0:10356", "[::]:10356", "127.0.0.1:0") and starts serving.
  /// Throws std::runtime_error with a clear message if the address is invalid or cannot be bound.
  admin_server(boost::asio::io_context& ctx, const std::string& address, role r, admin_hooks hooks);
  ~admin_server();
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;
  /// Stops accepting and closes open admin connections.
  void close();
  /// The bound port (useful with port 0).
  int port() const;

  /// What a connection writes back for `bytes`, everything a client sent before closing: the
  /// first request goes through the same Beast parser, limits, router and response headers as
  /// on a socket. "" when the connection would close without an answer (nothing or half a
  /// request sent). Pure (no socket); the admin HTTP fuzzer drives it.
  static std::string respond(role r, const admin_hooks& hooks, std::string_view bytes);

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace npp::proxy
