#include "config/watch_events.hpp"

#include <algorithm>

#include "config/loader_internal.hpp"

namespace npp::config {
namespace {

using json = nlohmann::json;

// Keys whose values nothing in config/ reads (kubernetes_objects.cpp), skipped at any depth of an
// item. "status" is skipped only as an item's own key (a Service's load balancer status).
bool unread_key(const std::string& k) {
  return k == "managedFields" || k == "ownerReferences" || k == "finalizers" || k == "targetRef" || k == "hints" ||
         k == "zone" || k == "hostname" || k == "deprecatedTopology";
}

// Builds one JSON subtree from SAX events.
struct subtree {
  json root;
  std::vector<json*> stack;
  std::string key;
  json* place(json&& v) {
    if (stack.empty()) {
      root = std::move(v);
      return &root;
    }
    json& parent = *stack.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    json& slot = parent[key];
    slot = std::move(v);
    return &slot;
  }
};

// SAX consumer that builds one list item, skipping what no decoder reads (unread_key(), and the
// item's own "status"), with a depth cap.
class item_reader {
 public:
  explicit item_reader(int max_depth) : max_depth_(max_depth) {}

  bool null() { return scalar(json(nullptr)); }
  bool boolean(bool v) { return scalar(json(v)); }
  bool number_integer(json::number_integer_t v) { return scalar(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return scalar(json(v)); }
  bool string(json::string_t& v) { return scalar(json(std::move(v))); }
  bool binary(json::binary_t&) { return false; }
  bool start_object(std::size_t) { return open(json::value_t::object); }
  bool start_array(std::size_t) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    if (skip_until_ >= 0) return true;
    if (unread_key(k) || (depth_ == 1 && k == "status")) {
      skip_next_ = true;
      return true;
    }
    build_.key = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const json::exception& ex) {
    error = ex.what();
    if (auto end = error.find("] "); error.rfind("[json.exception.", 0) == 0 && end != std::string::npos) error.erase(0, end + 2);
    return false;
  }

  json& result() { return build_.root; }
  std::string error;

 private:
  bool scalar(json&& v) {
    if (skip_until_ >= 0) return true;
    if (skip_next_) {
      skip_next_ = false;
      return true;
    }
    build_.place(std::move(v));
    return true;
  }
  bool open(json::value_t type) {
    if (++depth_ > max_depth_) {
      error = "nesting deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    if (skip_until_ >= 0) return true;
    if (skip_next_) {
      skip_next_ = false;
      skip_until_ = depth_ - 1;
      return true;
    }
    build_.stack.push_back(build_.place(json(type)));
    return true;
  }
  bool close() {
    --depth_;
    if (skip_until_ >= 0) {
      if (depth_ == skip_until_) skip_until_ = -1;
      return true;
    }
    build_.stack.pop_back();
    return true;
  }

  int max_depth_;
  int depth_ = 0;
  bool skip_next_ = false;
  int skip_until_ = -1;
  subtree build_;
};

}  // namespace

list_stream_reader::list_stream_reader(std::size_t max_item_bytes, int max_depth,
                                       std::function<void(nlohmann::json&&)> on_item)
    : max_item_(max_item_bytes), max_depth_(max_depth), on_item_(std::move(on_item)) {}

void list_stream_reader::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  item_.clear();
  item_.shrink_to_fit();
}

void list_stream_reader::append(char c) {
  if (capturing_) {
    if (item_.size() >= max_item_) return fail("a list item is larger than " + std::to_string(max_item_) + " bytes");
    item_.push_back(c);
  } else if (!(in_items_ && depth_ >= 2)) {
    // Everything but the items: {"kind":...,"metadata":{...},"items":[]}. Small in any real list.
    if (skeleton_.size() >= max_skeleton_bytes) return fail("the list's metadata is larger than 1 MiB");
    skeleton_.push_back(c);
  }
}

void list_stream_reader::emit() {
  // Items are at depth 3 of the list; the item parser allows what is left of the cap.
  item_reader reader(std::max(1, max_depth_ - 2));
  bool ok = false;
  try {
    ok = json::sax_parse(item_.begin(), item_.end(), &reader, json::input_format_t::json, true, false);
  } catch (const json::exception& e) {
    reader.error = e.what();
  }
  item_.clear();
  if (!ok) return fail("item " + std::to_string(items_) + ": " + (reader.error.empty() ? "invalid JSON" : reader.error));
  ++items_;
  on_item_(std::move(reader.result()));
}

void list_stream_reader::feed(std::string_view chunk) {
  for (char c : chunk) {
    if (!error_.empty()) return;
    if (in_string_) {
      append(c);
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
        if (depth_ == 1) last_string_ = key_;
      } else if (depth_ == 1 && key_.size() < 16) {
        key_.push_back(c);
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        if (depth_ == 1) key_.clear();
        append(c);
        break;
      case '{':
      case '[':
        if (in_items_ && depth_ == 2) capturing_ = true;  // an item starts
        append(c);
        if (depth_ == 1 && c == '[' && last_string_ == "items") in_items_ = true;
        if (++depth_ > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
        break;
      case '}':
      case ']':
        if (--depth_ < 0) return fail("unbalanced '" + std::string(1, c) + "'");
        append(c);
        if (capturing_ && depth_ == 2) {
          capturing_ = false;
          emit();
        }
        if (in_items_ && depth_ == 1) in_items_ = false;
        break;
      default:
        append(c);
    }
  }
}

bool list_stream_reader::finish(std::string* resource_version) {
  if (error_.empty() && (depth_ != 0 || in_string_)) fail("the list ended early (truncated)");
  if (!error_.empty()) return false;
  json skeleton = json::parse(skeleton_, nullptr, false);
  if (skeleton.is_discarded()) return (fail("invalid JSON outside the items"), false);
  if (!skeleton.is_object()) return (fail("a List response must be a JSON object"), false);
  std::string rv;
  if (auto meta = skeleton.find("metadata"); meta != skeleton.end() && meta->is_object())
    if (auto v = meta->find("resourceVersion"); v != meta->end() && v->is_string()) rv = v->get<std::string>();
  if (resource_version) *resource_version = rv;
  return true;
}

bool read_list(std::string_view text, int max_depth, const std::function<void(nlohmann::json&&)>& on_item,
               std::string* resource_version, std::string* error) {
  list_stream_reader reader(text.size() + 1, max_depth, on_item);
  reader.feed(text);
  if (!reader.finish(resource_version)) {
    if (error) *error = reader.error();
    return false;
  }
  return true;
}

void ndjson_reader::feed(std::string_view chunk) {
  if (!error_.empty()) return;
  if (taken_ == lines_.size()) {
    lines_.clear();
    taken_ = 0;
  }
  while (!chunk.empty()) {
    const auto nl = chunk.find('\n');
    const std::string_view piece = chunk.substr(0, nl);
    if (partial_.size() + piece.size() > max_) {
      error_ = "watch event larger than " + std::to_string(max_) + " bytes";
      partial_.clear();
      partial_.shrink_to_fit();
      return;
    }
    partial_.append(piece);
    if (nl == std::string_view::npos) return;
    chunk.remove_prefix(nl + 1);
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    if (partial_.find_first_not_of(" \t") != std::string::npos) lines_.push_back(std::move(partial_));
    partial_.clear();
  }
}

std::optional<std::string> ndjson_reader::next_line() {
  if (taken_ == lines_.size()) return std::nullopt;
  return std::move(lines_[taken_++]);
}

std::optional<watch_event> parse_watch_event(std::string_view line, std::string* why) {
  auto fail = [&](std::string w) -> std::optional<watch_event> {
    if (why) *why = std::move(w);
    return std::nullopt;
  };
  // The loaders' parser: depth-capped, so a hostile event cannot nest without bound.
  load_options opts;
  opts.max_bytes = line.size();
  std::vector<problem> problems;
  auto parsed = detail::parse_json(line, opts, problems);
  if (!parsed) return fail(problems.empty() ? "not valid JSON" : "not valid JSON: " + problems.front().str());
  nlohmann::json& doc = *parsed;
  if (!doc.is_object()) return fail("not a JSON object");
  auto type = doc.find("type");
  if (type == doc.end() || !type->is_string()) return fail("no \"type\"");
  watch_event ev;
  const auto& t = type->get_ref<const std::string&>();
  if (t == "ADDED")
    ev.type = watch_event_type::added;
  else if (t == "MODIFIED")
    ev.type = watch_event_type::modified;
  else if (t == "DELETED")
    ev.type = watch_event_type::deleted;
  else if (t == "BOOKMARK")
    ev.type = watch_event_type::bookmark;
  else if (t == "ERROR")
    ev.type = watch_event_type::error;
  else
    return fail("unknown type \"" + t.substr(0, 32) + "\"");
  auto obj = doc.find("object");
  if (obj == doc.end() || !obj->is_object()) return fail("no \"object\"");
  ev.object = std::move(*obj);
  return ev;
}

int status_code(const nlohmann::json& status) {
  auto c = status.find("code");
  return c != status.end() && c->is_number_integer() ? c->get<int>() : 0;
}

std::string status_text(const nlohmann::json& status) {
  std::string out;
  if (auto m = status.find("message"); m != status.end() && m->is_string()) out = m->get<std::string>();
  std::string detail;
  if (auto r = status.find("reason"); r != status.end() && r->is_string()) detail = "reason " + r->get<std::string>();
  if (int code = status_code(status)) detail += (detail.empty() ? "" : ", ") + std::string("code ") + std::to_string(code);
  if (!detail.empty()) out += (out.empty() ? "" : " ") + ("(" + detail + ")");
  return out.empty() ? "(no message)" : out;
}

}  // namespace npp::config
