#include "proxy/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <thread>

#include "config/problem.hpp"
#include "proxy/access_log.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/file_watch.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

namespace asio = boost::asio;

/// Descriptors kept back from RLIMIT_NOFILE when deriving --max-connections: listeners (per
/// worker and port), holders, log files, the reload's file reads, and accept() headroom.
static constexpr unsigned long reserved_fds = 256;

struct server::impl {
  settings cfg;
  std::unique_ptr<access_log> access;  ///< --access-log; outlives the workers (declared before them)
  shared_state shared;
  std::vector<std::unique_ptr<worker>> workers;
  std::unique_ptr<reconciler> rec;
  asio::io_context control{1};
  asio::signal_set signals{control, SIGHUP, SIGTERM, SIGINT};
  // Declared after `control` so they are destroyed first. They stay open while draining, so
  // /readyz can say 503; they close when the control loop ends.
  std::unique_ptr<admin_server> health;
  std::unique_ptr<admin_server> metrics;
  std::thread joiner;
  bool draining = false;
  std::uint64_t generation = 0;
  std::uint64_t reloads = 0;
  std::uint64_t reload_failures = 0;
  std::string last_reload_error;
  std::string source;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point last_applied{};
  histogram_total sync_duration;  ///< every apply, on the control thread

  /// Runs a reload: the callback loads and validates; a failure keeps the running config.
  void reload_now(reload_fn& reload) {
    ++reloads;
    try {
      auto snap = reload();
      if (!snap) return;
      apply(*snap);
      last_reload_error.clear();
    } catch (const config::config_error& e) {
      ++reload_failures;
      last_reload_error = e.problems().empty() ? e.what() : e.problems().front().str();
      spdlog::error("configuration rejected ({} problem(s) in {}); keeping the running configuration",
                    e.problems().size(), e.source());
      for (const auto& p : e.problems()) spdlog::error("{}: {}", e.source(), p.str());
    } catch (const std::exception& e) {
      ++reload_failures;
      last_reload_error = e.what();
      spdlog::error("configuration rejected: {}; keeping the running configuration", e.what());
    }
  }

  void begin_drain(reload_fn&) {
    draining = true;
    spdlog::info("shutting down: listeners closed, draining connections for up to {} ms",
                 cfg.shutdown_grace_period.count());
    rec->release_all();
    auto deadline = std::chrono::steady_clock::now() + cfg.shutdown_grace_period;
    for (auto& w : workers) w->post_drain(deadline);
    joiner = std::thread([this] {
      for (auto& w : workers) w->join();
      asio::post(control, [this] {
        if (health) health->close();
        if (metrics) metrics->close();
        control.stop();
      });
    });
  }

  void wait_signal(reload_fn& reload) {
    signals.async_wait([this, &reload](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        if (!draining) {
          spdlog::info("SIGHUP: reloading configuration");
          if (access) {
            // logrotate's postrotate: the renamed file keeps what was written, new lines go to
            // a fresh file under the configured name.
            if (auto err = access->reopen(); !err.empty())
              spdlog::error("{}; still writing to the old file", err);
          }
          reload_now(reload);
        }
      } else if (!draining) {
        spdlog::info("{} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        begin_drain(reload);
      } else {
        spdlog::warn("second {}: closing every connection now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        for (auto& w : workers) w->post_drain(std::chrono::steady_clock::now());
      }
      wait_signal(reload);
    });
  }

  /// Applies a snapshot to every worker, timed for the sync duration histogram, and logs it.
  apply_result apply(const config::snapshot& snap) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = rec->apply(snap);
    const auto took = std::chrono::steady_clock::now() - t0;
    sync_duration.observe(sync_duration_bounds, took);
    for (auto& e : r.errors) spdlog::error("{}", e);
    ++generation;
    source = snap.source;
    last_applied = std::chrono::system_clock::now();
    spdlog::info(
        "configuration applied: generation={} source={} services={} ports={} listening={} refusing={} errors={} "
        "sync_ms={:.3f}",
        generation, snap.source, snap.services.size(), r.ports, r.listening, r.refusing, r.errors.size(),
        std::chrono::duration<double, std::milli>(took).count());
    return r;
  }
};

server::server(settings cfg, std::string node_name) : impl_(std::make_unique<impl>()) {
  // splice(2) and write(2) to a socket whose peer is gone raise SIGPIPE, which would kill the
  // process; the error is handled where it happens (EPIPE), like every other socket error.
  ::signal(SIGPIPE, SIG_IGN);
  auto& s = *impl_;
  s.cfg = std::move(cfg);
  if (s.cfg.workers == 0) s.cfg.workers = std::max(1u, std::thread::hardware_concurrency());
  const unsigned long nofile = raise_nofile_limit();
  // Descriptor budget: UDP sessions hold one each, proxied TCP connections two each.
  const unsigned long usable = nofile > 2 * reserved_fds ? nofile - reserved_fds : nofile / 2;
  if (s.cfg.udp_max_sessions == 0) s.cfg.udp_max_sessions = std::clamp<unsigned long>(usable / 8, 64, 65536);
  if (s.cfg.max_connections == 0) {
    s.cfg.max_connections = usable > s.cfg.udp_max_sessions ? (usable - s.cfg.udp_max_sessions) / 2 : usable / 4;
  }
  s.shared.max_connections = s.cfg.max_connections;
  s.shared.udp_max_sessions = s.cfg.udp_max_sessions;
  if (!s.cfg.access_log.empty()) {
    s.access = std::make_unique<access_log>(
        s.cfg.access_log, s.cfg.access_log_format == "json" ? access_log_format::json : access_log_format::text);
    s.shared.access = s.access.get();
  }
  std::string error;
  auto addrs = select_bind_addresses(s.cfg.nodeport_addresses, &error);
  if (addrs.empty()) throw std::runtime_error(error);
  std::string list;
  for (auto& a : addrs) list += (list.empty() ? "" : " ") + a.str() + (a.dual_stack ? " (dual-stack)" : "");
  spdlog::info("nodeport-proxy {}: {} workers, max {} TCP connections and {} UDP sessions (open-file limit {}), binding on {}",
               NPP_VERSION, s.cfg.workers, s.cfg.max_connections, s.cfg.udp_max_sessions, nofile, list);
  if (!s.cfg.allowed_sources.empty()) {
    std::string blocks;
    for (const auto& b : s.cfg.allowed_sources.blocks()) blocks += (blocks.empty() ? "" : ",") + b.str();
    spdlog::info("--allow-source-ranges: every nodePort accepts only clients from {} (that also pass the "
                 "Service's allowSourceRanges, if set)", blocks);
  }
  for (unsigned i = 0; i < s.cfg.workers; ++i) s.workers.push_back(std::make_unique<worker>(i, s.cfg, s.shared));
  s.rec = std::make_unique<reconciler>(s.cfg, std::move(addrs), std::move(node_name), s.workers);
  for (auto& w : s.workers) w->start();
  // The admin endpoints run on the control thread, where status() may be called. A bind failure
  // is logged, not fatal: the data plane matters more, and a probe that cannot connect fails
  // visibly anyway.
  admin_hooks hooks{[this] { return status(); }};
  auto open_admin = [&](const std::string& addr, admin_server::role r) -> std::unique_ptr<admin_server> {
    if (addr.empty()) return nullptr;
    try {
      auto a = std::make_unique<admin_server>(s.control, addr, r, hooks);
      spdlog::info("{} endpoints on {}", r == admin_server::role::health ? "health" : r == admin_server::role::metrics ? "metrics and status" : "health, metrics and status", addr);
      return a;
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return nullptr;
    }
  };
  if (s.cfg.healthz_bind_address == s.cfg.metrics_bind_address) {
    s.health = open_admin(s.cfg.healthz_bind_address, admin_server::role::both);
  } else {
    s.health = open_admin(s.cfg.healthz_bind_address, admin_server::role::health);
    s.metrics = open_admin(s.cfg.metrics_bind_address, admin_server::role::metrics);
  }
}

server::~server() {
  auto& s = *impl_;
  if (s.health) s.health->close();
  if (s.metrics) s.metrics->close();
  if (!s.draining) {
    s.rec->release_all();
    for (auto& w : s.workers) w->post_drain(std::chrono::steady_clock::now());
  }
  for (auto& w : s.workers) w->join();
  if (s.joiner.joinable()) s.joiner.join();
}

apply_result server::apply(const config::snapshot& snap) { return impl_->apply(snap); }

int server::run(reload_fn reload, std::vector<std::filesystem::path> watch, std::function<bool()> changed_since_load) {
  auto& s = *impl_;
  s.wait_signal(reload);
  std::unique_ptr<file_watch> watcher;
  if (!watch.empty()) {
    watcher = std::make_unique<file_watch>(s.control, watch, [&s, &reload] {
      if (s.draining) return;
      spdlog::info("input files changed: reloading configuration");
      s.reload_now(reload);
    });
    spdlog::info("watching {} input file(s) for changes", watch.size());
    if (changed_since_load && changed_since_load()) {
      // A write may still be in progress: give it the watch's quiet time, then reload unless the
      // watch has loaded the same bytes meanwhile.
      auto settle = std::make_shared<asio::steady_timer>(s.control, std::chrono::milliseconds(200));
      settle->async_wait([&s, &reload, changed_since_load, settle](const boost::system::error_code& ec) {
        if (ec || s.draining || !changed_since_load()) return;
        spdlog::info("input files changed during start-up: reloading configuration");
        s.reload_now(reload);
      });
    }
  }
  s.control.run();
  watcher.reset();
  if (s.joiner.joinable()) s.joiner.join();
  spdlog::info("shutdown complete");
  return 0;
}

void server::submit(reload_fn produce) {
  asio::post(impl_->control, [this, produce = std::move(produce)]() mutable {
    if (!impl_->draining) impl_->reload_now(produce);
  });
}

void server::stop() {
  asio::post(impl_->control, [this] {
    reload_fn none;
    if (!impl_->draining) impl_->begin_drain(none);
  });
}

const settings& server::cfg() const { return impl_->cfg; }

status_report server::status() const {
  const auto& s = *impl_;
  status_report r;
  r.version = NPP_VERSION;
  r.started = s.started;
  r.last_applied = s.last_applied;
  r.generation = s.generation;
  r.reloads_total = s.reloads;
  r.reload_failures_total = s.reload_failures;
  r.last_reload_ok = s.last_reload_error.empty();
  r.last_reload_error = s.last_reload_error;
  r.source = s.source;
  r.sync_duration = s.sync_duration;
  r.draining = s.draining;
  r.ready = s.generation > 0 && !s.draining;
  r.workers = s.cfg.workers;
  r.max_connections = s.cfg.max_connections;
  for (const auto& b : s.cfg.allowed_sources.blocks()) r.allow_source_ranges.push_back(b.str());
  s.rec->fill(r);
  return r;
}

}  // namespace npp::proxy
