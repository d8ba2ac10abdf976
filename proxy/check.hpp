#pragma once
// `nodeport-proxy check`: the NodePort troubleshooting checklist as one command. Lists every
// service port of a snapshot, probes each node address x nodePort and each endpoint with a TCP
// connect (bounded concurrency, one poll loop), and prints a table plus one diagnosis per
// problem. No Asio: plain non-blocking sockets and poll().
//
// UDP ports are listed but not probed ("n/a"): a UDP port that works usually stays silent, and
// one that is closed only answers with ICMP port-unreachable if a datagram is sent to it. Sending
// a datagram means sending application payload to the service (even an empty one is a request to
// some protocols), so check reports UDP as not probed rather than guessing "open|filtered".
#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "config/snapshot.hpp"

namespace npp::proxy {

struct check_options {
  /// --node ADDR (repeatable): IP literals ("10.0.0.1", "::1", "[::1]") whose nodePorts are probed.
  std::vector<std::string> node_addresses{"127.0.0.1"};
  /// --timeout: a connect that has not completed by then is reported as TIMEOUT.
  std::chrono::milliseconds timeout{2000};
  /// --output json: one JSON document instead of the text tables.
  bool json = false;
  /// Connects in flight at once (bounded so a large snapshot cannot exhaust descriptors).
  unsigned concurrency = 128;
  /// --hostname-override: with externalTrafficPolicy Local only this node's endpoints count
  /// ("" = all endpoints count).
  std::string node_name;
  /// Extension point for source allowlists (a later issue): returns a diagnosis when the
  /// service port's allowlist would refuse `source` (the local address a probe connected from).
  /// Unset, nothing is reported: no allowlists exist yet.
  std::function<std::optional<std::string>(const config::service&, const config::service_port&,
                                           const config::ip_address& source)>
      allowlist_check;
};

/// Runs the check and writes the report to `out`. Returns 0 if every probed target was reachable
/// and no diagnosis was found, else 1. Throws std::invalid_argument for a node address that is not
/// an IP literal.
int run_check(const config::snapshot& snap, const check_options& opts, std::ostream& out);

}  // namespace npp::proxy
