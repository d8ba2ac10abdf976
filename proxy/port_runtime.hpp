#pragma once
// What a worker needs to serve one nodePort: the endpoints to use (already selected and
// shuffled), the round-robin position shared by all workers, and the counters. Built by the
// reconciler; immutable except for the atomic round-robin index. Sessions keep the one they
// were accepted under (shared_ptr), so a new snapshot never changes a running connection.
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/snapshot.hpp"
#include "proxy/affinity.hpp"
#include "proxy/allowlist.hpp"
#include "proxy/connection_limits.hpp"
#include "proxy/stats.hpp"

namespace npp::proxy {

class tls_server_context;
class tls_client_context;

struct port_runtime {
  /// What the port does: forward to endpoints, or answer a load balancer's health check
  /// (healthCheckNodePort of an externalTrafficPolicy: Local Service).
  enum class role : std::uint8_t { forward, health_check };

  role what = role::forward;
  std::string service_id;        ///< "namespace/name"
  std::string service_namespace; ///< for the health-check body
  std::string service_name;
  std::string port_name;         ///< Service port name
  config::protocol proto{};      ///< TCP or UDP
  int node_port = 0;             ///< the bound port
  std::vector<config::host_port> endpoint_addrs;        ///< usable endpoints, shuffled
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  ///< same, as Asio endpoints
  std::shared_ptr<port_stats> stats;                    ///< counters, carried across snapshots
  mutable std::atomic<std::uint64_t> next{0};           ///< round-robin position (all workers)
  /// Per endpoint (same index as `endpoints`): failed connect attempts, and whether the last
  /// attempt failed. Written only on the connect path (rare), read by the status page.
  std::unique_ptr<std::atomic<std::uint64_t>[]> endpoint_failures;
  std::unique_ptr<std::atomic<bool>[]> endpoint_failing;
  /// sessionAffinity: ClientIP (null for None). Shared by all workers.
  std::shared_ptr<affinity_table> affinity;
  /// externalTrafficPolicy: Local with no local endpoint: traffic is dropped (no reset, no ICMP),
  /// as kube-proxy does, instead of refused.
  bool drop_when_empty = false;
  /// role::health_check: ready endpoints on this node (the body's localEndpoints).
  std::size_t local_endpoints = 0;

  // Access and limits of the Service (role::forward). The global --allow-source-ranges and
  // --max-connections live in settings / shared_state; a client must pass those too.
  /// allowSourceRanges: checked at accept (TCP) and before a UDP session is created.
  allowlist allowed_sources;
  /// proxyProtocol: header written to the endpoint before any client byte (TCP).
  config::proxy_protocol_version proxy_protocol = config::proxy_protocol_version::off;
  /// maxConnections (0: none), counted in `limits` over every port of the Service.
  std::size_t max_connections = 0;
  /// maxConnectionsPerSource (0: none), counted in `limits`.
  std::size_t max_connections_per_source = 0;
  /// Open TCP connections of the Service: one object per Service, shared by its ports and kept
  /// across snapshots. Never null for role::forward.
  std::shared_ptr<connection_limits> limits;
  /// TLS termination (tls): clients handshake with this context before the endpoint is dialled.
  /// Null: plain TCP (spliced).
  std::shared_ptr<const tls_server_context> tls;
  /// Re-encryption (upstreamTLS): the proxy handshakes with the endpoint after connecting.
  std::shared_ptr<const tls_client_context> upstream_tls;
  /// The Service asks for TLS but no context could be built: the port is refused, not served.
  bool tls_missing = false;

  /// Index of the endpoint for a new connection or UDP session from `client`: the affinity
  /// record if there is a fresh one, else round-robin over all workers. Requires !endpoints.empty().
  std::size_t pick(const config::ip_address& client) const {
    if (affinity) {
      if (auto pinned = affinity->lookup(client, std::chrono::steady_clock::now())) {
        for (std::size_t i = 0; i < endpoint_addrs.size(); ++i)
          if (endpoint_addrs[i] == *pinned) return i;
      }
    }
    return next.fetch_add(1, std::memory_order_relaxed) % endpoints.size();
  }
  /// Pins `client` to endpoint i (ClientIP affinity only).
  void pin(const config::ip_address& client, std::size_t i) const {
    if (affinity) affinity->record(client, endpoint_addrs[i], std::chrono::steady_clock::now());
  }
};

}  // namespace npp::proxy
