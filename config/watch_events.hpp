#pragma once
// The Kubernetes watch stream as data: a newline-delimited JSON event reader fed by arbitrary
// chunks (what a chunked HTTP body delivers), and the decoded event. Pure (no sockets, no Asio),
// so it can be unit-tested with chunk boundaries anywhere and fuzzed.
//
// Framing (KUBERNETES.md §4.3): the API server writes one JSON object per line,
// {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}. Blank lines and a
// trailing "\r" are tolerated. A line longer than the cap is an error (it is never buffered in
// full): a hostile or broken server cannot make the proxy hold an unbounded event.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace npp::config {

enum class watch_event_type { added, modified, deleted, bookmark, error };

struct watch_event {
  watch_event_type type = watch_event_type::added;
  nlohmann::json object;  ///< the object (for ERROR a Status object)
};

/// Splits a byte stream into lines, each at most max_line_bytes long (newline excluded).
class ndjson_reader {
 public:
  explicit ndjson_reader(std::size_t max_line_bytes) : max_(max_line_bytes) {}

  /// Appends a chunk; complete lines become available through next_line(). After an oversize
  /// line the reader is failed: feed() ignores input and failed() says why.
  void feed(std::string_view chunk);
  /// The next complete line (without "\n" and a trailing "\r"; blank lines are skipped).
  std::optional<std::string> next_line();
  /// Non-empty once a line exceeded the cap.
  const std::string& failed() const { return error_; }
  /// Bytes of an incomplete line held back.
  std::size_t pending() const { return partial_.size(); }

 private:
  std::size_t max_;
  std::string partial_;             ///< bytes after the last newline
  std::vector<std::string> lines_;  ///< complete lines not yet taken
  std::size_t taken_ = 0;           ///< lines_[0..taken_) were returned
  std::string error_;
};

/// Decodes one line as a watch event. Returns nullopt and sets *why for anything else: not JSON,
/// not an object, no or unknown "type", no object "object".
std::optional<watch_event> parse_watch_event(std::string_view line, std::string* why);

/// Reads a List response ({"kind": "ServiceList", "metadata": {"resourceVersion": "N"},
/// "items": [...]}) one item at a time: each item is built, handed to on_item and freed before
/// the next, so a cluster-sized list never exists as one JSON tree (a tree costs about ten times
/// the text). Subtrees a proxy never reads are skipped while parsing: metadata.managedFields,
/// ownerReferences, finalizers, an object's top-level "status", and per endpoint targetRef, hints,
/// zone, hostname, deprecatedTopology. Sets *resource_version from metadata.resourceVersion.
/// Returns false and sets *error on malformed JSON, a document that is not an object, or nesting
/// deeper than max_depth.
bool read_list(std::string_view text, int max_depth, const std::function<void(nlohmann::json&&)>& on_item,
               std::string* resource_version, std::string* error);

/// For an ERROR event or an error response body (a Status object): its code (0 if absent).
int status_code(const nlohmann::json& status);
/// "message (reason Expired, code 410)" of a Status object, for logs.
std::string status_text(const nlohmann::json& status);

}  // namespace npp::config
