#include "config/watch_events.hpp"

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

// SAX consumer for read_list(). Depth counts open containers: the list object is depth 1, the
// items array depth 2, an item depth 3.
class list_reader {
 public:
  list_reader(int max_depth, const std::function<void(json&&)>& on_item) : max_depth_(max_depth), on_item_(on_item) {}

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
    if (depth_ == 1) {
      top_key_ = std::move(k);
      return true;
    }
    if (building_) {
      if (unread_key(k) || (depth_ == 3 && in_items_ && k == "status")) {
        skip_next_ = true;
        return true;
      }
      build_.key = std::move(k);
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const json::exception& ex) {
    error = ex.what();
    if (auto end = error.find("] "); error.rfind("[json.exception.", 0) == 0 && end != std::string::npos) error.erase(0, end + 2);
    return false;
  }

  std::string error;
  std::string resource_version;

 private:
  bool scalar(json&& v) {
    if (skip_until_ >= 0) return true;
    if (skip_next_) {
      skip_next_ = false;
      return true;
    }
    if (depth_ == 0) {
      error = "a List response must be a JSON object";
      return false;
    }
    if (building_) {
      build_.place(std::move(v));
    } else if (in_items_ && depth_ == 2) {
      on_item_(std::move(v));  // not an object: the decoder says what is wrong with it
    }
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
    if (depth_ == 1) {
      if (type != json::value_t::object) {
        error = "a List response must be a JSON object";
        return false;
      }
      return true;
    }
    if (building_) {
      build_.stack.push_back(build_.place(json(type)));
      return true;
    }
    if (depth_ == 2 && top_key_ == "items" && type == json::value_t::array) {
      in_items_ = true;
      return true;
    }
    if ((depth_ == 3 && in_items_) || (depth_ == 2 && top_key_ == "metadata")) {
      building_ = true;
      build_ = subtree{};
      build_.stack.push_back(build_.place(json(type)));
      return true;
    }
    skip_until_ = depth_ - 1;  // anything else at the top level
    return true;
  }

  bool close() {
    --depth_;
    if (skip_until_ >= 0) {
      if (depth_ == skip_until_) skip_until_ = -1;
      return true;
    }
    if (building_) {
      build_.stack.pop_back();
      if (build_.stack.empty()) {
        building_ = false;
        if (depth_ == 2 && in_items_) {
          on_item_(std::move(build_.root));
        } else if (depth_ == 1) {  // metadata
          auto rv = build_.root.find("resourceVersion");
          if (rv != build_.root.end() && rv->is_string()) resource_version = rv->get<std::string>();
        }
        build_ = subtree{};
      }
      return true;
    }
    if (depth_ == 1 && in_items_) in_items_ = false;
    return true;
  }

  int max_depth_;
  const std::function<void(json&&)>& on_item_;
  int depth_ = 0;
  std::string top_key_;
  bool in_items_ = false;
  bool building_ = false;
  bool skip_next_ = false;
  int skip_until_ = -1;
  subtree build_;
};

}  // namespace

bool read_list(std::string_view text, int max_depth, const std::function<void(nlohmann::json&&)>& on_item,
               std::string* resource_version, std::string* error) {
  list_reader reader(max_depth, on_item);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &reader, json::input_format_t::json, true, false);
  } catch (const json::exception& e) {
    reader.error = e.what();
  }
  if (!ok) {
    if (error) *error = reader.error.empty() ? "invalid JSON" : reader.error;
    return false;
  }
  if (resource_version) *resource_version = reader.resource_version;
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
