#pragma once
// healthCheckNodePort of a LoadBalancer Service with externalTrafficPolicy: Local: answers the
// cloud load balancer's probe as kube-proxy does (pkg/proxy/healthcheck/service_health.go):
//   {"service":{"namespace":"ns","name":"svc"},"localEndpoints":N,"serviceProxyHealthy":true}
// with 200 when this node has a ready local endpoint and 503 otherwise, plus the header
// X-Load-Balancing-Endpoint-Weight: N. Any path and method get the same answer.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "proxy/listener.hpp"

namespace npp::proxy {

class worker;

class health_check_listener : public listener, public std::enable_shared_from_this<health_check_listener> {
 public:
  health_check_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port);
  void start() override;
  void close() override;
  void update(std::shared_ptr<const port_runtime> port) override { port_ = std::move(port); }

 private:
  void do_accept();

  worker& worker_;
  listener_key key_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<const port_runtime> port_;  ///< carries localEndpoints
  boost::asio::steady_timer backoff_;         ///< pause after accept errors such as EMFILE
};

}  // namespace npp::proxy
