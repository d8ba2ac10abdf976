// YAML -> JSON values with yaml-cpp's event API. Building the tree ourselves (instead of
// YAML::Load + a recursive Node walk) lets every cap act *before* yaml-cpp descends: the depth
// check throws out of OnSequenceStart/OnMapStart, so its recursive-descent parser never goes
// deeper than opts.max_depth, and alias expansion is counted as it happens.
#include "config/yaml.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "config/loader_internal.hpp"

namespace npp::config::detail {
namespace {

using json = nlohmann::json;

// "line L, column C" (1-based) of a yaml-cpp mark, or "" when yaml-cpp has none.
std::string where(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return "";
  return "line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

std::string yaml_problem(const std::string& position, const std::string& message) {
  return "invalid YAML: " + (position.empty() ? "" : position + ": ") + message;
}

// Stops the parse from inside an event callback; yaml-cpp unwinds its own frames.
struct stop_parse {
  YAML::Mark mark;
  std::string message;
};

// ---------------------------------------------------------------------------------------------
// Scalars: YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution). This is what
// makes `nodePort: 30080` an integer and `nodePort: "30080"` a string, and keeps YAML 1.1's
// yes/no/on/off (the "Norway problem") as strings.

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_octal(char c) { return c >= '0' && c <= '7'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool is_null_text(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

std::optional<bool> bool_text(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// [-+]?[0-9]+ (base 10, so 0755 is 755 as in YAML 1.2), 0o[0-7]+, 0x[0-9a-fA-F]+. Values beyond
// 64 bits become doubles (and then fail any integer field with "must be an integer").
std::optional<json> int_text(std::string_view s) {
  auto parse_unsigned = [](std::string_view digits, int base) -> std::optional<std::uint64_t> {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    return v;
  };
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    const bool hex = s[1] == 'x';
    const auto digits = s.substr(2);
    if (!all_of(digits, hex ? is_hex : is_octal)) return std::nullopt;
    if (auto v = parse_unsigned(digits, hex ? 16 : 8)) return json(*v);
    return json(std::string(s));  // too wide for 64 bits: keep the text
  }
  std::string_view digits = s;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (!all_of(digits, is_digit)) return std::nullopt;
  if (auto v = parse_unsigned(digits, 10)) {
    if (!negative) return json(*v);
    if (*v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1)
      return json(static_cast<std::int64_t>(0 - *v));
  }
  return json(std::strtod(std::string(s).c_str(), nullptr));
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?.inf, .nan
std::optional<json> float_text(std::string_view s) {
  std::string_view rest = s;
  bool negative = false;
  if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
    negative = rest[0] == '-';
    rest.remove_prefix(1);
  }
  if (rest == ".inf" || rest == ".Inf" || rest == ".INF")
    return json(negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return json(std::numeric_limits<double>::quiet_NaN());
  std::size_t i = 0, int_digits = 0, frac_digits = 0;
  while (i < rest.size() && is_digit(rest[i])) ++i, ++int_digits;
  if (i < rest.size() && rest[i] == '.') {
    ++i;
    while (i < rest.size() && is_digit(rest[i])) ++i, ++frac_digits;
    if (int_digits == 0 && frac_digits == 0) return std::nullopt;
  } else if (int_digits == 0) {
    return std::nullopt;
  }
  if (int_digits == 0 && frac_digits == 0) return std::nullopt;
  if (i < rest.size() && (rest[i] == 'e' || rest[i] == 'E')) {
    ++i;
    if (i < rest.size() && (rest[i] == '+' || rest[i] == '-')) ++i;
    std::size_t exp_digits = 0;
    while (i < rest.size() && is_digit(rest[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != rest.size()) return std::nullopt;
  return json(std::strtod(std::string(s).c_str(), nullptr));
}

json resolve_plain(const std::string& s) {
  if (is_null_text(s)) return json(nullptr);
  if (auto b = bool_text(s)) return json(*b);
  if (auto i = int_text(s)) return *i;
  if (auto f = float_text(s)) return *f;
  return json(s);
}

constexpr std::string_view core_tag = "tag:yaml.org,2002:";

// A scalar with its tag: "?" = plain (resolve), "!" = quoted or block (string), or explicit.
json typed_scalar(const YAML::Mark& mark, const std::string& tag, const std::string& value) {
  if (tag == "?") return resolve_plain(value);
  if (tag == "!") return json(value);
  if (tag.rfind(core_tag, 0) == 0) {
    const std::string_view type = std::string_view(tag).substr(core_tag.size());
    if (type == "str") return json(value);
    if (type == "null" && is_null_text(value)) return json(nullptr);
    if (type == "bool")
      if (auto b = bool_text(value)) return json(*b);
    if (type == "int")
      if (auto i = int_text(value)) return *i;
    if (type == "float") {
      if (auto f = float_text(value)) return *f;
      if (auto i = int_text(value)) return json(i->is_number() ? i->get<double>() : 0.0);
    }
    throw stop_parse{mark, "the value " + quote_short(value) + " is not a valid !!" + std::string(type)};
  }
  throw stop_parse{mark, "unsupported tag " + quote_short(tag) + " (only !!str, !!int, !!float, !!bool, !!null)"};
}

// ---------------------------------------------------------------------------------------------
// Event handler: builds one JSON value per document.

class json_builder : public YAML::EventHandler {
 public:
  json_builder(int max_depth, std::size_t max_nodes, std::vector<problem>& problems)
      : max_depth_(max_depth), max_nodes_(max_nodes), problems_(problems) {}

  json take() { return std::move(root_); }

  void OnDocumentStart(const YAML::Mark&) override {
    root_ = json();
    stack_.clear();
    anchors_.clear();  // anchors are scoped to their document
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (expecting_key()) throw stop_parse{mark, "a mapping key must not be null"};
    count(mark, 1);
    remember(anchor, value(json(nullptr)), 1, 0);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw stop_parse{mark, "unknown alias"};
    if (expecting_key()) throw stop_parse{mark, "an alias must not be a mapping key"};
    // Both caps are checked before the copy, so "billion laughs" stops at its first big alias.
    count(mark, it->second.nodes);
    if (static_cast<int>(stack_.size()) + it->second.height > max_depth_)
      throw stop_parse{mark, "nesting is deeper than " + std::to_string(max_depth_) + " levels"};
    value(json(it->second.value));
    note_child_height(it->second.height);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& text) override {
    if (expecting_key()) {
      frame& f = stack_.back();
      // "<<" is YAML 1.1's merge key; Kubernetes' YAML reader (go-yaml) honours it, so a manifest
      // that uses it must not silently lose the merged fields.
      f.key = text;
      f.key_is_merge = tag == "?" && text == "<<";
      if (!f.key_is_merge && f.node->contains(text))
        problems_.push_back({"", yaml_problem(where(mark), "duplicate key " + quote_short(text))});
      f.expect_key = false;
      return;
    }
    count(mark, 1);
    remember(anchor, value(typed_scalar(mark, tag, text)), 1, 0);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, json::array(), anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, json::object(), anchor);
  }
  void OnMapEnd() override {
    apply_merge_keys();
    close();
  }

 private:
  struct frame {
    json* node;
    YAML::anchor_t anchor;
    YAML::Mark mark;
    std::size_t nodes_before;  ///< nodes_ when the container opened
    int height = 1;            ///< levels in this subtree so far
    bool expect_key = true;    ///< maps only: the next scalar is a key
    bool key_is_merge = false; ///< the current key is "<<"
    std::string key;
    std::vector<json> merges;  ///< values given for "<<", applied at the end of the map
  };
  struct anchored {
    json value;
    std::size_t nodes;
    int height;
  };

  bool expecting_key() const { return !stack_.empty() && stack_.back().node->is_object() && stack_.back().expect_key; }

  void count(const YAML::Mark& mark, std::size_t n) {
    nodes_ += n;
    if (nodes_ > max_nodes_)
      throw stop_parse{mark, "the document expands to more than " + std::to_string(max_nodes_) +
                                 " values (aliases are expanded; is this an alias bomb?)"};
  }

  void note_child_height(int h) {
    if (!stack_.empty()) stack_.back().height = std::max(stack_.back().height, h + 1);
  }

  // Stores v where the grammar puts it and returns a pointer to it (valid while its parent is
  // open: only the innermost container grows, and object members live in map nodes).
  json* value(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    frame& f = stack_.back();
    if (f.node->is_array()) {
      f.node->push_back(std::move(v));
      return &f.node->back();
    }
    f.expect_key = true;
    if (f.key_is_merge) {
      f.merges.push_back(std::move(v));
      return &f.merges.back();
    }
    json& slot = (*f.node)[f.key];
    slot = std::move(v);
    return &slot;
  }

  void remember(YAML::anchor_t anchor, const json* v, std::size_t nodes, int height) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = anchored{*v, nodes, height};
  }

  void open(const YAML::Mark& mark, json&& empty, YAML::anchor_t anchor) {
    if (expecting_key()) throw stop_parse{mark, "a mapping key must be a scalar, not a list or a mapping"};
    if (static_cast<int>(stack_.size()) >= max_depth_)
      throw stop_parse{mark, "nesting is deeper than " + std::to_string(max_depth_) + " levels"};
    count(mark, 1);
    const std::size_t before = nodes_ - 1;
    json* node = value(std::move(empty));
    stack_.push_back(frame{node, anchor, mark, before});
  }

  void close() {
    frame f = std::move(stack_.back());
    stack_.pop_back();
    note_child_height(f.height);
    remember(f.anchor, f.node, nodes_ - f.nodes_before, f.height);
  }

  // Keys written in the map win over merged ones; earlier merge sources win over later ones.
  void apply_merge_keys() {
    frame& f = stack_.back();
    for (const json& source : f.merges) {
      std::vector<const json*> maps;
      if (source.is_object()) {
        maps.push_back(&source);
      } else if (source.is_array()) {
        for (const auto& m : source) {
          if (!m.is_object()) throw stop_parse{f.mark, "a merge key (<<) takes a mapping or a list of mappings"};
          maps.push_back(&m);
        }
      } else {
        throw stop_parse{f.mark, "a merge key (<<) takes a mapping or a list of mappings"};
      }
      for (const json* m : maps)
        for (const auto& [k, v] : m->items())
          if (!f.node->contains(k)) (*f.node)[k] = v;
    }
    f.merges.clear();
  }

  int max_depth_;
  std::size_t max_nodes_;
  std::vector<problem>& problems_;
  std::size_t nodes_ = 0;
  json root_;
  std::vector<frame> stack_;
  std::map<YAML::anchor_t, anchored> anchors_;
};

// ---------------------------------------------------------------------------------------------
// Pre-scan of flow collections. yaml-cpp's scanner reads a whole flow collection that might be a
// mapping key ("[a, b]: c" is legal YAML) before the parser sees its first event, so neither the
// depth check in json_builder nor DepthGuard acts until all of "[[[[..." is tokenised (2 M
// brackets: 2 s and 470 MB). This scan finds flow collections the way a YAML reader would, well
// enough to stop bombs: it skips comments, quoted scalars and block scalars, and counts '[' '{'
// only where a node may start or inside a flow collection. Mistakes err on the side of counting
// (a plain scalar continued on a line that starts with '[' counts), which only matters for
// inputs with dozens of such lines or 256 KiB of unbalanced text.
void prescan_flow(std::string_view text, int max_depth, std::vector<problem>& problems) {
  std::vector<std::size_t> open;  // offsets of the open flow collections
  bool node_start = true;         // a node may start at the next non-blank character
  bool after_blank = true;        // previous character was a blank or a line break
  int line_indent = 0;
  int block_scalar_parent = -1;  // >= 0: inside a block scalar of a line with this indentation
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto fail = [&](std::size_t at, const std::string& message) {
    problems.push_back({"", yaml_problem("parse error at " + line_column(text, at), message)});
  };
  auto skip_line = [&] {
    while (i < n && text[i] != '\n') ++i;
  };
  bool line_start = true;
  while (i < n) {
    if (line_start) {
      std::size_t j = i;
      while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
      const int indent = static_cast<int>(j - i);
      const bool blank = j >= n || text[j] == '\n' || text[j] == '\r' || text[j] == '#';
      line_start = false;
      if (block_scalar_parent >= 0) {
        if (blank || indent > block_scalar_parent) {
          skip_line();
          continue;
        }
        block_scalar_parent = -1;
      }
      line_indent = indent;
      if (open.empty()) node_start = true;
      after_blank = true;
      i = j;
      continue;
    }
    if (!open.empty() && i - open.front() > max_flow_bytes) {
      fail(open.front(), "a flow collection ([...] or {...}) is longer than " + std::to_string(max_flow_bytes) +
                             " bytes; write it in block style");
      return;
    }
    const char c = text[i];
    const bool next_blank = i + 1 >= n || text[i + 1] == ' ' || text[i + 1] == '\t' || text[i + 1] == '\n' ||
                            text[i + 1] == '\r';
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      after_blank = true;
      ++i;
      continue;
    }
    if (c == '#' && after_blank) {
      skip_line();
      continue;
    }
    const bool was_node_start = node_start;
    after_blank = false;
    node_start = false;
    if (was_node_start && (c == '"' || c == '\'')) {
      // Quoted scalar, possibly over several lines. Unterminated: yaml-cpp will say so.
      ++i;
      while (i < n) {
        if (c == '"' && text[i] == '\\') {
          i += 2;
          continue;
        }
        if (text[i] == c) {
          if (c == '\'' && i + 1 < n && text[i + 1] == '\'') {
            i += 2;
            continue;
          }
          break;
        }
        ++i;
      }
      ++i;
      continue;
    }
    if ((c == '[' || c == '{') && (was_node_start || !open.empty())) {
      open.push_back(i);
      if (static_cast<int>(open.size()) > max_depth) {
        fail(i, "nesting is deeper than " + std::to_string(max_depth) + " levels");
        return;
      }
      node_start = true;
      ++i;
      continue;
    }
    if ((c == ']' || c == '}') && !open.empty()) {
      open.pop_back();
      ++i;
      continue;
    }
    if (!open.empty() && (c == ',' || c == ':')) {
      node_start = true;
      ++i;
      continue;
    }
    if (open.empty() && (c == ':' || c == '-' || c == '?') && next_blank && (c == ':' || was_node_start)) {
      node_start = true;
      ++i;
      continue;
    }
    if (open.empty() && was_node_start && (c == '|' || c == '>')) {
      block_scalar_parent = line_indent;
      skip_line();
      continue;
    }
    if (was_node_start && (c == '&' || c == '!')) {
      // Anchor or tag: the node itself follows.
      while (i < n && text[i] != ' ' && text[i] != '\t' && text[i] != '\n') ++i;
      node_start = true;
      continue;
    }
    ++i;
  }
}

// Strict UTF-8 (no overlongs, no surrogates), so nothing downstream meets broken text.
std::optional<std::size_t> first_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += len;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<nlohmann::json>> parse_yaml(std::string_view text, const load_options& opts,
                                                     std::vector<problem>& problems) {
  if (text.size() > opts.max_bytes) {
    problems.push_back({"", "input is larger than " + std::to_string(opts.max_bytes) + " bytes"});
    return std::nullopt;
  }
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    problems.push_back({"", yaml_problem("parse error at " + line_column(text, nul), "NUL byte")});
    return std::nullopt;
  }
  if (auto bad = first_invalid_utf8(text)) {
    problems.push_back({"", yaml_problem("parse error at " + line_column(text, *bad), "invalid UTF-8")});
    return std::nullopt;
  }
  const std::size_t before = problems.size();
  prescan_flow(text, opts.max_depth, problems);
  if (problems.size() != before) return std::nullopt;

  std::vector<json> documents;
  std::istringstream in{std::string(text)};
  json_builder builder(opts.max_depth, text.size() + alias_node_allowance, problems);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) documents.push_back(builder.take());
  } catch (const stop_parse& e) {
    problems.push_back({"", yaml_problem(where(e.mark), e.message)});
  } catch (const YAML::Exception& e) {
    const auto position = where(e.mark);
    problems.push_back({"", yaml_problem(position.empty() ? "" : "parse error at " + position, printable(e.msg))});
  }
  if (problems.size() != before) return std::nullopt;
  return documents;
}

}  // namespace npp::config::detail
