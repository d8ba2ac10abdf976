#include "proxy/reconciler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <latch>
#include <unordered_map>
#include <unordered_set>

#include "proxy/endpoint_format.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

reconciler::reconciler(const settings& cfg, std::vector<bind_address> addrs, std::string node_name,
                       std::vector<std::unique_ptr<worker>>& workers)
    : cfg_(cfg), addrs_(std::move(addrs)), node_name_(std::move(node_name)), workers_(workers) {}

namespace {

/// Key of a port's counters in stats_: "ns/name/port/PROTO" (the health check port's name is
/// "healthCheckNodePort").
std::string stats_key(const config::service& svc, std::string_view port_name, config::protocol proto) {
  return svc.id() + "/" + std::string(port_name) + "/" + std::string(config::to_string(proto));
}

/// Keys of every port's counters of a Service.
std::vector<std::string> stats_keys(const config::service& svc) {
  std::vector<std::string> keys;
  for (const auto& sp : svc.ports) keys.push_back(stats_key(svc, sp.name, sp.proto));
  if (svc.health_check_node_port > 0) keys.push_back(stats_key(svc, "healthCheckNodePort", config::protocol::tcp));
  return keys;
}

}  // namespace

std::shared_ptr<const port_runtime> reconciler::runtime_for(const config::service& svc, const config::service_port& sp,
                                                            apply_result& result) {
  auto usable = config::usable_endpoints(svc, sp, node_name_);
  const port_id id{sp.proto, sp.node_port};
  const bool client_ip = svc.affinity == config::session_affinity::client_ip;
  const auto timeout = std::chrono::seconds(svc.affinity_timeout_seconds);
  const bool drop = svc.external_traffic_policy == config::traffic_policy::local;
  const allowlist sources(svc.allow_source_ranges);
  auto& limits = limits_[svc.id()];
  if (!limits) limits = std::make_shared<connection_limits>();
  // TLS contexts: the cache returns the same object while the settings and the files' bytes are
  // unchanged, a new one after a certificate was replaced, and the old one if the new files are
  // unusable (counted; the old certificate keeps being served).
  bool tls_failed = false, upstream_failed = false;
  auto tls = tls_.server(svc, &tls_failed);
  auto upstream_tls = tls_.client(svc, &upstream_failed);
  if (tls_failed) ++tls_failures_;
  if (upstream_failed) ++tls_failures_;
  const bool tls_missing = (svc.tls.enabled() && !tls) || (svc.upstream_tls.enabled && !upstream_tls);
  if (tls_missing)
    result.errors.push_back("TLS of " + svc.id() + " port " + sp.name +
                            " cannot be set up (see the error above); the port is not served");

  // Same service port, same endpoint set, same affinity: keep the object, and with it the
  // round-robin position and the affinity records (state survives unrelated changes).
  std::shared_ptr<affinity_table> old_affinity;
  if (auto it = ports_.find(id); it != ports_.end()) {
    const auto& old = *it->second;
    if (old.what == port_runtime::role::forward && old.service_id == svc.id() && old.port_name == sp.name) {
      const bool same_affinity = client_ip ? (old.affinity && old.affinity->timeout() == timeout) : !old.affinity;
      if (same_affinity) old_affinity = old.affinity;
      auto a = old.endpoint_addrs, b = usable;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      const bool same_access = old.allowed_sources == sources && old.proxy_protocol == svc.proxy_protocol &&
                               old.max_connections == svc.max_connections &&
                               old.max_connections_per_source == svc.max_connections_per_source &&
                               old.tls == tls && old.upstream_tls == upstream_tls && old.tls_missing == tls_missing;
      if (a == b && same_affinity && old.drop_when_empty == drop && same_access) return it->second;
    }
  }
  auto rt = std::make_shared<port_runtime>();
  rt->service_id = svc.id();
  rt->service_namespace = svc.ns;
  rt->service_name = svc.name;
  rt->port_name = sp.name;
  rt->proto = sp.proto;
  rt->node_port = sp.node_port;
  rt->drop_when_empty = drop;
  rt->allowed_sources = sources;
  rt->proxy_protocol = svc.proxy_protocol;
  rt->max_connections = svc.max_connections;
  rt->max_connections_per_source = svc.max_connections_per_source;
  rt->limits = limits;
  rt->tls = std::move(tls);
  rt->upstream_tls = std::move(upstream_tls);
  rt->tls_missing = tls_missing;
  // A changed set is reshuffled and the index starts over (kube-proxy's userspace LoadBalancerRR),
  // so every node does not send its first connection to the same pod.
  std::shuffle(usable.begin(), usable.end(), rng_);
  rt->endpoint_addrs = usable;
  for (auto& ep : usable) rt->endpoints.emplace_back(to_asio(ep.ip), ep.port);
  rt->endpoint_failures = std::make_unique<std::atomic<std::uint64_t>[]>(usable.size());
  rt->endpoint_failing = std::make_unique<std::atomic<bool>[]>(usable.size());
  if (client_ip) {
    // Records of endpoints that left are dropped; the rest carry over (ClientIP <-> None starts fresh).
    rt->affinity = old_affinity ? std::make_shared<affinity_table>(*old_affinity, usable)
                                : std::make_shared<affinity_table>(timeout);
  }
  auto& stats = stats_[stats_key(svc, sp.name, sp.proto)];
  if (!stats) stats = std::make_shared<port_stats>(static_cast<unsigned>(workers_.size()));
  rt->stats = stats;
  return rt;
}

std::shared_ptr<const port_runtime> reconciler::health_check_runtime(const config::service& svc) {
  // kube-proxy's localEndpoints: endpoints on this node that are ready (a node with only
  // terminating endpoints reports 503, so load balancers stop sending new traffic to it).
  std::size_t local = 0;
  std::set<config::host_port> seen;
  for (const auto& sp : svc.ports)
    for (const auto& ep : sp.endpoints)
      if (ep.ready && ep.node_name == node_name_ && seen.insert(ep.address).second) ++local;
  // Counted per pod address, not per port, as kube-proxy counts endpoints of the service.
  std::set<config::ip_address> pods;
  for (const auto& a : seen) pods.insert(a.ip);
  local = pods.size();
  const port_id id{config::protocol::tcp, svc.health_check_node_port};
  if (auto it = ports_.find(id); it != ports_.end()) {
    const auto& old = *it->second;
    if (old.what == port_runtime::role::health_check && old.service_id == svc.id() && old.local_endpoints == local)
      return it->second;
  }
  auto rt = std::make_shared<port_runtime>();
  rt->what = port_runtime::role::health_check;
  rt->service_id = svc.id();
  rt->service_namespace = svc.ns;
  rt->service_name = svc.name;
  rt->port_name = "healthCheckNodePort";
  rt->proto = config::protocol::tcp;
  rt->node_port = svc.health_check_node_port;
  rt->local_endpoints = local;
  auto& stats = stats_[stats_key(svc, "healthCheckNodePort", config::protocol::tcp)];
  if (!stats) stats = std::make_shared<port_stats>(static_cast<unsigned>(workers_.size()));
  rt->stats = stats;
  return rt;
}

void reconciler::apply_key(const listener_key& key, const std::shared_ptr<const port_runtime>& rt,
                           const std::shared_ptr<const port_runtime>& old_rt, apply_result& result,
                           std::map<port_id, std::string>& bind_errors,
                           std::vector<std::vector<listener_assignment>>& plan, std::vector<listener_key>& removed) {
  const port_id id{key.proto, key.port};
  const bool was_listening = listening_.erase(key) > 0;
  refusing_.erase(key);
  auto stop_listening = [&] {
    if (was_listening) removed.push_back(key);
  };

  // The holder (TCP only). UDP has no listen state: a bound UDP socket receives datagrams, so it
  // cannot hold a port without serving it. A UDP port is bound only while it has endpoints;
  // without, the kernel answers with ICMP port unreachable, as kube-proxy's REJECT does.
  if (key.proto == config::protocol::tcp) {
    if (!rt) {
      holders_.erase(key);  // closes it: a removed port is released
      dropping_.erase(key);
      return stop_listening();
    }
    auto holder = holders_.find(key);
    if (holder == holders_.end()) {
      std::string error;
      unique_fd fd;
      if (port_is_free(key.addr, key.port, key.proto, &error))
        fd = open_bound_socket(key.addr, key.port, key.proto, 0, &error);
      if (!fd) {
        result.errors.push_back(error + " (" + rt->service_id + " port " + rt->port_name + ")");
        bind_errors[id] = error;
        dropping_.erase(key);
        return stop_listening();
      }
      holder = holders_.emplace(key, std::move(fd)).first;
      dropping_.erase(key);
    }
    // externalTrafficPolicy: Local without a local endpoint: drop, as kube-proxy does. A holder
    // that listens with a zero backlog and is never accepted from makes the kernel drop SYNs once
    // its queue is full (the client retries and times out) instead of answering with a reset.
    const bool drop = rt->what == port_runtime::role::forward && rt->endpoints.empty() && rt->drop_when_empty;
    const bool was_dropping = dropping_.count(key) > 0;
    // Either switch can fail (say at the descriptor limit); the port is then tried again at the
    // next apply, like a port that could not be bound.
    if (drop && !was_dropping) {
      if (::listen(holder->second.get(), 0) == 0) {
        dropping_.insert(key);
      } else {
        spdlog::warn("{}: cannot drop traffic (listen: {}); refusing instead", key.str(), std::strerror(errno));
        unsettled_.insert(id);
      }
    } else if (!drop && was_dropping) {
      // A listening socket cannot stop listening without losing its port: swap in a fresh holder.
      std::string error;
      if (auto fresh = open_bound_socket(key.addr, key.port, key.proto, 0, &error)) {
        holder->second = std::move(fresh);
        dropping_.erase(key);
      } else {
        spdlog::warn("{}: {}", key.str(), error);
        unsettled_.insert(id);
      }
    }
  } else if (!rt) {
    return stop_listening();
  }

  // The listeners: one per worker while the port has endpoints. Health checks always answer;
  // UDP with Local and no local endpoint is bound to drop datagrams (unbound would mean ICMP
  // unreachable: a reject). A TLS port whose context could not be built is refused, never served
  // in plain text.
  const bool serve = (!rt->endpoints.empty() && !rt->tls_missing) || rt->what == port_runtime::role::health_check ||
                     (rt->drop_when_empty && key.proto == config::protocol::udp);
  if (!serve) {
    refusing_.insert(key);
    return stop_listening();
  }
  // A port that changes role (forward <-> health check) needs a listener of the other kind.
  const bool same_role = old_rt && old_rt->what == rt->what;
  if (was_listening && same_role) {
    if (rt != old_rt)
      for (auto& p : plan) p.push_back({key, rt, -1});
  } else {
    std::vector<unique_fd> fds;
    std::string error;
    // TCP keys are already held by their holder; a UDP key is new to us here.
    const bool ours = key.proto == config::protocol::tcp || port_is_free(key.addr, key.port, key.proto, &error);
    for (std::size_t w = 0; ours && w < workers_.size(); ++w) {
      auto fd = open_bound_socket(key.addr, key.port, key.proto, cfg_.backlog, &error);
      if (!fd) break;
      fds.push_back(std::move(fd));
    }
    if (fds.size() != workers_.size()) {
      result.errors.push_back(error + " (" + rt->service_id + " port " + rt->port_name + ")");
      bind_errors[id] = error;
      return stop_listening();
    }
    for (std::size_t w = 0; w < workers_.size(); ++w) plan[w].push_back({key, rt, fds[w].release()});
  }
  listening_.insert(key);
}

apply_result reconciler::apply(const config::snapshot& snap) {
  apply_result result;
  for (const auto& svc : snap.services) result.ports += svc.ports.size();

  // 1. Which Services changed. Consecutive API snapshots share the objects of Services that did
  // not change, so those are skipped by pointer. A new object equal in value to the one applied
  // under its id (a file reload builds every Service anew; an API event may change nothing this
  // proxy reads) is swapped for the applied one, so it is skipped too. TLS Services are always
  // done again: runtime_for() re-reads their files, which is how a replaced certificate is
  // noticed. So are the owners of ports that could not be bound last time: they are tried again.
  auto applied = std::make_shared<config::snapshot>(snap);  // becomes snapshot_
  std::unordered_set<const config::service*> now, before;
  now.reserve(snap.services.size());
  for (std::size_t i = 0; i < snap.services.size(); ++i) now.insert(snap.services.shared(i).get());
  std::unordered_map<std::string, std::shared_ptr<const config::service>> unmatched;  // applied, not in snap, by id
  if (snapshot_) {
    before.reserve(snapshot_->services.size());
    for (std::size_t i = 0; i < snapshot_->services.size(); ++i) {
      const auto& svc = snapshot_->services.shared(i);
      before.insert(svc.get());
      if (!now.count(svc.get())) unmatched.emplace(svc->id(), svc);
    }
  }
  std::unordered_set<const config::service*> retry;
  for (const auto& [id, error] : bind_errors_)
    if (auto o = owners_.find(id); o != owners_.end()) retry.insert(o->second);
  for (const auto& id : unsettled_)
    if (auto o = owners_.find(id); o != owners_.end()) retry.insert(o->second);
  std::vector<const config::service*> fresh, gone;
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    const auto* svc = snap.services.shared(i).get();
    bool known = before.count(svc) > 0;
    if (!known && !unmatched.empty()) {
      if (auto u = unmatched.find(svc->id()); u != unmatched.end() && *u->second == *svc) {
        applied->services.replace(i, u->second);
        svc = u->second.get();
        unmatched.erase(u);
        known = true;
      }
    }
    if (!known || svc->tls.enabled() || svc->upstream_tls.enabled || retry.count(svc)) fresh.push_back(svc);
  }
  for (const auto& [id, svc] : unmatched) gone.push_back(svc.get());

  // 2. Their ports' new configurations; every port of a gone Service is touched too.
  std::map<port_id, std::pair<std::shared_ptr<const port_runtime>, const config::service*>> next;
  std::set<port_id> touched;
  std::set<std::string> fresh_ids, fresh_stats, removed_ids;
  for (const auto* svc : fresh) {
    fresh_ids.insert(svc->id());
    for (const auto& sp : svc->ports) next[{sp.proto, sp.node_port}] = {runtime_for(*svc, sp, result), svc};
    if (svc->health_check_node_port > 0)
      next[{config::protocol::tcp, svc->health_check_node_port}] = {health_check_runtime(*svc), svc};
    for (auto& key : stats_keys(*svc)) fresh_stats.insert(std::move(key));
  }
  for (const auto& [id, rt] : next) touched.insert(id);
  for (const auto* svc : gone) {
    for (const auto& sp : svc->ports) touched.insert({sp.proto, sp.node_port});
    if (svc->health_check_node_port > 0) touched.insert({config::protocol::tcp, svc->health_check_node_port});
    // A Service that is gone takes its counters and connection counts with it: its open
    // connections keep their objects (through their slots), and a Service re-added later starts
    // from zero. A changed Service keeps those of the ports it still has.
    if (!fresh_ids.count(svc->id())) {
      limits_.erase(svc->id());
      removed_ids.insert(svc->id());
    }
    for (const auto& key : stats_keys(*svc))
      if (!fresh_stats.count(key)) stats_.erase(key);
  }
  if (!removed_ids.empty()) tls_.retain([&](const std::string& id) { return !removed_ids.count(id); });

  // 3. Sockets, key by key, for the touched ports only; the rest stay exactly as they are.
  std::vector<std::vector<listener_assignment>> plan(workers_.size());
  std::vector<listener_key> removed;
  std::map<port_id, std::string> bind_errors = bind_errors_;
  for (const auto& id : touched) {
    bind_errors.erase(id);
    unsettled_.erase(id);
    auto n = next.find(id);
    std::shared_ptr<const port_runtime> rt = n == next.end() ? nullptr : n->second.first;
    auto o = ports_.find(id);
    std::shared_ptr<const port_runtime> old_rt = o == ports_.end() ? nullptr : o->second;
    for (const auto& addr : addrs_) apply_key({addr, id.second, id.first}, rt, old_rt, result, bind_errors, plan, removed);
    if (rt) {
      ports_[id] = rt;
      owners_[id] = n->second.second;
    } else {
      ports_.erase(id);
      owners_.erase(id);
    }
  }
  bind_errors_ = std::move(bind_errors);
  result.listening = listening_.size();
  result.refusing = refusing_.size();
  snapshot_ = std::move(applied);
  // Wait until every worker has switched: when apply() returns (and "configuration applied" is
  // logged), removed ports no longer accept and new ones do. Workers never wait for the control
  // thread, so this cannot deadlock; it takes as long as one pass of each worker's event loop.
  std::latch switched(static_cast<std::ptrdiff_t>(workers_.size()));
  for (std::size_t w = 0; w < workers_.size(); ++w)
    workers_[w]->post_update(std::move(plan[w]), removed, [&switched] { switched.count_down(); });
  switched.wait();
  return result;
}

void reconciler::fill(status_report& report) const {
  report.tls_context_failures_total = tls_failures_;
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
      for (const auto& b : svc.allow_source_ranges) ps.allow_source_ranges.push_back(b.str());
      ps.proxy_protocol = std::string(config::to_string(svc.proxy_protocol));
      ps.max_connections = svc.max_connections;
      ps.max_connections_per_source = svc.max_connections_per_source;
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
      if (rt && rt->limits) ps.service_connections_active = rt->limits->active();
      if (rt && rt->tls) {
        ps.tls = true;
        ps.tls_client_auth = rt->tls->client_auth();
        ps.tls_crl = rt->tls->crl();
        ps.tls_certificates = rt->tls->certificates();
      }
      if (rt && rt->upstream_tls) {
        const auto& u = rt->upstream_tls->settings();
        ps.upstream_tls = u.insecure_skip_verify ? "insecure (not verified)"
                                                 : "verified" + std::string(u.server_name.empty() ? "" : " as " + u.server_name);
      }
      if (rt && rt->stats) {
        for (unsigned w = 0; w < rt->stats->workers(); ++w) {
          const auto& c = rt->stats->worker(w);
#define NPP_SUM(name, help) ps.counters.name += c.name.load(std::memory_order_relaxed);
          NPP_PORT_COUNTERS(NPP_SUM)
#undef NPP_SUM
          ps.counters.connections_active += c.connections_active.load(std::memory_order_relaxed);
          ps.counters.udp_sessions_active += c.udp_sessions_active.load(std::memory_order_relaxed);
          ps.counters.connect_duration.add(connect_duration_bounds, c.connect_duration);
        }
      }
      report.connections_active += ps.counters.connections_active;
      report.ports.push_back(std::move(ps));
    }
  }
}

void reconciler::release_all() {
  unsettled_.clear();
  holders_.clear();
  dropping_.clear();
  listening_.clear();
  refusing_.clear();
}

}  // namespace npp::proxy
