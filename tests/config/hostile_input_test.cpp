// ACCEPTANCE row 52: hostile JSON is rejected under caps with a config_error, never a crash.
#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::has_problem;
using npp::config::test::load;
using npp::config::test::load_problems;
using strings = std::vector<std::string>;

namespace {
// Every message must stay printable ASCII whatever bytes the input had (logs, JSON log lines).
bool printable_ascii(const std::vector<std::string>& problems) {
  for (const auto& p : problems)
    for (unsigned char c : p)
      if (c < 0x20 || c > 0x7e) return false;
  return true;
}
}  // namespace

TEST_CASE("100k nested arrays stop at the depth cap without building the tree") {
  auto problems = load_problems(std::string(100'000, '['));
  std::string innermost;  // the 63rd open array, where the 64th would have gone
  for (int i = 0; i < 63; ++i) innermost += "[0]";
  CHECK(problems == strings{innermost + ": invalid JSON: nesting is deeper than 64 levels"});
  auto objects = std::string();
  for (int i = 0; i < 100'000; ++i) objects += "{\"a\":";
  problems = load_problems(objects);
  REQUIRE(problems.size() == 1);
  CHECK(has_problem(problems, "nesting is deeper than 64 levels"));
  CHECK(problems[0].rfind(std::string("a.a.a"), 0) == 0);  // the path of the container where it stopped
}

TEST_CASE("nesting exactly at the cap is accepted, one deeper is not") {
  load_options opts;
  opts.max_depth = 8;
  // The root object is level 1, so 7 nested arrays reach level 8.
  CHECK_NOTHROW(load(R"({"$schema": [[[[[[[]]]]]]], "services": []})", opts));
  CHECK(load_problems(R"({"$schema": [[[[[[[[]]]]]]]], "services": []})", opts) ==
        strings{"$schema[0][0][0][0][0][0]: invalid JSON: nesting is deeper than 8 levels"});
}

TEST_CASE("input above max_bytes is refused before parsing") {
  load_options opts;
  opts.max_bytes = 32;
  const std::string doc = R"({"services": []})";
  CHECK_NOTHROW(load(doc, opts));
  CHECK(load_problems(doc + std::string(17, ' '), opts) == strings{"input is larger than 32 bytes"});
  CHECK(load_problems(std::string(33, '['), opts) == strings{"input is larger than 32 bytes"});
}

TEST_CASE("a UTF-8 byte order mark is accepted but a broken one is not") {
  CHECK(load("\xEF\xBB\xBF{\"services\": []}").services.empty());
  auto problems = load_problems("\xEF\xBB{\"services\": []}");
  REQUIRE(problems.size() == 1);
  CHECK(has_problem(problems, "invalid JSON: parse error at line 1, column"));
  CHECK(printable_ascii(problems));
  CHECK_FALSE(load_problems("\xFF\xFE{\0\"\0}\0").empty());  // UTF-16 is not JSON text here
}

TEST_CASE("NUL bytes inside or outside strings are syntax errors") {
  auto inside = load_problems(std::string("{\"services\": [], \"a\0\": 1}", 25));
  REQUIRE(inside.size() == 1);
  CHECK(has_problem(inside, "invalid JSON: parse error at line 1, column"));
  CHECK(printable_ascii(inside));
  // nlohmann alone would stop at the NUL and accept the document.
  CHECK(load_problems(std::string("{\"services\": []}\0", 17)) ==
        strings{"invalid JSON: parse error at line 1, column 17: NUL byte"});
  CHECK(load_problems(std::string("{\"services\": []}\n\0{\"junk\"", 25)) ==
        strings{"invalid JSON: parse error at line 2, column 1: NUL byte"});
  auto leading = load_problems(std::string("\0{\"services\": []}", 17));
  REQUIRE(leading.size() == 1);
  CHECK(printable_ascii(leading));
}

TEST_CASE("invalid UTF-8 is rejected and never echoed raw") {
  for (const char* bad : {"{\"services\": [], \"\xC3\x28\": 1}", "{\"services\": [{\"name\": \"\xFF\"}]}",
                          "{\"services\": [], \"\xED\xA0\x80\": 1}", "{\"services\": [], \"\xF8\x88\x80\x80\x80\": 1}",
                          "{\"services\": [], \"x\": \"\xC0\xAF\"}"}) {
    auto problems = load_problems(bad);
    REQUIRE_MESSAGE(problems.size() == 1, bad);
    CHECK(has_problem(problems, "invalid JSON: parse error at line 1"));
    CHECK(printable_ascii(problems));
  }
}

TEST_CASE("trailing junk after the document is an error") {
  for (const char* junk : {"{\"services\": []} x", "{\"services\": []}{}", "{\"services\": []},", "{\"services\": []}]"}) {
    auto problems = load_problems(junk);
    REQUIRE_MESSAGE(problems.size() == 1, junk);
    CHECK(has_problem(problems, "expected end of input"));
  }
  CHECK_NOTHROW(load("{\"services\": []}\n\n  \t"));
}

TEST_CASE("duplicate keys are reported with the path of their object") {
  CHECK(load_problems(R"({"services": [], "services": []})") == strings{"duplicate key \"services\""});
  auto problems = load_problems(R"({"services": [{"name": "a", "ports": [{"port": 80, "port": 81}]}, {"name": "b", "name": "c"}]})");
  CHECK(has_problem(problems, "services[0].ports[0]: duplicate key \"port\""));
  CHECK(has_problem(problems, "services[1]: duplicate key \"name\""));
}

TEST_CASE("numbers too large for a double or a 64-bit integer are rejected") {
  auto overflow = load_problems(R"({"services": [{"name": "a", "ports": [{"port": 1e400}]}]})");
  REQUIRE(overflow.size() == 1);
  CHECK(has_problem(overflow, "invalid JSON: parse error at line 1, column"));
  CHECK(has_problem(overflow, "number overflow parsing '1e400'"));
  auto huge = load_problems(R"({"services": [{"name": "a", "ports": [{"port": 80, "nodePort": 99999999999999999999}]}]})");
  REQUIRE(huge.size() == 1);
  CHECK(has_problem(huge, "services[0].ports[0].nodePort: Invalid value: 1e+20: must be an integer"));
  auto long_digits = load_problems(R"({"services": [{"name": "a", "ports": [{"port": )" + std::string(5000, '9') + "}]}]}");
  REQUIRE(long_digits.size() == 1);
}

TEST_CASE("syntax errors carry line and column") {
  auto problems = load_problems("{\n  \"services\": [\n    }\n");
  REQUIRE(problems.size() == 1);
  CHECK(has_problem(problems, "invalid JSON: parse error at line 3, column 5"));
  CHECK(has_problem(load_problems("{\"services\": [],}"), "line 1, column 17"));
  CHECK(has_problem(load_problems("{'services': []}"), "line 1, column 2"));
  CHECK(has_problem(load_problems("{\"services\": [] // comment\n}"), "line 1"));
  CHECK(has_problem(load_problems("{\"services\": [\"unterminated]}"), "parse error"));
}

TEST_CASE("empty and whitespace-only input say so") {
  CHECK(load_problems("") == strings{"invalid JSON: the input is empty (expected an object such as {\"services\": []})"});
  CHECK(load_problems(" \n\t ") == load_problems(""));
  CHECK(load_problems("\xEF\xBB\xBF") == load_problems(""));
}

TEST_CASE("control characters in keys are escaped in messages") {
  auto problems = load_problems(R"({"services": [], "a\u0001b": 1})");
  CHECK(problems == strings{"unknown field \"a\\x01b\""});
}

TEST_CASE("huge keys and values are cut short in every message and path") {
  const std::string key(1'000'000, 'k');
  for (const std::string& text :
       {R"({"services": [], ")" + key + R"(": 1})", R"({"services": [], ")" + key + R"(": 1, ")" + key + R"(": 2})",
        R"({")" + key + R"(": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})",
        R"({"services": [{"name": ")" + key + R"(", "namespace": ")" + key + R"(", "ports": [{"port": 1, "protocol": ")" + key + R"("}]}]})"}) {
    auto problems = load_problems(text);
    REQUIRE_FALSE(problems.empty());
    for (const auto& p : problems) CHECK(p.size() < 600);
  }
}
