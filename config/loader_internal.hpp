#pragma once
// Pieces shared by the loaders in config/ (native_json.cpp, load_file.cpp, forward.cpp,
// validate.cpp). Not part of the contract proxy/ codes against; include load.hpp there.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/load.hpp"

namespace npp::config::detail {

/// Parses JSON text under opts.max_bytes and opts.max_depth without ever building a tree deeper
/// than the cap. Syntax errors carry line and column. On failure appends problems, returns nullopt.
std::optional<nlohmann::json> parse_json(std::string_view text, const load_options& opts,
                                         std::vector<problem>& problems);

/// Endpoints for a Service defined in another input (a manifest), from the native format's
/// top-level "backends" list. Matched to the Service's ports by name, port and protocol (each
/// optional; at least name or port).
struct backend_port {
  std::string path;                 ///< "backends[0].ports[1]", for problems
  std::optional<std::string> name;  ///< the Service port's name
  std::optional<int> port;          ///< the Service port's `port`
  std::optional<protocol> proto;    ///< the Service port's protocol
  std::vector<endpoint> endpoints;  ///< as in a native port, deduplicated by address
};
struct backend_entry {
  std::string path;             ///< "backends[0]", for problems
  std::string ns = "default";   ///< namespace of the Service
  std::string service;          ///< name of the Service
  std::vector<backend_port> ports;
};

/// One EndpointSlice, reduced to what a proxy uses.
struct slice_port {
  std::string name;  ///< "" for a single unnamed Service port
  protocol proto = protocol::tcp;
  int port = 0;      ///< the resolved target port of every endpoint in the slice
};
struct endpoint_slice {
  std::string label;    ///< "EndpointSlice ops/admin-ui-7xk2p", for notes
  std::string ns;       ///< metadata.namespace
  std::string service;  ///< label kubernetes.io/service-name
  std::vector<slice_port> ports;
  std::vector<endpoint> endpoints;  ///< address.port is 0: each slice port gives its own
};

/// Everything one input contributed, before inputs are merged into a snapshot.
struct decoded_input {
  std::vector<service> services;         ///< bound Services, in input order (native and Kubernetes)
  std::map<std::string, std::string> skipped;  ///< "ns/name" -> why, for Services read but not bound
  std::vector<endpoint_slice> slices;    ///< EndpointSlices (IPv4/IPv6), in input order
  std::vector<backend_entry> backends;   ///< native "backends" entries
  std::vector<std::string> notes;        ///< see snapshot::notes
  std::optional<port_range> range;       ///< the native file's nodePortRange, if given and valid
};

/// Largest maxConnections / maxConnectionsPerSource (native key or annotation).
constexpr int max_connection_limit = 2147483647;
/// The detail of an out-of-range connection limit.
constexpr const char* connection_limit_range = "must be between 1 and 2147483647, inclusive";

/// health_check_node_port value that asks check_and_allocate() to allocate one.
constexpr int allocate_health_check_port = -1;

/// Reads a parsed native document ({"services": [...], "backends": [...]}) into `out`, appending
/// every field problem. Services and ports keep their file positions even when invalid, so later
/// cross-checks can name them by path.
void native_from_json(const nlohmann::json& doc, decoded_input& out, std::vector<problem>& problems);

/// Turns decoded inputs into a snapshot: joins EndpointSlices and backends to Services, applies
/// publishNotReadyAddresses, picks the nodePort range (opts.range_override, else the inputs'
/// nodePortRange), then check_and_allocate(). Appends every problem; notes go to snapshot::notes.
snapshot assemble(std::vector<decoded_input> inputs, const load_options& opts, std::vector<problem>& problems);

// Message helpers shared by the decoders (native_json.cpp), in Kubernetes' field-error words.
/// quote() of at most 64 bytes, then "...".
std::string quote_short(std::string_view s);
/// A value as it appears in "Invalid value: <v>: ...": strings quoted and cut short, containers abbreviated.
std::string describe(const nlohmann::json& v);
/// "Invalid value: <value>: <detail>".
std::string invalid(const std::string& value, std::string_view detail);
/// "Unsupported value: "v": supported values: "a", "b"".
std::string unsupported(std::string_view value, std::initializer_list<std::string_view> supported);
/// "line L, column C" of a byte offset.
std::string line_column(std::string_view text, std::size_t position);
/// Text with control and non-ASCII bytes escaped as \xNN.
std::string printable(std::string_view text);
/// A key as it appears in a reported path: printable and cut short.
std::string path_segment(std::string_view key);
/// Kubernetes ValidateNonSpecialIP for an address a proxy would dial: the detail after
/// "Invalid value: <v>: " for unspecified, multicast and broadcast addresses, else "".
std::string special_ip_error(const ip_address& ip);

/// validate_and_allocate() without the throw: range checks, collisions, self-loops, and (only
/// when problems is still empty, since a broken input would allocate nonsense) allocation.
void check_and_allocate(snapshot& snap, std::vector<problem>& problems);

/// Parses an endpoint address "a.b.c.d:P" or "[v6]:P" and rejects addresses a proxy must never
/// dial (unspecified, multicast). IPv4-mapped IPv6 is normalised to IPv4. On failure returns
/// nullopt and sets *why to the detail after "Invalid value: <v>: ".
std::optional<host_port> parse_endpoint_address(std::string_view text, std::string* why);

/// Makes the TLS file paths of `svc` absolute: relative ones resolve against `dir`.
void resolve_tls_paths(service& svc, const std::filesystem::path& dir);
/// "" if `file` holds at least one PEM certificate (*count: how many), else why not.
std::string check_certificate_file(const std::string& file, std::size_t* count = nullptr);
/// Checks a certificate and its key: returns why the certificate file is unusable ("" if it is
/// fine) and sets *key_why when the key file is unusable or does not match the certificate.
std::string check_key_pair(const std::string& cert_file, const std::string& key_file, std::string* key_why);
/// "" if `file` holds a PEM CRL, else why not.
std::string check_crl_file(const std::string& file);

/// "path.key" (or "key" at the root).
inline std::string child_path(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
/// "path[i]".
inline std::string index_path(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

}  // namespace npp::config::detail
