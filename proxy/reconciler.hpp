#pragma once
// The only place that compares two snapshots. It runs on the control thread: it keeps
// listeners whose (address, port, protocol) is unchanged, opens new ones, closes removed ones,
// and posts each worker the listener changes with the port configs they serve. It works per
// Service: a Service whose object it has already applied (snapshots share unchanged Services)
// costs nothing, so one changed EndpointSlice among thousands of Services is one Service's work.
//
// Sockets per nodePort and local address:
//   - a "holder": bound, never listening. It reserves the port while the proxy is configured for
//     it and makes the kernel answer SYNs with a reset while there is no usable endpoint, so
//     clients see "connection refused" as Kubernetes' e2e test expects.
//   - while the port has endpoints: one listening SO_REUSEPORT socket per worker, created here
//     (so bind errors are reported synchronously) and handed over to the worker, which owns it.
// UDP ports get only the per-worker sockets, while they have endpoints (see apply()).
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "config/snapshot.hpp"
#include "proxy/listener_key.hpp"
#include "proxy/port_runtime.hpp"
#include "proxy/settings.hpp"
#include "proxy/socket_util.hpp"
#include "proxy/status.hpp"
#include "proxy/tls_context.hpp"

namespace npp::proxy {

class worker;
struct listener_assignment;

/// What one apply() did.
struct apply_result {
  std::vector<std::string> errors;  ///< ports that could not be bound ("bind ...: Address already in use")
  std::size_t ports = 0;            ///< service ports in the snapshot
  std::size_t listening = 0;        ///< (address, port) keys accepting connections
  std::size_t refusing = 0;         ///< keys held without endpoints (connections refused)
};

class reconciler {
 public:
  reconciler(const settings& cfg, std::vector<bind_address> addrs, std::string node_name,
             std::vector<std::unique_ptr<worker>>& workers);
  /// Moves the data plane to `snap`. Ports that fail to bind are reported and skipped (and tried
  /// again at the next apply); everything else is applied. Work is proportional to what changed:
  /// a Service whose object the last applied snapshot also held (consecutive API snapshots share
  /// unchanged Services) is skipped, unless it uses TLS, whose files are checked at every apply.
  apply_result apply(const config::snapshot& snap);
  /// Releases every port (SIGTERM): holders are closed here, listeners by each worker's drain.
  void release_all();
  /// Adds the bind addresses and one port_status per service port of the current snapshot.
  void fill(status_report& report) const;

 private:
  using port_id = std::pair<config::protocol, int>;  ///< (protocol, nodePort)

  std::shared_ptr<const port_runtime> runtime_for(const config::service& svc, const config::service_port& sp,
                                                  apply_result& result);
  std::shared_ptr<const port_runtime> health_check_runtime(const config::service& svc);
  /// Moves one (address, port) key to `rt` (null: the port is gone); collects what the workers
  /// must change.
  void apply_key(const listener_key& key, const std::shared_ptr<const port_runtime>& rt,
                 const std::shared_ptr<const port_runtime>& old_rt, apply_result& result,
                 std::map<port_id, std::string>& bind_errors, std::vector<std::vector<listener_assignment>>& plan,
                 std::vector<listener_key>& removed);

  const settings& cfg_;
  std::vector<bind_address> addrs_;    ///< where nodePorts are bound
  std::string node_name_;              ///< this node, for externalTrafficPolicy: Local
  std::vector<std::unique_ptr<worker>>& workers_;
  std::map<listener_key, unique_fd> holders_;           ///< bound, not listening: one per key
  std::set<listener_key> listening_;                   ///< keys whose workers have listeners
  std::set<listener_key> dropping_;                    ///< holders listening unaccepted (Local, no endpoint)
  std::set<listener_key> refusing_;                    ///< keys held without a listener (no usable endpoint)
  std::map<port_id, std::shared_ptr<const port_runtime>> ports_;       ///< current port configs
  std::map<port_id, const config::service*> owners_;   ///< the Service object each port was applied from
  std::map<std::string, std::shared_ptr<port_stats>> stats_;           ///< by "ns/name/port/proto"
  std::map<std::string, std::shared_ptr<connection_limits>> limits_;  ///< by service id "ns/name"
  std::shared_ptr<const config::snapshot> snapshot_;  ///< last applied (for status)
  std::map<port_id, std::string> bind_errors_;         ///< ports that could not be bound
  std::set<port_id> unsettled_;                        ///< ports whose drop mode could not be switched
  std::mt19937_64 rng_{std::random_device{}()};          ///< endpoint shuffling
  tls_context_cache tls_;                              ///< TLS contexts by service, rebuilt when files change
  std::uint64_t tls_failures_ = 0;                     ///< TLS contexts that could not be (re)built
};

}  // namespace npp::proxy
