#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "proxy/health_check_listener.hpp"
#include "proxy/tcp_listener.hpp"
#include "proxy/udp_batch.hpp"
#include "proxy/udp_listener.hpp"

namespace npp::proxy {

namespace asio = boost::asio;

/// Free relay buffers each worker keeps for reuse (the rest go back to the allocator).
static constexpr std::size_t cached_buffers = 64;
/// Empty splice pipes each worker keeps for reuse (two descriptors each).
static constexpr std::size_t cached_pipes = 32;

worker::worker(unsigned index, const settings& cfg, shared_state& shared)
    : index_(index),
      cfg_(cfg),
      shared_(shared),
      guard_(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ctx_.get_executor())),
      buffers_(cfg.buffer_size, cached_buffers),
      pipes_(cached_pipes, cfg.splice_pipe_size) {
  udp_cap_ = std::max<std::size_t>(1, shared.udp_max_sessions / std::max(1u, cfg.workers));
}

worker::~worker() {
  if (thread_.joinable()) thread_.join();
}

udp_batch& worker::datagrams() {
  if (!datagrams_) datagrams_ = std::make_unique<udp_batch>();
  return *datagrams_;
}

void worker::start() {
  thread_ = std::thread([this] {
    try {
      ctx_.run();
    } catch (const std::exception& e) {
      // Nothing on the data path throws by design; reaching this is a bug worth a loud exit.
      spdlog::critical("worker {} stopped by an exception: {}", index_, e.what());
      std::abort();
    }
  });
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
}

void worker::post_update(std::vector<listener_assignment> changed, std::vector<listener_key> removed,
                         std::function<void()> done) {
  asio::post(ctx_, [this, changed = std::move(changed), removed = std::move(removed), done = std::move(done)]() mutable {
    apply(std::move(changed), removed);
    if (done) done();
  });
}

void worker::post_drain(std::chrono::steady_clock::time_point deadline) {
  asio::post(ctx_, [this, deadline] { drain(deadline); });
}

void worker::apply(std::vector<listener_assignment> changed, const std::vector<listener_key>& removed) {
  if (draining_) {
    for (auto& a : changed)
      if (a.fd >= 0) ::close(a.fd);
    return;
  }
  for (const auto& key : removed) {  // removed ports: stop accepting now
    if (auto it = listeners_.find(key); it != listeners_.end()) {
      it->second->close();
      listeners_.erase(it);
    }
  }
  for (auto& a : changed) {
    auto it = listeners_.find(a.key);
    if (it != listeners_.end() && a.fd >= 0) {
      // A fresh socket for a key we serve: the port changed role; the old listener goes.
      it->second->close();
      listeners_.erase(it);
      it = listeners_.end();
    }
    if (it != listeners_.end()) {
      it->second->update(std::move(a.port));
    } else if (a.fd >= 0) {
      std::shared_ptr<listener> l;
      if (a.port->what == port_runtime::role::health_check)
        l = std::make_shared<health_check_listener>(*this, a.key, a.fd, std::move(a.port));
      else if (a.key.proto == config::protocol::tcp)
        l = std::make_shared<tcp_listener>(*this, a.key, a.fd, std::move(a.port));
      else
        l = std::make_shared<udp_listener>(*this, a.key, a.fd, std::move(a.port));
      l->start();
      listeners_.emplace(a.key, std::move(l));
    }
  }
}

void worker::add_session(tcp_session& s) {
  live_.push_back(s);
  ++live_sessions_;
}

void worker::session_ended() {
  --live_sessions_;
  if (draining_) maybe_finish_drain();
}

void worker::drain(std::chrono::steady_clock::time_point deadline) {
  draining_ = true;
  for (auto& [key, l] : listeners_) l->close();
  listeners_.clear();
  drain_timer_.expires_at(deadline);
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (live_sessions_ > 0) spdlog::info("worker {}: grace period over, closing {} connections", index_, live_sessions_);
    // abort() may destroy sessions (and unlink them) as their handlers run later; collect
    // strong references first so the list is not modified while we walk it.
    std::vector<std::shared_ptr<tcp_session>> open;
    for (auto& s : live_) {
      auto p = s.weak_from_this().lock();
      if (p) open.push_back(std::move(p));
    }
    for (auto& p : open) p->abort(close_reason::shutdown);
  });
  maybe_finish_drain();
}

void worker::maybe_finish_drain() {
  if (live_sessions_ == 0) {
    drain_timer_.cancel();
    guard_.reset();  // run() returns once the last handlers have run
  }
}

}  // namespace npp::proxy
