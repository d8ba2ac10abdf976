#pragma once
// Helpers shared by the config/ unit tests.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

/// Loads text of any format (JSON or YAML, native or Kubernetes) as "test.yaml".
inline snapshot load_any(std::string_view text, const load_options& opts = {}) {
  return load_text(text, opts, "test.yaml");
}

/// problems_of(load_any(text, opts)).
inline std::vector<std::string> any_problems(std::string_view text, const load_options& opts = {}) {
  return problems_of([&] { load_any(text, opts); });
}

/// A per-test scratch directory, removed with everything in it when the test ends.
class scratch_dir {
 public:
  explicit scratch_dir(std::string_view tag)
      : path_(std::filesystem::temp_directory_path() /
              ("npp-config-" + std::string(tag) + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~scratch_dir() {
    std::error_code ignored_ec;
    std::filesystem::remove_all(path_, ignored_ec);
  }
  std::filesystem::path write(const std::string& name, std::string_view content) const {
    auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::filesystem::path path_;
};

/// The fixture directory tests/config/fixtures.
inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(NPP_SOURCE_DIR) / "tests/config/fixtures" / name;
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
