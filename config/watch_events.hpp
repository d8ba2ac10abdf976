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
/// "items": [...]}) as it arrives, one item at a time: a structural scanner (strings, escapes,
/// nesting) cuts each element of "items" out of the byte stream, whatever the chunk boundaries,
/// and parses it as soon as its last byte is in, so decoding overlaps the transfer and a
/// cluster-sized list never exists as one JSON tree (a tree costs about ten times the text).
/// Subtrees a proxy never reads are skipped while parsing an item: metadata.managedFields,
/// ownerReferences, finalizers, the item's own "status", and per endpoint targetRef, hints, zone,
/// hostname, deprecatedTopology. Items that are not objects or arrays are ignored. Everything
/// outside "items" is kept (small) and parsed by finish() for metadata.resourceVersion.
class list_stream_reader {
 public:
  list_stream_reader(std::size_t max_item_bytes, int max_depth, std::function<void(nlohmann::json&&)> on_item);
  /// Scans a chunk; calls on_item for every item completed in it. After a failure does nothing.
  void feed(std::string_view chunk);
  /// After the last chunk: false (see error()) if anything failed or the list is incomplete;
  /// else sets *resource_version (empty if the list has none).
  bool finish(std::string* resource_version);
  /// Why the list was refused: malformed item, item over the cap, nesting deeper than the cap,
  /// truncated, not an object.
  const std::string& error() const { return error_; }
  std::size_t items() const { return items_; }

 private:
  static constexpr std::size_t max_skeleton_bytes = 1u << 20;
  void append(char c);
  void emit();
  void fail(std::string why);

  std::size_t max_item_;
  int max_depth_;
  std::function<void(nlohmann::json&&)> on_item_;
  int depth_ = 0;
  bool in_string_ = false, escape_ = false;
  bool in_items_ = false;   ///< inside the "items" array
  bool capturing_ = false;  ///< inside an item
  std::string key_, last_string_;  ///< the last string at depth 1 (a key before "[": "items")
  std::string item_, skeleton_;
  std::size_t items_ = 0;
  std::string error_;
};

/// list_stream_reader over a whole text (items capped by the text's size).
bool read_list(std::string_view text, int max_depth, const std::function<void(nlohmann::json&&)>& on_item,
               std::string* resource_version, std::string* error);

/// For an ERROR event or an error response body (a Status object): its code (0 if absent).
int status_code(const nlohmann::json& status);
/// "message (reason Expired, code 410)" of a Status object, for logs.
std::string status_text(const nlohmann::json& status);

}  // namespace npp::config
