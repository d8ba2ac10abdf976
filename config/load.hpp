#pragma once
// Entry points that turn input into a validated snapshot. Everything here throws
// config_error with *all* problems found; nothing here touches sockets.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/problem.hpp"
#include "config/snapshot.hpp"

namespace npp::config {

/// Process settings that shape loading (from CLI flags; main.cpp fills this in).
struct load_options {
  /// --service-node-port-range; when unset the file's "nodePortRange", else 30000-32767.
  std::optional<port_range> range_override;
  /// Largest input accepted, in bytes (hostile-input cap).
  std::size_t max_bytes = 64u << 20;
  /// Deepest JSON/YAML nesting accepted (hostile-input cap).
  int max_depth = 64;
};

/// Parses the native JSON endpoint-file format from text and runs validate_and_allocate()'s
/// checks in the same pass, so field problems and collisions are reported together. `source`
/// names the input in errors and becomes snapshot::source.
snapshot load_native_json(std::string_view text, const load_options& opts, const std::string& source = "<input>");

/// Loads text in any supported format, detected from the content: JSON or YAML (several "---"
/// documents allowed), holding the native format ({"services": [...], "backends": [...]}) or
/// Kubernetes objects (Service, EndpointSlice, List / ServiceList / EndpointSliceList; see
/// kubernetes_objects.hpp for the rules). Validates and allocates like load_native_json().
snapshot load_text(std::string_view text, const load_options& opts, const std::string& source = "<input>");

/// Reads a file (size-capped), detects its format and loads it: load_files({path}).
snapshot load_file(const std::filesystem::path& path, const load_options& opts);

/// Reads every file (each size-capped) and merges them into one snapshot: Services from native
/// files and Kubernetes manifests/lists, endpoints from EndpointSlices and from native
/// "backends" entries (endpoints for a Service another file defines, e.g. a manifest paired with
/// local 127.0.0.1 backends; see examples/README.md). Everything is validated together:
/// nodePort collisions across files, duplicate namespace/name, a backends entry naming a Service
/// no file defines. With more than one file every problem path starts with "FILE: ".
/// snapshot::source is the paths joined with " + "; snapshot::notes says what was skipped.
snapshot load_files(const std::vector<std::filesystem::path>& paths, const load_options& opts);

/// Parses one --forward value "LISTEN=HOST:PORT[,HOST:PORT...]" (LISTEN: a port, optionally
/// prefixed "tcp:" or "udp:") into an ad-hoc service named "forward-LISTEN".
service parse_forward(std::string_view spec);

/// Cross-checks and allocates nodePorts over the whole snapshot: ports in range (unless ad hoc),
/// no collisions (a number may be shared only by TCP+UDP ports of one Service with the same
/// port), missing nodePorts allocated deterministically (KEP-3668 bands). Throws config_error.
void validate_and_allocate(snapshot& snap);

}  // namespace npp::config
