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
      if (sp.proto == config::protocol::udp) {
        if (warned_udp_.insert(id).second)
          spdlog::warn("{} port {} ({}): UDP forwarding is not supported yet; the port is not bound", svc.id(),
                       sp.node_port, sp.name);
        continue;
      }
      next_ports[id] = runtime_for(svc, sp);
      live_stats.insert(svc.id() + "/" + sp.name + "/" + std::string(config::to_string(sp.proto)));
    }
  }
  std::erase_if(stats_, [&](const auto& kv) { return !live_stats.count(kv.first); });

  // Holders: open for new keys, close for removed ones.
  std::map<listener_key, unique_fd> next_holders;
  std::set<listener_key> failed;
  for (const auto& [id, rt] : next_ports) {
    for (const auto& addr : addrs_) {
      listener_key key{addr, id.second, id.first};
      if (auto it = holders_.find(key); it != holders_.end()) {
        next_holders.emplace(key, std::move(it->second));
        continue;
      }
      std::string error;
      auto fd = open_bound_socket(addr, id.second, id.first, 0, &error);
      if (!fd) {
        result.errors.push_back(error + " (" + rt->service_id + " port " + rt->port_name + ")");
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
        for (std::size_t w = 0; w < workers_.size(); ++w) {
          auto fd = open_bound_socket(addr, id.second, id.first, cfg_.backlog, &error);
          if (!fd) break;
          fds.push_back(std::move(fd));
        }
        if (fds.size() != workers_.size()) {
          result.errors.push_back(error + " (" + rt->service_id + " port " + rt->port_name + ")");
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
  for (std::size_t w = 0; w < workers_.size(); ++w) workers_[w]->post_update(std::move(plan[w]));
  return result;
}

void reconciler::release_all() {
  holders_.clear();
  listening_.clear();
}

}  // namespace npp::proxy
