#pragma once
// Helpers shared by the config/ unit tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "config/load.hpp"

namespace npp::config::test {

/// Loads native JSON text with default options (or opts).
inline snapshot load(std::string_view text, const load_options& opts = {}) {
  return load_native_json(text, opts, "test.json");
}

/// Every problem string ("path: message") the call throws in a config_error; empty if it succeeds.
template <typename F>
std::vector<std::string> problems_of(F&& call) {
  try {
    call();
  } catch (const config_error& e) {
    std::vector<std::string> out;
    for (const auto& p : e.problems()) out.push_back(p.str());
    return out;
  }
  return {};
}

/// problems_of(load(text, opts)).
inline std::vector<std::string> load_problems(std::string_view text, const load_options& opts = {}) {
  return problems_of([&] { load(text, opts); });
}

/// True if some problem string contains needle.
inline bool has_problem(const std::vector<std::string>& problems, std::string_view needle) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const std::string& p) { return p.find(needle) != std::string::npos; });
}

/// A one-service document with a single port object given as JSON text.
inline std::string with_port(std::string_view port_json) {
  return R"({"services": [{"name": "web", "ports": [)" + std::string(port_json) + "]}]}";
}

}  // namespace npp::config::test

namespace doctest {
// Lets CHECK(a == b) print vectors of problem strings when it fails.
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string out = "[";
    for (const auto& s : v) out += "\n  " + s;
    out += v.empty() ? "]" : "\n]";
    return out.c_str();
  }
};
}  // namespace doctest
