#pragma once
// The validated, immutable configuration the data plane runs from. Every source (native JSON
// file, --forward flags, later Kubernetes objects and the API watch) produces one of these;
// proxy/ reads it and never parses a file format. A published snapshot is never mutated.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/ip.hpp"

namespace npp::config {

enum class protocol : std::uint8_t { tcp, udp };
/// "TCP" / "UDP", as Kubernetes spells them.
std::string_view to_string(protocol p);

/// An inclusive nodePort range such as 30000-32767 (--service-node-port-range).
struct port_range {
  int first = 30000;  ///< lowest port, inclusive
  int last = 32767;   ///< highest port, inclusive
  /// Parses "N1-N2" (1 <= N1 <= N2 <= 65535). Returns false and sets *error otherwise.
  static bool parse(std::string_view text, port_range& out, std::string* error = nullptr);
  bool contains(int port) const { return port >= first && port <= last; }
  int size() const { return last - first + 1; }
  std::string str() const { return std::to_string(first) + "-" + std::to_string(last); }
  friend bool operator==(const port_range&, const port_range&) = default;
};

/// One backend address with its EndpointSlice conditions.
struct endpoint {
  host_port address;         ///< pod IP and target port
  bool ready = true;         ///< EndpointSlice conditions.ready (missing = true)
  bool serving = true;       ///< conditions.serving (missing = true)
  bool terminating = false;  ///< conditions.terminating (missing = false)
  std::string node_name;     ///< nodeName, for externalTrafficPolicy: Local
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

enum class session_affinity : std::uint8_t { none, client_ip };
enum class traffic_policy : std::uint8_t { cluster, local };
/// PROXY protocol header sent to the endpoint before any client byte (TCP only).
enum class proxy_protocol_version : std::uint8_t { off, v1, v2 };
/// "off" / "v1" / "v2".
std::string_view to_string(proxy_protocol_version v);

/// A certificate (PEM; the file may hold the chain after the leaf) and its private key (PEM,
/// ECDSA or RSA). Paths are absolute after loading (relative ones resolve against the input
/// file's directory).
struct tls_certificate {
  std::string cert_file;
  std::string key_file;
  /// ocspResponseFile: a DER OCSP response for this certificate, stapled to handshakes of clients
  /// that ask while it is fresh (proxy/tls_context.cpp). Optional; its contents are checked by
  /// the proxy, not the loader: a missing, broken or stale response is a warning, never an error.
  std::string ocsp_response_file;
  friend bool operator==(const tls_certificate&, const tls_certificate&) = default;
};

/// TLS termination on every TCP port of a Service (native key "tls", annotations
/// nodeport-proxy.io/tls-*). Disabled when `certificates` is empty.
struct tls_settings {
  /// [0] is the default certificate; the others are chosen by the client's SNI name when it
  /// matches one of their names (subjectAltName DNS entries, wildcards allowed).
  std::vector<tls_certificate> certificates;
  std::string client_ca_file;  ///< clientCAFile: ask for and require a client certificate signed by these CAs
  std::string crl_file;        ///< crlFile: revoked client certificates (requires client_ca_file)
  bool enabled() const { return !certificates.empty(); }
  friend bool operator==(const tls_settings&, const tls_settings&) = default;
};

/// TLS from the proxy to the endpoint ("re-encrypt"; native key "upstreamTLS", annotations
/// nodeport-proxy.io/upstream-tls*), for pods that only speak HTTPS.
struct upstream_tls_settings {
  bool enabled = false;
  std::string ca_file;        ///< caFile: CAs the endpoint's certificate must chain to ("": the system store)
  std::string server_name;    ///< serverName: SNI sent and name verified ("": none sent, the endpoint IP is verified)
  bool insecure_skip_verify = false;  ///< insecureSkipVerify: encrypt without verifying the endpoint
  friend bool operator==(const upstream_tls_settings&, const upstream_tls_settings&) = default;
};

/// One port of a Service: what the proxy binds (node_port, proto) and where it forwards.
struct service_port {
  std::string name;                  ///< port name ("" allowed for a single port)
  protocol proto = protocol::tcp;    ///< TCP (default) or UDP
  int port = 0;                      ///< the Service's own port (informational)
  int node_port = 0;                 ///< the port bound on the node; never 0 after load
  bool node_port_allocated = false;  ///< true when the loader chose node_port (none was given)
  std::vector<endpoint> endpoints;   ///< every endpoint as given, deduplicated by address
  /// Problem path of this port as the user wrote it ("services[0].ports[1]",
  /// "Service ops/admin-ui: spec.ports[1]"); empty: derived from its position. Informational.
  std::string origin;
  friend bool operator==(const service_port&, const service_port&) = default;
};

struct service {
  std::string ns = "default";  ///< namespace
  std::string name;            ///< Service name
  std::vector<service_port> ports;
  session_affinity affinity = session_affinity::none;
  int affinity_timeout_seconds = 10800;  ///< sessionAffinityConfig.clientIP.timeoutSeconds
  traffic_policy external_traffic_policy = traffic_policy::cluster;
  bool ad_hoc = false;  ///< from --forward: the nodePort range does not apply
  /// spec.healthCheckNodePort (type LoadBalancer + externalTrafficPolicy Local only): a TCP port,
  /// from the nodePort range, where kube-proxy's /healthz JSON is served; 0 = none.
  int health_check_node_port = 0;
  bool health_check_node_port_allocated = false;  ///< true when the loader chose it (none was given)
  /// spec.publishNotReadyAddresses. Already applied by the loader (every endpoint of such a Service
  /// is marked ready, as the EndpointSlice controller does); proxy/ needs no special case.
  bool publish_not_ready_addresses = false;
  /// Where the Service was written, for problems found after loading: "services[2]" (native),
  /// "Service ops/admin-ui" or "items[3] (Service ops/admin-ui)" (Kubernetes), prefixed with
  /// "FILE: " when several files were loaded. Empty: "services[<index>]". Informational.
  std::string origin;
  bool kubernetes_object = false;  ///< from a Kubernetes Service: fields live under spec./metadata.

  // Access and limits (native keys allowSourceRanges, proxyProtocol, maxConnections,
  // maxConnectionsPerSource; annotations nodeport-proxy.io/... on a Kubernetes Service).
  /// Client source blocks allowed to connect (TCP) or to open a session (UDP); a client passes
  /// if any block contains its address. Empty: every source (the global --allow-source-ranges
  /// still applies). IPv4-mapped clients (::ffff:a.b.c.d) are matched as IPv4.
  std::vector<cidr> allow_source_ranges;
  /// PROXY protocol header to send to the endpoint on every TCP connection (off: none).
  proxy_protocol_version proxy_protocol = proxy_protocol_version::off;
  /// Cap on open TCP connections of the Service, over all its ports and workers (0: none).
  std::size_t max_connections = 0;
  /// Cap on open TCP connections of the Service from one client IP address (0: none).
  std::size_t max_connections_per_source = 0;
  /// TLS termination (tls / nodeport-proxy.io/tls-*): on every TCP port of the Service.
  tls_settings tls;
  /// TLS to the endpoints (upstreamTLS / nodeport-proxy.io/upstream-tls*).
  upstream_tls_settings upstream_tls;
  /// "namespace/name"
  std::string id() const { return ns + "/" + name; }
  friend bool operator==(const service&, const service&) = default;
};

/// The Services of a snapshot, in order. Each is held through a shared_ptr so that consecutive
/// snapshots share the Services that did not change: the API source rebuilds only the Services an
/// event touched (config/kube_store.cpp), and the reconciler skips a Service whose object it has
/// already applied. Reading is by const reference, as from a vector; writing goes through edit(),
/// which first copies a Service that another holder (an older snapshot, the store) still shares,
/// so a published snapshot is never changed through a newer one.
class service_list {
  struct item {
    std::shared_ptr<const service> ptr;
    bool writable = false;  ///< created here (not const), so edit() may change it once it is unshared
  };
  using storage = std::vector<item>;

 public:
  using value_type = service;
  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = service;
    using difference_type = std::ptrdiff_t;
    using pointer = const service*;
    using reference = const service&;
    const_iterator() = default;
    explicit const_iterator(storage::const_iterator it) : it_(it) {}
    reference operator*() const { return *it_->ptr; }
    pointer operator->() const { return it_->ptr.get(); }
    reference operator[](difference_type n) const { return *it_[n].ptr; }
    const_iterator& operator++() { ++it_; return *this; }
    const_iterator operator++(int) { auto old = *this; ++it_; return old; }
    const_iterator& operator--() { --it_; return *this; }
    const_iterator operator--(int) { auto old = *this; --it_; return old; }
    const_iterator& operator+=(difference_type n) { it_ += n; return *this; }
    const_iterator& operator-=(difference_type n) { it_ -= n; return *this; }
    friend const_iterator operator+(const_iterator a, difference_type n) { return a += n; }
    friend const_iterator operator+(difference_type n, const_iterator a) { return a += n; }
    friend const_iterator operator-(const_iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const const_iterator& a, const const_iterator& b) { return a.it_ - b.it_; }
    friend bool operator==(const const_iterator&, const const_iterator&) = default;
    friend auto operator<=>(const const_iterator&, const const_iterator&) = default;

   private:
    storage::const_iterator it_;
  };
  using iterator = const_iterator;

  service_list() = default;
  service_list(std::initializer_list<service> services) {
    for (const auto& s : services) push_back(s);
  }

  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void reserve(std::size_t n) { items_.reserve(n); }
  const service& operator[](std::size_t i) const { return *items_[i].ptr; }
  const service& at(std::size_t i) const { return *items_.at(i).ptr; }
  const service& front() const { return *items_.front().ptr; }
  const service& back() const { return *items_.back().ptr; }
  const_iterator begin() const { return const_iterator(items_.begin()); }
  const_iterator end() const { return const_iterator(items_.end()); }

  void push_back(service svc) { items_.push_back({std::make_shared<service>(std::move(svc)), true}); }
  /// Shares `svc` (never null) with whoever else holds it.
  void push_back(std::shared_ptr<const service> svc) { items_.push_back({std::move(svc), false}); }
  /// The shared object of Service i: equal pointers mean the same, unchanged Service.
  const std::shared_ptr<const service>& shared(std::size_t i) const { return items_[i].ptr; }
  /// Makes entry i share `svc` (never null) instead of its object.
  void replace(std::size_t i, std::shared_ptr<const service> svc) { items_.at(i) = {std::move(svc), false}; }
  /// Service i for writing, copied first if anyone else holds it.
  service& edit(std::size_t i);

 private:
  storage items_;
};

struct snapshot {
  port_range range;               ///< the nodePort range the snapshot was validated against
  service_list services;          ///< in file order
  std::string source;             ///< where it came from (path, "--forward"), for logs
  /// What the loader skipped or decided on the user's behalf, one line each, for debug logs:
  /// "ops/admin-ui: skipped: type ClusterIP has no nodePorts".
  std::vector<std::string> notes;
};
using snapshot_ptr = std::shared_ptr<const snapshot>;

/// Every TLS file the snapshot uses (certificates, keys, OCSP responses, CAs, CRLs), each once, for
/// file watches.
std::vector<std::string> tls_files(const snapshot& snap);

/// The endpoints a connection to this port may use, as kube-proxy picks them: ready ones; if
/// there are none, serving && terminating ones. With externalTrafficPolicy Local only those
/// whose node_name equals node_name. Order is the order of port.endpoints.
std::vector<host_port> usable_endpoints(const service& svc, const service_port& port,
                                        std::string_view node_name);

}  // namespace npp::config
