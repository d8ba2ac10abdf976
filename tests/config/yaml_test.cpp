// YAML input: scalar typing (YAML 1.2 core schema), comments and document streams, and the
// hostile-input caps (depth, alias expansion, flow length, size, encoding).
#include "test_support.hpp"

#include <chrono>

#include "config/yaml.hpp"

using namespace npp::config;
using npp::config::test::any_problems;
using npp::config::test::has_problem;
using npp::config::test::load_any;
using json = nlohmann::json;
using strings = std::vector<std::string>;

namespace {
// The documents of text, or the problems as one string each.
std::vector<json> yaml_docs(std::string_view text, const load_options& opts = {}) {
  std::vector<problem> problems;
  auto docs = detail::parse_yaml(text, opts, problems);
  if (!docs) {
    for (const auto& p : problems) MESSAGE(p.str());
    return {};
  }
  CHECK(problems.empty());
  return *docs;
}
strings yaml_problems(std::string_view text, const load_options& opts = {}) {
  std::vector<problem> problems;
  auto docs = detail::parse_yaml(text, opts, problems);
  CHECK(!docs);
  strings out;
  for (const auto& p : problems) out.push_back(p.str());
  return out;
}
json one_doc(std::string_view text) {
  auto docs = yaml_docs(text);
  REQUIRE(docs.size() == 1);
  return docs[0];
}
}  // namespace

TEST_CASE("plain scalars follow the YAML 1.2 core schema and quoted ones stay strings") {
  auto doc = one_doc(
      "int: 30080\n"
      "quoted: \"30080\"\n"
      "single: '30080'\n"
      "tagged: !!str 30080\n"
      "signed: -5\n"
      "leading_zero: 0755\n"
      "octal: 0o17\n"
      "hex: 0x1F\n"
      "float: 1.5\n"
      "exp: 1e3\n"
      "yes: yes\n"
      "on: off\n"
      "t: true\n"
      "f: False\n"
      "tilde: ~\n"
      "null_word: null\n"
      "empty:\n"
      "text: hello world\n"
      "ip: 10.0.0.1\n"
      "version: 1.2.3\n"
      "block: |\n  line one\n  line two\n"
      "huge: 123456789012345678901234567890\n");
  CHECK(doc["int"] == 30080);
  CHECK(doc["int"].is_number_integer());
  CHECK(doc["quoted"] == "30080");
  CHECK(doc["single"] == "30080");
  CHECK(doc["tagged"] == "30080");
  CHECK(doc["signed"] == -5);
  CHECK(doc["leading_zero"] == 755);  // base 10 in YAML 1.2, not octal
  CHECK(doc["octal"] == 15);
  CHECK(doc["hex"] == 31);
  CHECK(doc["float"] == 1.5);
  CHECK(doc["exp"].is_number_float());
  CHECK(doc["yes"] == "yes");  // the "Norway problem" does not exist in YAML 1.2
  CHECK(doc["on"] == "off");
  CHECK(doc["t"] == true);
  CHECK(doc["f"] == false);
  CHECK(doc["tilde"].is_null());
  CHECK(doc["null_word"].is_null());
  CHECK(doc["empty"].is_null());
  CHECK(doc["text"] == "hello world");
  CHECK(doc["ip"] == "10.0.0.1");
  CHECK(doc["version"] == "1.2.3");
  CHECK(doc["block"] == "line one\nline two\n");
  CHECK(doc["huge"].is_number_float());  // beyond 64 bits: never an integer field
}

TEST_CASE("explicit core tags are honoured and other tags are refused") {
  auto doc = one_doc("a: !!int \"42\"\nb: !!bool \"true\"\nc: !!null \"\"\nd: !!float 2\n");
  CHECK(doc["a"] == 42);
  CHECK(doc["b"] == true);
  CHECK(doc["c"].is_null());
  CHECK(doc["d"] == 2.0);
  CHECK(yaml_problems("a: !!int abc\n") ==
        strings{"invalid YAML: line 1, column 4: the value \"abc\" is not a valid !!int"});
  CHECK(has_problem(yaml_problems("a: !custom 1\n"), "unsupported tag \"!custom\""));
}

TEST_CASE("comments, multi-document streams and empty documents are handled") {
  auto docs = yaml_docs(
      "# leading comment\n"
      "---\n"
      "a: 1 # trailing comment\n"
      "b: \"# not a comment\"\n"
      "c: x#y\n"
      "---\n"
      "---\n"
      "- 1\n"
      "- 2\n"
      "...\n");
  REQUIRE(docs.size() == 3);
  CHECK(docs[0] == json{{"a", 1}, {"b", "# not a comment"}, {"c", "x#y"}});
  CHECK(docs[1].is_null());
  CHECK(docs[2] == json::array({1, 2}));
  CHECK(any_problems("# only a comment\n") ==
        strings{"invalid YAML: the input has no documents (only comments or \"---\")"});
}

TEST_CASE("a depth bomb in flow style stops at the cap before yaml-cpp tokenises it") {
  const auto start = std::chrono::steady_clock::now();
  auto problems = yaml_problems("a: " + std::string(2'000'000, '['));
  CHECK(problems == strings{"invalid YAML: parse error at line 1, column 68: nesting is deeper than 64 levels"});
  // yaml-cpp alone needs about 2 s and 470 MB for this; the pre-scan stops it at once (a few
  // ms; the bound is loose so a loaded machine or a sanitizer build does not trip it).
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));
  CHECK(has_problem(yaml_problems(std::string(100'000, '{')), "nesting is deeper than 64 levels"));
}

TEST_CASE("a depth bomb in block style stops at the cap inside the parser") {
  std::string text;
  for (int i = 0; i < 100'000; ++i) text += "- ";
  text += "x\n";
  CHECK(has_problem(yaml_problems(text), "nesting is deeper than 64 levels"));
  std::string indented;
  for (int i = 0; i < 200; ++i) indented += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
  CHECK(has_problem(yaml_problems(indented), "nesting is deeper than 64 levels"));
}

TEST_CASE("nesting exactly at the cap is accepted in YAML too, one deeper is not") {
  load_options opts;
  opts.max_depth = 8;
  CHECK(yaml_docs(std::string(8, '[') + std::string(8, ']'), opts).size() == 1);
  CHECK(has_problem(yaml_problems(std::string(9, '[') + std::string(9, ']'), opts), "nesting is deeper than 8 levels"));
  std::string block8, block9;
  for (int i = 0; i < 8; ++i) block8 += "- ";
  block9 = block8 + "- ";
  CHECK(yaml_docs(block8 + "x\n", opts).size() == 1);
  CHECK(has_problem(yaml_problems(block9 + "x\n", opts), "nesting is deeper than 8 levels"));
}

TEST_CASE("an alias bomb stops at the expansion cap") {
  const std::string laughs =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
      "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
      "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
      "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
      "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
  const auto start = std::chrono::steady_clock::now();
  auto problems = yaml_problems(laughs);
  REQUIRE(problems.size() == 1);
  CHECK(has_problem(problems, "the document expands to more than"));
  CHECK(has_problem(problems, "is this an alias bomb?"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  // An alias may not carry nesting past the depth cap either.
  load_options opts;
  opts.max_depth = 4;
  CHECK(has_problem(yaml_problems("a: &x [[[1]]]\nb: [*x]\n", opts), "nesting is deeper than 4 levels"));
}

TEST_CASE("aliases and merge keys within the caps work as Kubernetes' YAML reader reads them") {
  auto doc = one_doc(
      "defaults: &defaults\n"
      "  protocol: TCP\n"
      "  port: 80\n"
      "ports:\n"
      "  - <<: *defaults\n"
      "    name: http\n"
      "  - <<: *defaults\n"
      "    port: 81\n"
      "labels: &l {app: web}\n"
      "again: *l\n");
  CHECK(doc["ports"][0] == json{{"protocol", "TCP"}, {"port", 80}, {"name", "http"}});
  CHECK(doc["ports"][1] == json{{"protocol", "TCP"}, {"port", 81}});  // written keys win
  CHECK(doc["again"] == json{{"app", "web"}});
  CHECK(has_problem(yaml_problems("a: &x 1\nb:\n  <<: *x\n"), "a merge key (<<) takes a mapping or a list of mappings"));
}

TEST_CASE("a flow collection longer than the cap is refused, block style is not") {
  std::string flow = "a: [";
  while (flow.size() < detail::max_flow_bytes + 10) flow += "1,";
  flow += "1]\n";
  CHECK(has_problem(yaml_problems(flow), "a flow collection ([...] or {...}) is longer than 262144 bytes"));
  std::string block = "a:\n";
  while (block.size() < detail::max_flow_bytes + 10) block += "  - 1\n";
  CHECK(yaml_docs(block).size() == 1);
  // Brackets inside quotes, comments and block scalars are not flow collections.
  CHECK(yaml_docs("a: \"[[[[[[[[\"\nb: '{{{{'  # [[[[\nc: |\n  [[[[[[[[[\n  {{{{{{\nd: x [y\n").size() == 1);
}

TEST_CASE("YAML input above max_bytes is refused before parsing") {
  load_options opts;
  opts.max_bytes = 32;
  CHECK(yaml_problems("a: " + std::string(100, 'x') + "\n", opts) == strings{"input is larger than 32 bytes"});
}

TEST_CASE("tabs and other syntax errors carry line and column") {
  CHECK(has_problem(yaml_problems("a:\n\t- 1\n"), "invalid YAML: parse error at line 2, column"));
  CHECK(has_problem(yaml_problems("a: 1\n  b: 2\n"), "invalid YAML: parse error at line 2, column"));
  CHECK(has_problem(yaml_problems("a: [1, 2\n"), "invalid YAML: parse error at line 2, column"));
  CHECK(has_problem(yaml_problems("a: b: c\n"), "invalid YAML: parse error at line 1, column"));
  CHECK(has_problem(yaml_problems("a: *nope\n"), "invalid YAML: parse error at line 1, column 4"));
}

TEST_CASE("duplicate keys in YAML are reported with their line") {
  CHECK(yaml_problems("a: 1\nb:\n  c: 1\n  c: 2\n") == strings{"invalid YAML: line 4, column 3: duplicate key \"c\""});
}

TEST_CASE("NUL bytes and invalid UTF-8 in YAML are refused and never echoed raw") {
  CHECK(yaml_problems(std::string("a: 1\nb: \0\n", 10)) == strings{"invalid YAML: parse error at line 2, column 4: NUL byte"});
  CHECK(yaml_problems("a: \xff\xfe\n") == strings{"invalid YAML: parse error at line 1, column 4: invalid UTF-8"});
  CHECK(yaml_problems("a: \xed\xa0\x80\n") == strings{"invalid YAML: parse error at line 1, column 4: invalid UTF-8"});
  CHECK(yaml_docs("\xEF\xBB\xBF" "a: \xc3\xa9\n").size() == 1);  // BOM and valid UTF-8 are fine
}

TEST_CASE("non-scalar and null mapping keys are refused") {
  CHECK(has_problem(yaml_problems("? [a, b]\n: 1\n"), "a mapping key must be a scalar"));
  CHECK(has_problem(yaml_problems("~: 1\n"), "a mapping key must not be null"));
}

TEST_CASE("a YAML flow mapping at the start is read as JSON and says so when it is not") {
  // JSON is tried for input starting with { or [; YAML's flow syntax there gets JSON's errors.
  CHECK(has_problem(any_problems("{services: []}"), "invalid JSON: parse error at line 1, column 2"));
  CHECK_NOTHROW(load_any("services: []\n"));
}
