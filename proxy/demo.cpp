#include "proxy/demo.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "proxy/endpoint_format.hpp"
#include "proxy/server.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

std::string default_demo_file() {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates{"examples/demo.json"};
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / "../examples/demo.json");
    candidates.push_back(exe.parent_path() / "../share/nodeport-proxy/examples/demo.json");
  }
  for (auto& c : candidates)
    if (fs::exists(c, ec)) return c.lexically_normal().string();
  throw std::runtime_error("examples/demo.json not found (run the demo from the repository, or pass --endpoints-file)");
}

namespace {

/// One HTTP backend: answers every request with its own name, then closes.
class http_backend {
 public:
  http_backend(asio::io_context& ctx, const tcp::endpoint& at, std::string name)
      : acceptor_(ctx, at), name_(std::move(name)) {
    do_accept();
  }

 private:
  struct conn : std::enable_shared_from_this<conn> {
    explicit conn(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    asio::streambuf in{8192};  // a request header larger than this is dropped
    std::string reply;
  };

  void do_accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) serve(std::make_shared<conn>(std::move(s)));
      do_accept();
    });
  }

  void serve(std::shared_ptr<conn> c) {
    asio::async_read_until(c->sock, c->in, "\r\n\r\n", [this, c](const error_code& ec, std::size_t) {
      if (ec) return;
      error_code peer_ec;
      auto body = "hello from " + name_ + " (" + format_endpoint(acceptor_.local_endpoint()) + ")\n";
      c->reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body;
      asio::async_write(c->sock, asio::buffer(c->reply), [c](const error_code&, std::size_t) {
        error_code ignored_ec;
        c->sock.shutdown(tcp::socket::shutdown_both, ignored_ec);
      });
    });
  }

  tcp::acceptor acceptor_;
  std::string name_;
};

/// One GET through the proxy; returns the body or an error text.
std::string fetch(const tcp::endpoint& to) {
  asio::io_context ctx;
  tcp::socket s(ctx);
  error_code ec;
  s.connect(to, ec);
  if (ec) return "error: " + ec.message();
  std::string req = "GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n";
  asio::write(s, asio::buffer(req), ec);
  std::string resp;
  asio::read(s, asio::dynamic_buffer(resp), ec);
  auto body = resp.find("\r\n\r\n");
  if (body == std::string::npos) return "error: " + (ec ? ec.message() : std::string("no response"));
  auto text = resp.substr(body + 4);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

int run_demo(const config::snapshot& snap, settings cfg, std::string node_name, const demo_options& opts) {
  // Backends for every loopback endpoint in the file.
  asio::io_context backend_ctx{1};
  std::vector<std::unique_ptr<http_backend>> backends;
  int n = 0;
  for (auto& svc : snap.services)
    for (auto& p : svc.ports)
      for (auto& ep : p.endpoints) {
        if (!ep.address.ip.is_loopback()) continue;
        tcp::endpoint at(to_asio(ep.address.ip), ep.address.port);
        try {
          backends.push_back(std::make_unique<http_backend>(backend_ctx, at, "backend-" + std::to_string(++n)));
          spdlog::info("demo backend-{} listening on {}", n, ep.address.str());
        } catch (const std::exception& e) {
          spdlog::warn("demo backend on {} not started: {}", ep.address.str(), e.what());
        }
      }
  std::thread backend_thread([&] { backend_ctx.run(); });

  int rc = 1;
  {
    server srv(cfg, std::move(node_name));
    auto r = srv.apply(snap);
    if (!r.errors.empty()) {
      spdlog::error("demo: could not bind every nodePort");
      backend_ctx.stop();
      backend_thread.join();
      return 1;
    }
    const config::service_port* first = nullptr;
    for (auto& svc : snap.services)
      for (auto& p : svc.ports)
        if (!first && p.proto == config::protocol::tcp) first = &p;

    std::thread client([&] {
      if (first) {
        tcp::endpoint to(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(first->node_port));
        std::cout << "\n" << opts.requests << " requests through nodePort " << first->node_port << ":\n";
        for (int i = 1; i <= opts.requests; ++i) std::cout << "  request " << i << " -> " << fetch(to) << "\n";
        std::cout << "\nTry it yourself:  curl http://127.0.0.1:" << first->node_port << "/\n";
        if (!cfg.metrics_bind_address.empty())
          std::cout << "Live status page: http://" << cfg.metrics_bind_address << "/status\n";
        if (!opts.exit_after) std::cout << "Press Ctrl-C to stop.\n";
        std::cout.flush();
      }
      if (opts.exit_after) srv.stop();
    });
    rc = srv.run([] { return config::snapshot_ptr{}; });
    client.join();
  }
  backend_ctx.stop();
  backend_thread.join();
  return rc;
}

}  // namespace npp::proxy
