#pragma once
// Pieces shared by the loaders in config/ (native_json.cpp, load_file.cpp, forward.cpp,
// validate.cpp). Not part of the contract proxy/ codes against; include load.hpp there.
#include <nlohmann/json.hpp>

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

/// Turns a parsed native document ({"services": [...]}) into a snapshot, appending every field
/// problem. Services and ports keep their file positions even when invalid, so later
/// cross-checks can name them by path.
snapshot native_from_json(const nlohmann::json& doc, const load_options& opts, std::vector<problem>& problems);

/// validate_and_allocate() without the throw: range checks, collisions, self-loops, and (only
/// when problems is still empty, since a broken input would allocate nonsense) allocation.
void check_and_allocate(snapshot& snap, std::vector<problem>& problems);

/// Parses an endpoint address "a.b.c.d:P" or "[v6]:P" and rejects addresses a proxy must never
/// dial (unspecified, multicast). IPv4-mapped IPv6 is normalised to IPv4. On failure returns
/// nullopt and sets *why to the detail after "Invalid value: <v>: ".
std::optional<host_port> parse_endpoint_address(std::string_view text, std::string* why);

/// "path.key" (or "key" at the root).
inline std::string child_path(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
/// "path[i]".
inline std::string index_path(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

}  // namespace npp::config::detail
