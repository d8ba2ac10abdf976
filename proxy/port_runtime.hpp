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
#include "proxy/stats.hpp"

namespace npp::proxy {

struct port_runtime {
  std::string service_id;        ///< "namespace/name"
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

  /// Index of the endpoint for a new connection (round-robin over all workers). Requires
  /// !endpoints.empty().
  std::size_t pick() const { return next.fetch_add(1, std::memory_order_relaxed) % endpoints.size(); }
};

}  // namespace npp::proxy
