#include "proxy/reconciler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/endpoint_format.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

reconciler::reconciler(const settings& cfg, std::vector<bind_address> addrs, std::string node_name,
                       std::vector<std::unique_ptr<worker>>& workers)
    : cfg_(cfg), addrs_(std::move(addrs)), node_name_(std::move(node_name)), workers_(workers) {}

std::shared_ptr<const port_runtime> reconciler::runtime_for(const config::service& svc, const config::service_port& sp) {
  auto usable = config::usable_endpoints(svc, sp, node_name_);
  const port_id id{sp.proto, sp.node_port};
  const std::string stats_key = svc.id() + "/" + sp.name + "/" + std::string(config::to_string(sp.proto));

  // Same service port and the same endpoint set: keep the object, and with it the round-robin
  // position (state survives unrelated changes).
  if (auto it = ports_.find(id); it != ports_.end()) {
    const auto& old = *it->second;
    if (old.service_id == svc.id() && old.port_name == sp.name) {
      auto a = old.endpoint_addrs, b = usable;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      if (a == b) return it->second;
    }
  }
  auto rt = std::make_shared<port_runtime>();
  rt->service_id = svc.id();
  rt->port_name = sp.name;
  rt->proto = sp.proto;
  rt->node_port = sp.node_port;
  // A changed set is reshuffled and the index starts over (kube-proxy's userspace LoadBalancerRR),
  // so every node does not send its first connection to the same pod.
  std::shuffle(usable.begin(), usable.end(), rng_);
  rt->endpoint_addrs = usable;
  for (auto& ep : usable) rt->endpoints.emplace_back(to_asio(ep.ip), ep.port);
  rt->endpoint_failures = std::make_unique<std::atomic<std::uint64_t>[]>(usable.size());
  rt->endpoint_failing = std::make_unique<std::atomic<bool>[]>(usable.size());
  auto& stats = stats_[stats_key];
  if (!stats) stats = std::make_shared<port_stats>(static_cast<unsigned>(workers_.size()));
  rt->stats = stats;
  return rt;
}

apply_result reconciler::apply(const config::snapshot& snap) {
  apply_result result;
  std::map<port_id, std::shared_ptr<const port_runtime>> next_ports;
  std::set<std::string> live_stats;
  for (const auto& svc : snap.services) {
    for (const auto& sp : svc.ports) {
      ++result.ports;
      const port_id id{sp.proto, sp.node_port};
      next_ports[id] = runtime_for(svc, sp);
      live_stats.insert(svc.id() + "/" + sp.name + "/" + std::string(config::to_string(sp.proto)));
    }
  }
  std::erase_if(stats_, [&](const auto& kv) { return !live_stats.count(kv.first); });

  // Holders: open for new keys, close for removed ones.
  std::map<port_id, std::string> bind_errors;
  std::map<listener_key, unique_fd> next_holders;
  std::set<listener_key> failed;
  for (const auto& [id, rt] : next_ports) {
    // UDP has no listen state: a bound UDP socket receives datagrams, so it cannot hold a port
    // without serving it. A UDP port is bound only while it has endpoints; without, the kernel
    // answers with ICMP port unreachable, as kube-proxy's REJECT does.
    if (id.first == config::protocol::udp) continue;
    for (const auto& addr : addrs_) {
      listener_key key{addr, id.second, id.first};
      if (auto it = holders_.find(key); it != holders_.end()) {
        next_holders.emplace(key, std::move(it->second));
        continue;
      }
      std::string error;
      unique_fd fd;
      if (port_is_free(addr, id.second, id.first, &error)) fd = open_bound_socket(addr, id.second, id.first, 0, &error);
      if (!fd) {
        result.errors.push_back(error + " (" + rt->service_id + " port " + rt->port_name + ")");
        bind_errors[id] = error;
        failed.insert(key);
        continue;
      }
      next_holders.emplace(key, std::move(fd));
    }
  }
  holders_ = std::move(next_holders);  // the rest close here: removed ports are released

  // Listeners: per worker, every key that has endpoints; new keys get fresh sockets.
  std::vector<std::vector<listener_assignment>> plan(workers_.size());
  std::set<listener_key> next_listening;
  for (const auto& [id, rt] : next_ports) {
    for (const auto& addr : addrs_) {
      listener_key key{addr, id.second, id.first};
      if (failed.count(key)) continue;
      if (rt->endpoints.empty()) {
        ++result.refusing;
        continue;
      }
      if (listening_.count(key)) {
        for (auto& p : plan) p.push_back({key, rt, -1});
      } else {
        std::vector<unique_fd> fds;
        std::string error;
        // TCP keys are already held by their holder; a UDP key is new to us here.
        const bool ours = key.proto == config::protocol::tcp || port_is_free(addr, id.second, id.first, &error);
        for (std::size_t w = 0; ours && w < workers_.size(); ++w) {
          auto fd = open_bound_socket(addr, id.second, id.first, cfg_.backlog, &error);
          if (!fd) break;
          fds.push_back(std::move(fd));
        }
        if (fds.size() != workers_.size()) {
          result.errors.push_back(error + " (" + rt->service_id + " port " + rt->port_name + ")");
          bind_errors[id] = error;
          continue;
        }
        for (std::size_t w = 0; w < workers_.size(); ++w) plan[w].push_back({key, rt, fds[w].release()});
      }
      next_listening.insert(key);
      ++result.listening;
    }
  }
  listening_ = std::move(next_listening);
  ports_ = std::move(next_ports);
  bind_errors_ = std::move(bind_errors);
  snapshot_ = std::make_shared<const config::snapshot>(snap);
  for (std::size_t w = 0; w < workers_.size(); ++w) workers_[w]->post_update(std::move(plan[w]));
  return result;
}

void reconciler::fill(status_report& report) const {
  for (const auto& a : addrs_) report.bind_addresses.push_back(a.str() + (a.dual_stack ? " (dual-stack)" : ""));
  if (!snapshot_) return;
  for (const auto& svc : snapshot_->services) {
    for (const auto& sp : svc.ports) {
      port_status ps;
      ps.service = svc.id();
      ps.port_name = sp.name;
      ps.proto = sp.proto;
      ps.port = sp.port;
      ps.node_port = sp.node_port;
      ps.node_port_allocated = sp.node_port_allocated;
      const port_id id{sp.proto, sp.node_port};
      if (auto e = bind_errors_.find(id); e != bind_errors_.end()) ps.bind_error = e->second;
      const port_runtime* rt = nullptr;
      if (auto it = ports_.find(id); it != ports_.end()) rt = it->second.get();
      for (const auto& addr : addrs_)
        if (listening_.count(listener_key{addr, sp.node_port, sp.proto})) ps.listening = true;
      for (const auto& ep : sp.endpoints) {
        endpoint_status es;
        es.address = ep.address.str();
        es.ready = ep.ready;
        es.serving = ep.serving;
        es.terminating = ep.terminating;
        es.node_name = ep.node_name;
        if (rt) {
          for (std::size_t i = 0; i < rt->endpoint_addrs.size(); ++i) {
            if (rt->endpoint_addrs[i] == ep.address) {
              es.in_use = true;
              es.connect_failures = rt->endpoint_failures[i].load(std::memory_order_relaxed);
              es.failing = rt->endpoint_failing[i].load(std::memory_order_relaxed);
            }
          }
        }
        ps.endpoints.push_back(std::move(es));
      }
      if (rt && rt->stats) {
        for (unsigned w = 0; w < rt->stats->workers(); ++w) {
          const auto& c = rt->stats->worker(w);
#define NPP_SUM(name, help) ps.counters.name += c.name.load(std::memory_order_relaxed);
          NPP_PORT_COUNTERS(NPP_SUM)
#undef NPP_SUM
          ps.counters.connections_active += c.connections_active.load(std::memory_order_relaxed);
          ps.counters.udp_sessions_active += c.udp_sessions_active.load(std::memory_order_relaxed);
        }
      }
      report.connections_active += ps.counters.connections_active;
      report.ports.push_back(std::move(ps));
    }
  }
}

void reconciler::release_all() {
  holders_.clear();
  listening_.clear();
}

}  // namespace npp::proxy
