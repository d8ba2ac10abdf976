#include "proxy/health_check_listener.hpp"

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "proxy/worker.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

/// A probe must send its request within this time; its headers may not exceed max_request.
static constexpr auto request_timeout = std::chrono::seconds(5);
static constexpr std::size_t max_request = 8192;

namespace {

/// One probe connection: read the request head, answer, close.
class probe : public std::enable_shared_from_this<probe> {
 public:
  probe(tcp::socket s, std::string reply) : sock_(std::move(s)), timer_(sock_.get_executor()), reply_(std::move(reply)) {}
  void start() {
    timer_.expires_after(request_timeout);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) {
        error_code ignored_ec;
        self->sock_.close(ignored_ec);
      }
    });
    asio::async_read_until(sock_, in_, "\r\n\r\n", [self = shared_from_this()](const error_code& ec, std::size_t) {
      if (ec) {
        self->timer_.cancel();
        return;  // timeout, oversized request or a closed connection: nothing to answer
      }
      asio::async_write(self->sock_, asio::buffer(self->reply_), [self](const error_code&, std::size_t) {
        error_code ignored_ec;
        self->sock_.shutdown(tcp::socket::shutdown_both, ignored_ec);
        self->sock_.close(ignored_ec);
        self->timer_.cancel();
      });
    });
  }

 private:
  tcp::socket sock_;
  asio::steady_timer timer_;
  asio::streambuf in_{max_request};
  std::string reply_;
};

std::string make_reply(const port_runtime& p) {
  nlohmann::json body = {{"service", {{"namespace", p.service_namespace}, {"name", p.service_name}}},
                         {"localEndpoints", p.local_endpoints},
                         {"serviceProxyHealthy", true}};
  const std::string text = body.dump();
  const bool ok = p.local_endpoints > 0;
  return std::string("HTTP/1.1 ") + (ok ? "200 OK" : "503 Service Unavailable") +
         "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: " +
         std::to_string(p.local_endpoints) + "\r\nContent-Length: " + std::to_string(text.size()) +
         "\r\nConnection: close\r\n\r\n" + text;
}

}  // namespace

health_check_listener::health_check_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port)
    : worker_(w), key_(std::move(key)), acceptor_(w.context()), port_(std::move(port)), backoff_(w.context()) {
  acceptor_.assign(key_.addr.ip.v6 ? tcp::v6() : tcp::v4(), fd);
}

void health_check_listener::start() { do_accept(); }

void health_check_listener::close() {
  error_code ignored_ec;
  acceptor_.close(ignored_ec);
  backoff_.cancel();
}

void health_check_listener::do_accept() {
  acceptor_.async_accept(worker_.context(), [self = shared_from_this()](const error_code& ec, tcp::socket sock) {
    if (!self->acceptor_.is_open()) return;
    if (ec) {
      self->backoff_.expires_after(std::chrono::milliseconds(100));
      self->backoff_.async_wait([self](const error_code& e) {
        if (!e && self->acceptor_.is_open()) self->do_accept();
      });
      return;
    }
    std::make_shared<probe>(std::move(sock), make_reply(*self->port_))->start();
    self->do_accept();
  });
}

}  // namespace npp::proxy
