#pragma once
// YAML text -> nlohmann::json, so one decoder serves JSON and YAML input alike. Internal to
// config/ (yaml-cpp is linked PRIVATE); the loaders reach it through load_file()/load_text().
#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>
#include <vector>

#include "config/load.hpp"

namespace npp::config::detail {

/// Parses every document of a YAML stream ("---" separated) into JSON values; empty documents
/// become null. Plain scalars are typed by the YAML 1.2 core schema, as JSON would read them:
/// 80 is an integer but "80" and '80' are strings, yes/no/on/off are strings, 0x1F and 0o17 are
/// integers, ~ and null are null. Explicit !!str/!!int/!!float/!!bool/!!null tags are honoured;
/// other tags are refused.
///
/// Hostile-input caps: opts.max_bytes on the text; opts.max_depth on nesting (checked before
/// yaml-cpp recurses into a container, and by a pre-scan of flow collections, which yaml-cpp
/// would otherwise tokenise in full before reporting the first one); flow collections longer
/// than max_flow_bytes; aliases are expanded but the expanded document may hold at most
/// text.size() + alias_node_allowance nodes ("billion laughs" stops at the cap). Duplicate keys
/// are reported. On failure appends problems (syntax errors with line and column) and returns
/// nullopt.
std::optional<std::vector<nlohmann::json>> parse_yaml(std::string_view text, const load_options& opts,
                                                     std::vector<problem>& problems);

/// Longest flow collection ("[...]" or "{...}") accepted in YAML, in bytes. yaml-cpp buffers
/// every token of a flow collection that could be a mapping key before it reports anything
/// (about 140 bytes of memory per input byte), so a 64 MB "[1,1,1,...]" would need gigabytes.
/// kubectl writes block style; hand-written flow lists are short.
constexpr std::size_t max_flow_bytes = 256 * 1024;

/// Nodes that alias expansion may add beyond one per input byte.
constexpr std::size_t alias_node_allowance = 10'000;

}  // namespace npp::config::detail
