#include "config/watch_events.hpp"

#include "config/loader_internal.hpp"

namespace npp::config {

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
