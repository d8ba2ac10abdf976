#include "config/problem.hpp"

#include <cstdio>

namespace npp::config {

std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      // Escaping every non-ASCII byte keeps messages valid UTF-8 even when the input was not
      // (argv, or a parse error's "last read" token), so a JSON log formatter cannot throw.
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

static std::string format_what(const std::string& source, const std::vector<problem>& problems) {
  std::string what = source + ": " + std::to_string(problems.size()) +
                     (problems.size() == 1 ? " problem:" : " problems:");
  for (const auto& p : problems) what += "\n  " + p.str();
  return what;
}

config_error::config_error(std::string source, std::vector<problem> problems)
    : std::runtime_error(format_what(source, problems)),
      source_(std::move(source)),
      problems_(std::move(problems)) {}

}  // namespace npp::config
