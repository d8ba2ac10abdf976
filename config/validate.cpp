// Whole-snapshot checks and nodePort allocation, modelled on kube-apiserver's port allocator
// (one bitmap over the range: a number is taken cluster-wide, whatever the protocol) and
// KEP-3668's static/dynamic bands.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "config/loader_internal.hpp"

namespace npp::config {
namespace detail {
namespace {

struct port_ref {
  std::size_t svc;   ///< index into snapshot::services
  std::size_t port;  ///< index into service::ports, or health_check for spec.healthCheckNodePort
};
// port_ref::port of a Service's healthCheckNodePort.
constexpr std::size_t health_check = static_cast<std::size_t>(-1);

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Where a Service came from: its origin, else its position in the snapshot.
std::string service_path(const snapshot& snap, std::size_t i) {
  const service& svc = snap.services[i];
  return svc.origin.empty() ? "services[" + std::to_string(i) + "]" : svc.origin;
}

// Where a port came from, as the user wrote it: a JSON path ("services[0].ports[1].nodePort"),
// a Kubernetes object ("Service ops/admin-ui: spec.ports[1].nodePort"), or the --forward flag.
std::string port_path(const snapshot& snap, port_ref r, std::string_view field) {
  const service& svc = snap.services[r.svc];
  if (r.port == health_check) return service_path(snap, r.svc) + ": spec.healthCheckNodePort";
  const service_port& port = svc.ports[r.port];
  if (svc.ad_hoc) return "--forward " + lower(to_string(port.proto)) + ":" + std::to_string(port.node_port);
  if (!port.origin.empty()) return port.origin + "." + std::string(field);
  return service_path(snap, r.svc) + ".ports[" + std::to_string(r.port) + "]." + std::string(field);
}

// The number a port_ref holds.
int number_of(const snapshot& snap, port_ref r) {
  const service& svc = snap.services[r.svc];
  return r.port == health_check ? svc.health_check_node_port : svc.ports[r.port].node_port;
}

// Who already holds a number, for "provided port is already allocated (by ...)".
std::string holder(const snapshot& snap, port_ref r) {
  const service& svc = snap.services[r.svc];
  if (r.port == health_check) return svc.id() + " healthCheckNodePort";
  const service_port& port = svc.ports[r.port];
  if (svc.ad_hoc) return "--forward " + lower(to_string(port.proto)) + ":" + std::to_string(port.node_port);
  const std::string which = port.name.empty() ? std::to_string(port.port) : port.name;
  return svc.id() + " port " + which + "/" + std::string(to_string(port.proto));
}

// KEP-3668 (kube-apiserver calculateRangeOffset): the lower `offset` ports form the static band
// that dynamic allocation avoids while it can. Ranges below 16 ports have no static band.
int band_offset(int range_size) {
  constexpr int min_offset = 16, max_offset = 128, step = 32;
  if (range_size < min_offset) return 0;
  return std::clamp(range_size / step, min_offset, max_offset);
}

// FNV-1a: stable across runs, compilers and platforms (std::hash is none of those), so the same
// file always yields the same ports.
std::uint64_t stable_hash(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// First free number in [lo, hi] scanning forward (with wrap) from a hash-chosen start.
std::optional<int> pick_in_band(int lo, int hi, const std::vector<bool>& taken, int range_first, std::uint64_t h) {
  if (lo > hi) return std::nullopt;
  const auto size = static_cast<std::uint64_t>(hi - lo + 1);
  const auto start = h % size;
  for (std::uint64_t k = 0; k < size; ++k) {
    const int n = lo + static_cast<int>((start + k) % size);
    if (!taken[static_cast<std::size_t>(n - range_first)]) return n;
  }
  return std::nullopt;
}

// A number may be shared only by ports of one Service with the same `port` and different
// protocols (TCP+UDP 53), as kube-apiserver's initNodePorts reuses one allocation for them.
// --forward listeners are not apiserver allocations, so for them only the kernel's rule applies:
// one listener per (protocol, number); "--forward tcp:53=... --forward udp:53=..." is fine.
bool may_share(const snapshot& snap, port_ref a, port_ref b) {
  // A healthCheckNodePort is an allocation of its own (kube-apiserver allocHealthCheckNodePort).
  if (a.port == health_check || b.port == health_check) return false;
  const auto& sa = snap.services[a.svc];
  const auto& sb = snap.services[b.svc];
  const auto& pa = sa.ports[a.port];
  const auto& pb = sb.ports[b.port];
  if (sa.ad_hoc || sb.ad_hoc) return pa.proto != pb.proto;
  return a.svc == b.svc && pa.proto != pb.proto && pa.port == pb.port;
}

// Where a service-level access setting was written: "services[0].proxyProtocol" (native) or
// "Service ops/admin: metadata.annotations[nodeport-proxy.io/proxy-protocol]" (Kubernetes).
std::string access_path(const snapshot& snap, std::size_t i, std::string_view native_key, std::string_view annotation) {
  const service& svc = snap.services[i];
  if (svc.kubernetes_object)
    return service_path(snap, i) + ": metadata.annotations[nodeport-proxy.io/" + std::string(annotation) + "]";
  return service_path(snap, i) + "." + std::string(native_key);
}

// PROXY protocol is refused for a Service with a UDP port rather than silently sent on its TCP
// ports only. For datagrams there is no sound framing: a header on the first datagram of a flow
// (nginx) is lost when that datagram is, and the endpoint cannot tell which datagram carries one;
// a header on every datagram (PROXY v2 DGRAM) changes every payload, which no UDP server expects
// unless it was built for it. Connection limits count TCP connections; UDP sessions have their
// own cap (--udp-max-sessions), so a limit on a Service without a TCP port would do nothing.
void check_access(const snapshot& snap, std::size_t i, std::vector<problem>& problems) {
  const service& svc = snap.services[i];
  const bool any_tcp = std::any_of(svc.ports.begin(), svc.ports.end(), [](const service_port& p) { return p.proto == protocol::tcp; });
  if (svc.proxy_protocol != proxy_protocol_version::off) {
    for (std::size_t j = 0; j < svc.ports.size(); ++j) {
      if (svc.ports[j].proto != protocol::udp) continue;
      problems.push_back({access_path(snap, i, "proxyProtocol", "proxy-protocol"),
                          "Forbidden: PROXY protocol is sent on TCP connections only and port " +
                              (svc.ports[j].name.empty() ? std::to_string(svc.ports[j].port) : quote(svc.ports[j].name)) +
                              " is UDP; put the UDP ports in a Service of their own"});
      break;
    }
  }
  if (!any_tcp && !svc.ports.empty()) {
    if (svc.max_connections != 0)
      problems.push_back({access_path(snap, i, "maxConnections", "max-connections"),
                          "Forbidden: limits TCP connections and the Service has no TCP port "
                          "(UDP sessions are capped by --udp-max-sessions)"});
    if (svc.max_connections_per_source != 0)
      problems.push_back({access_path(snap, i, "maxConnectionsPerSource", "max-connections-per-source"),
                          "Forbidden: limits TCP connections and the Service has no TCP port "
                          "(UDP sessions are capped by --udp-max-sessions)"});
  }
}

// TLS: TCP only, and every file readable with the right contents (a key that matches its
// certificate), so a broken certificate is a configuration problem before anything is served.
void check_tls(const snapshot& snap, std::size_t i, std::vector<problem>& problems) {
  const service& svc = snap.services[i];
  const bool tls = svc.tls.enabled(), upstream = svc.upstream_tls.enabled;
  if (!tls && !upstream) return;
  auto path = [&](std::string_view native_key, std::string_view annotation) {
    return access_path(snap, i, native_key, annotation);
  };
  auto file_problem = [&](std::string p, const std::string& file, const std::string& why) {
    if (!why.empty()) problems.push_back({std::move(p), invalid(quote(file), why)});
  };
  for (std::size_t j = 0; j < svc.ports.size(); ++j) {
    if (svc.ports[j].proto != protocol::udp) continue;
    problems.push_back({tls ? path("tls", "tls-cert-file") : path("upstreamTLS", "upstream-tls"),
                        "Forbidden: TLS applies to TCP connections only and port " +
                            (svc.ports[j].name.empty() ? std::to_string(svc.ports[j].port) : quote(svc.ports[j].name)) +
                            " is UDP; put the UDP ports in a Service of their own"});
    break;
  }
  for (std::size_t k = 0; k < svc.tls.certificates.size(); ++k) {
    const auto& c = svc.tls.certificates[k];
    const std::string base = k == 0 ? "tls" : "tls.certificates[" + std::to_string(k - 1) + "]";
    std::string key_why;
    const std::string cert_why = check_key_pair(c.cert_file, c.key_file, &key_why);
    const std::string_view annotation = k == 0 ? "tls-cert-file" : "tls-sni-certificates";
    file_problem(path(base + ".certFile", annotation), c.cert_file, cert_why);
    file_problem(path(base + ".keyFile", k == 0 ? "tls-key-file" : annotation), c.key_file, key_why);
  }
  if (!svc.tls.client_ca_file.empty())
    file_problem(path("tls.clientCAFile", "tls-client-ca-file"), svc.tls.client_ca_file,
                 check_certificate_file(svc.tls.client_ca_file));
  if (!svc.tls.crl_file.empty())
    file_problem(path("tls.crlFile", "tls-crl-file"), svc.tls.crl_file, check_crl_file(svc.tls.crl_file));
  if (upstream && !svc.upstream_tls.ca_file.empty())
    file_problem(path("upstreamTLS.caFile", "upstream-tls-ca-file"), svc.upstream_tls.ca_file,
                 check_certificate_file(svc.upstream_tls.ca_file));
  if (upstream && svc.upstream_tls.insecure_skip_verify && !svc.upstream_tls.ca_file.empty())
    problems.push_back({path("upstreamTLS.insecureSkipVerify", "upstream-tls-insecure-skip-verify"),
                        "Forbidden: caFile is set: verify with it, or drop it to skip verification"});
}

}  // namespace

void check_and_allocate(snapshot& snap, std::vector<problem>& problems) {
  const port_range range = snap.range;
  std::map<int, std::vector<port_ref>> holders;  // nodePort -> ports bound to it

  // 1. Given nodePorts (and healthCheckNodePorts), in file order, before any allocation, so
  // allocation never steals one.
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    const service& svc = snap.services[i];
    for (std::size_t j = 0; j <= svc.ports.size(); ++j) {
      const port_ref ref{i, j == svc.ports.size() ? health_check : j};
      const int number = number_of(snap, ref);
      if (number == 0 || number == allocate_health_check_port) continue;
      const std::string value = std::to_string(number);
      if (number < 1 || number > 65535) {
        problems.push_back({port_path(snap, ref, "nodePort"),
                            "Invalid value: " + value + ": must be between 1 and 65535, inclusive"});
        continue;
      }
      // --forward listeners are the operator's explicit choice, outside any apiserver range.
      if (!svc.ad_hoc && !range.contains(number)) {
        problems.push_back({port_path(snap, ref, "nodePort"),
                            "Invalid value: " + value +
                                ": provided port is not in the valid range. The range of valid ports is " +
                                range.str()});
        continue;
      }
      auto& held = holders[number];
      auto conflict = std::find_if(held.begin(), held.end(), [&](port_ref h) { return !may_share(snap, h, ref); });
      if (conflict != held.end()) {
        problems.push_back({port_path(snap, ref, "nodePort"),
                            "Invalid value: " + value + ": provided port is already allocated (by " +
                                holder(snap, *conflict) + ")"});
        continue;
      }
      held.push_back(ref);
    }
  }

  // 2. Two services with one identity would be indistinguishable in logs and metrics.
  std::map<std::string, std::size_t> ids;
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    const service& svc = snap.services[i];
    if (svc.name.empty()) continue;  // already reported by the loader
    if (!ids.emplace(svc.id(), i).second)
      problems.push_back({svc.ad_hoc               ? "--forward"
                          : svc.kubernetes_object ? service_path(snap, i) + ": metadata.name"
                                                  : service_path(snap, i) + ".name",
                          "Duplicate value: " + quote(svc.id())});
  }

  // Access settings that depend on the ports: PROXY protocol and connection limits are TCP only.
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    check_access(snap, i, problems);
    check_tls(snap, i, problems);
  }

  // 3. Allocation. Skipped once anything is wrong: allocating around a broken input gives
  // misleading "range is full" errors and a snapshot nobody will run.
  if (problems.empty()) {
    const int offset = band_offset(range.size());
    std::vector<bool> taken(static_cast<std::size_t>(range.size()), false);
    auto take = [&](int n) {
      if (range.contains(n)) taken[static_cast<std::size_t>(n - range.first)] = true;
    };
    for (const auto& [n, held] : holders) take(n);
    // A loopback backend's port is never handed out: the proxy would either fail to bind it or
    // accept its own upstream connections.
    for (const auto& svc : snap.services)
      for (const auto& port : svc.ports)
        for (const auto& ep : port.endpoints)
          if (ep.address.ip.unmapped().is_loopback()) take(ep.address.port);

    for (std::size_t i = 0; i < snap.services.size(); ++i) {
      const service& current = snap.services[i];
      const bool wants_number =
          current.health_check_node_port == allocate_health_check_port ||
          std::any_of(current.ports.begin(), current.ports.end(), [](const service_port& p) { return p.node_port == 0; });
      if (!wants_number) continue;  // edit() would copy a Service another snapshot shares
      service& svc = snap.services.edit(i);
      for (std::size_t j = 0; j < svc.ports.size(); ++j) {
        service_port& port = svc.ports[j];
        if (port.node_port != 0) continue;
        // TCP+UDP twins with the same `port` share one number, like the apiserver does.
        auto twin = std::find_if(svc.ports.begin(), svc.ports.end(), [&](const service_port& other) {
          return &other != &port && other.node_port != 0 && other.port == port.port && other.proto != port.proto;
        });
        if (twin != svc.ports.end()) {
          port.node_port = twin->node_port;
          port.node_port_allocated = true;
          continue;
        }
        const auto h = stable_hash(svc.id() + "/" + port.name + "/" + std::string(to_string(port.proto)));
        auto n = pick_in_band(range.first + offset, range.last, taken, range.first, h);
        if (!n) n = pick_in_band(range.first, range.first + offset - 1, taken, range.first, h);
        if (!n) {
          problems.push_back({port_path(snap, {i, j}, "nodePort"),
                              "Internal error: failed to allocate a nodePort: range is full"});
          continue;
        }
        port.node_port = *n;
        port.node_port_allocated = true;
        take(*n);
      }
      if (svc.health_check_node_port == allocate_health_check_port) {
        const auto h = stable_hash(svc.id() + "/healthCheckNodePort");
        auto n = pick_in_band(range.first + offset, range.last, taken, range.first, h);
        if (!n) n = pick_in_band(range.first, range.first + offset - 1, taken, range.first, h);
        if (!n) {
          problems.push_back({port_path(snap, {i, health_check}, "nodePort"),
                              "Internal error: failed to allocate a nodePort: range is full"});
          continue;
        }
        svc.health_check_node_port = *n;
        svc.health_check_node_port_allocated = true;
        take(*n);
      }
    }
  }

  // 4. Self-loops (ACCEPTANCE row 58): a loopback endpoint on a nodePort this proxy binds with
  // the same protocol would feed every connection back into the proxy until fds run out.
  std::set<std::pair<protocol, int>> bound;
  for (const auto& svc : snap.services)
    for (const auto& port : svc.ports)
      if (port.node_port != 0) bound.insert({port.proto, port.node_port});
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    const service& svc = snap.services[i];
    for (std::size_t j = 0; j < svc.ports.size(); ++j) {
      const service_port& port = svc.ports[j];
      for (const auto& ep : port.endpoints) {
        if (!ep.address.ip.unmapped().is_loopback() || !bound.count({port.proto, ep.address.port})) continue;
        problems.push_back({port_path(snap, {i, j}, "endpoints"),
                            "Invalid value: " + quote(ep.address.str()) + ": points back at this proxy's own nodePort " +
                                std::to_string(ep.address.port) + "/" + std::string(to_string(port.proto)) +
                                "; connections would loop"});
      }
    }
  }
}

}  // namespace detail

void validate_and_allocate(snapshot& snap) {
  // Work on a copy so a failed validation leaves the caller's snapshot exactly as it was.
  snapshot candidate = snap;
  std::vector<problem> problems;
  detail::check_and_allocate(candidate, problems);
  if (!problems.empty()) throw config_error(snap.source.empty() ? "<config>" : snap.source, std::move(problems));
  snap = std::move(candidate);
}

}  // namespace npp::config
