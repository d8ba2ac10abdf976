#pragma once
// A read-only picture of the running proxy for health checks, metrics and the status page.
// Produced by server::status() on the control thread; plain data, no Asio.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/snapshot.hpp"
#include "proxy/stats.hpp"
#include "proxy/tls_context.hpp"

namespace npp::proxy {

/// One endpoint of a service port as the proxy sees it.
struct endpoint_status {
  std::string address;       ///< "10.0.0.5:8080" / "[::1]:8083"
  bool ready = true;         ///< EndpointSlice conditions
  bool serving = true;
  bool terminating = false;
  std::string node_name;
  bool in_use = false;       ///< selected for new connections (ready, or the terminating fallback, or Local)
  std::uint64_t connect_failures = 0;  ///< connect attempts to it that failed, since it was selected
  bool failing = false;      ///< the last connect attempt to it failed
};

/// A duration histogram as reported: per-bucket counts (not cumulative; the last is +Inf).
struct histogram_total {
  std::vector<double> bounds_seconds;  ///< upper bounds, ascending (without +Inf)
  std::vector<std::uint64_t> counts;   ///< bounds_seconds.size() + 1 entries
  double sum_seconds = 0;
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (auto c : counts) n += c;
    return n;
  }
  /// Adds one observation (control-thread histograms).
  template <std::size_t N>
  void observe(const std::array<std::chrono::nanoseconds, N>& bounds, std::chrono::nanoseconds d) {
    init(bounds);
    counts[bucket_of(bounds, d)] += 1;
    sum_seconds += std::chrono::duration<double>(d).count();
  }
  /// Adds a worker's block.
  template <std::size_t N>
  void add(const std::array<std::chrono::nanoseconds, N>& bounds, const duration_histogram<N>& h) {
    init(bounds);
    for (std::size_t i = 0; i <= N; ++i) counts[i] += h.buckets[i].load(std::memory_order_relaxed);
    sum_seconds += static_cast<double>(h.sum_ns.load(std::memory_order_relaxed)) / 1e9;
  }
  template <std::size_t N>
  void init(const std::array<std::chrono::nanoseconds, N>& bounds) {
    if (!counts.empty()) return;
    for (auto b : bounds) bounds_seconds.push_back(std::chrono::duration<double>(b).count());
    counts.assign(N + 1, 0);
  }
};

/// Counters of one service port, summed over workers.
struct port_counters_total {
#define NPP_TOTAL_FIELD(name, help) std::uint64_t name = 0;
  NPP_PORT_COUNTERS(NPP_TOTAL_FIELD)
#undef NPP_TOTAL_FIELD
  std::int64_t connections_active = 0;
  std::int64_t udp_sessions_active = 0;
  histogram_total connect_duration;  ///< successful upstream connects (TCP)
};

/// One service port.
struct port_status {
  std::string service;        ///< "namespace/name"
  std::string port_name;
  config::protocol proto{};
  int port = 0;               ///< the Service's port
  int node_port = 0;
  bool node_port_allocated = false;
  bool listening = false;     ///< accepting (has usable endpoints and is bound)
  std::string bind_error;     ///< set when the port could not be bound
  std::vector<endpoint_status> endpoints;
  port_counters_total counters;
  // Access and limits of the Service (the same on each of its ports).
  std::vector<std::string> allow_source_ranges;  ///< allowSourceRanges ("10.0.0.0/8"); empty: all sources
  std::string proxy_protocol = "off";            ///< "off", "v1", "v2"
  std::size_t max_connections = 0;               ///< maxConnections (0: none)
  std::size_t max_connections_per_source = 0;    ///< maxConnectionsPerSource (0: none)
  std::size_t service_connections_active = 0;    ///< open TCP connections of the whole Service (what maxConnections counts)
  // TLS (tls / upstreamTLS) as running: the certificates actually loaded.
  bool tls = false;                              ///< clients speak TLS to this port
  bool tls_client_auth = false;                  ///< mTLS: a valid client certificate is required
  bool tls_crl = false;                          ///< client certificates are checked against a CRL
  std::vector<tls_certificate_info> tls_certificates;  ///< [0]: default; others by SNI
  std::string upstream_tls;                      ///< "" (plain), "verified [as NAME]", "insecure (not verified)"
};

/// The whole proxy.
struct status_report {
  std::string version;
  std::chrono::system_clock::time_point started;       ///< process start
  std::chrono::system_clock::time_point last_applied;  ///< last successful apply (epoch if none)
  std::uint64_t generation = 0;          ///< successful applies so far
  std::uint64_t reloads_total = 0;       ///< reload attempts (SIGHUP, file changes)
  std::uint64_t reload_failures_total = 0;
  bool last_reload_ok = true;
  std::string last_reload_error;         ///< first problem of the last failed reload
  std::string source;                    ///< where the running config came from
  bool ready = false;                    ///< first configuration applied and not draining
  bool draining = false;
  unsigned workers = 0;
  std::size_t max_connections = 0;
  std::vector<std::string> allow_source_ranges;  ///< --allow-source-ranges; empty: all sources
  std::int64_t connections_active = 0;   ///< all ports
  std::uint64_t tls_context_failures_total = 0;  ///< TLS contexts that could not be (re)built from their files
  std::vector<std::string> bind_addresses;
  std::vector<port_status> ports;
  /// Applying a configuration to every worker (kube-proxy's sync_proxy_rules_duration_seconds).
  histogram_total sync_duration;
};

}  // namespace npp::proxy
