// The watch stream reader (config/watch_events.hpp): chunk boundaries anywhere, size cap, event
// decoding; and the object store that turns watched objects into snapshots (config/kube_store.hpp).
#include <random>

#include "config/kube_store.hpp"
#include "config/watch_events.hpp"
#include "test_support.hpp"

using namespace npp::config;
using json = nlohmann::json;

namespace {
std::vector<std::string> drain(ndjson_reader& r) {
  std::vector<std::string> out;
  while (auto l = r.next_line()) out.push_back(*l);
  return out;
}

const std::string stream =
    R"({"type":"ADDED","object":{"kind":"Service","metadata":{"name":"a","resourceVersion":"5"}}})"
    "\n"
    R"({"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"884990"}}})"
    "\r\n\n"
    R"x({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (3171407)","reason":"Expired","code":410}})x"
    "\n";
}  // namespace

TEST_CASE("ndjson_reader: the same lines whatever the chunk boundaries") {
  ndjson_reader whole(1 << 20);
  whole.feed(stream);
  const auto expected = drain(whole);
  REQUIRE(expected.size() == 3);
  CHECK(expected[1].back() == '}');  // "\r" stripped, the blank line skipped

  // Every single split point, and every pair of split points.
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    ndjson_reader r(1 << 20);
    r.feed(std::string_view(stream).substr(0, i));
    auto got = drain(r);
    r.feed(std::string_view(stream).substr(i));
    auto rest = drain(r);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == expected);
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    ndjson_reader r(1 << 20);
    std::vector<std::string> got;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
      r.feed(std::string_view(stream).substr(pos, n));
      pos += n;
      auto part = drain(r);
      got.insert(got.end(), part.begin(), part.end());
    }
    CHECK(got == expected);
  }
  ndjson_reader bytes(1 << 20);  // one byte at a time
  std::vector<std::string> got;
  for (char c : stream) {
    bytes.feed(std::string_view(&c, 1));
    auto part = drain(bytes);
    got.insert(got.end(), part.begin(), part.end());
  }
  CHECK(got == expected);
  CHECK(bytes.pending() == 0);
}

TEST_CASE("ndjson_reader: a line over the cap fails the reader without buffering it") {
  ndjson_reader r(64);
  r.feed(std::string(40, 'x') + "\n");
  CHECK(drain(r).size() == 1);
  r.feed(std::string(40, 'y'));
  CHECK(r.failed().empty());
  r.feed(std::string(40, 'y'));  // 80 bytes without a newline
  CHECK(r.failed() == "watch event larger than 64 bytes");
  CHECK(r.pending() == 0);
  r.feed("\n{}\n");
  CHECK(drain(r).empty());  // a failed reader stays failed
  ndjson_reader exact(8);
  exact.feed("12345678\n123456789\n");
  CHECK(drain(exact) == std::vector<std::string>{"12345678"});
  CHECK_FALSE(exact.failed().empty());
}

TEST_CASE("parse_watch_event: types, objects and malformed lines") {
  std::string why;
  auto ev = parse_watch_event(R"({"type":"MODIFIED","object":{"kind":"EndpointSlice"}})", &why);
  REQUIRE(ev);
  CHECK(ev->type == watch_event_type::modified);
  CHECK(ev->object["kind"] == "EndpointSlice");
  auto err = parse_watch_event(
      R"x({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (3171407)","reason":"Expired","code":410}})x",
      &why);
  REQUIRE(err);
  CHECK(err->type == watch_event_type::error);
  CHECK(status_code(err->object) == 410);
  CHECK(status_text(err->object) == "too old resource version: 1 (3171407) (reason Expired, code 410)");
  CHECK_FALSE(parse_watch_event("not json", &why));
  CHECK(why.find("not valid JSON") == 0);
  CHECK_FALSE(parse_watch_event("[1]", &why));
  CHECK_FALSE(parse_watch_event(R"({"object":{}})", &why));
  CHECK(why == "no \"type\"");
  CHECK_FALSE(parse_watch_event(R"({"type":"SYNC","object":{}})", &why));
  CHECK(why == "unknown type \"SYNC\"");
  CHECK_FALSE(parse_watch_event(R"({"type":"ADDED","object":3})", &why));
  CHECK(why == "no \"object\"");
  CHECK_FALSE(parse_watch_event(std::string(200, '[') + std::string(200, ']'), &why));  // depth cap
}

namespace {
json svc(const std::string& name, int node_port, const std::string& annotation = "") {
  json s = {{"metadata", {{"name", name}, {"namespace", "ns"}, {"resourceVersion", "1"}}},
            {"spec", {{"type", "NodePort"}, {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", node_port}}}}}}};
  if (!annotation.empty()) s["metadata"]["annotations"] = {{annotation, "x"}};
  return s;  // no kind: as items of a ServiceList
}
json slice(const std::string& name, const std::string& service, const std::string& ip) {
  return {{"kind", "EndpointSlice"},
          {"apiVersion", "discovery.k8s.io/v1"},
          {"metadata", {{"name", name}, {"namespace", "ns"}, {"labels", {{"kubernetes.io/service-name", service}}}}},
          {"addressType", "IPv4"},
          {"endpoints", {{{"addresses", {ip}}}}},
          {"ports", {{{"name", "http"}, {"port", 8080}}}}};
}
}  // namespace

TEST_CASE("object_store: list, events, and the snapshot they make") {
  object_store store;
  load_options opts;
  opts.range_override = port_range{1, 65535};
  CHECK(store.replace(api_kind::service, json::array({svc("a", 30001), svc("b", 30002)})).empty());
  CHECK(store.replace(api_kind::endpoint_slice, json::array({slice("a-1", "a", "10.0.0.1")})).empty());
  auto snap = store.build(opts, "api");
  CHECK(snap.source == "api");
  REQUIRE(snap.services.size() == 2);
  CHECK(snap.services[0].id() == "ns/a");
  REQUIRE(snap.services[0].ports[0].endpoints.size() == 1);
  CHECK(snap.services[0].ports[0].endpoints[0].address.str() == "10.0.0.1:8080");

  CHECK(store.upsert(api_kind::endpoint_slice, slice("a-2", "a", "10.0.0.2")).empty());
  CHECK(store.upsert(api_kind::service, svc("b", 30003)).empty());  // MODIFIED: new nodePort
  store.erase(api_kind::service, svc("a", 0));
  snap = store.build(opts, "api");
  REQUIRE(snap.services.size() == 1);
  CHECK(snap.services[0].ports[0].node_port == 30003);
  CHECK(store.size(api_kind::endpoint_slice) == 2);

  // A Service with a problem is left out (and its problems returned); the others still build.
  auto problems = store.upsert(api_kind::service, svc("c", 30004, "nodeport-proxy.io/typo"));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("Service ns/c: metadata.annotations[nodeport-proxy.io/typo]: unknown annotation") == 0);
  CHECK(store.build(opts, "api").services.size() == 1);
  // Fixed by the next MODIFIED event.
  CHECK(store.upsert(api_kind::service, svc("c", 30004)).empty());
  CHECK(store.build(opts, "api").services.size() == 2);

  // A re-list replaces everything of that kind.
  CHECK(store.replace(api_kind::service, json::array({svc("z", 30009)})).empty());
  snap = store.build(opts, "api");
  REQUIRE(snap.services.size() == 1);
  CHECK(snap.services[0].id() == "ns/z");

  // Inconsistent as a whole (a nodePort collision, which the API server would not allow): throws.
  store.upsert(api_kind::service, svc("y", 30009));
  CHECK_THROWS_AS(store.build(opts, "api"), config_error);
}

TEST_CASE("read_list: items one at a time, resourceVersion, unread subtrees skipped, errors") {
  const std::string text = R"({"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1",
    "metadata":{"resourceVersion":"884301","continue":""},
    "items":[
      {"metadata":{"name":"a","namespace":"ns","managedFields":[{"manager":"kube-controller-manager"}],
                   "ownerReferences":[{"kind":"Service","name":"a"}]},
       "addressType":"IPv4",
       "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","name":"p"},
                     "zone":"z","hints":{"forZones":[{"name":"z"}]},"nodeName":"n1"}],
       "ports":[{"name":"http","port":8080}]},
      {"metadata":{"name":"b","annotations":{"x":"a \"quoted\" ]} brace"}},"spec":{"ports":[]},"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}},
      7
    ]})";
  std::vector<json> items;
  std::string rv, error;
  REQUIRE(read_list(text, 64, [&](json&& j) { items.push_back(std::move(j)); }, &rv, &error));
  CHECK(rv == "884301");
  REQUIRE(items.size() == 2);  // 7 is not an object: ignored
  CHECK(items[0]["metadata"] == json::parse(R"({"name":"a","namespace":"ns"})"));
  CHECK(items[0]["endpoints"][0] ==
        json::parse(R"({"addresses":["10.0.0.1"],"conditions":{"ready":true},"nodeName":"n1"})"));
  CHECK(items[0]["ports"] == json::parse(R"([{"name":"http","port":8080}])"));
  CHECK_FALSE(items[1].contains("status"));  // an object's own status is not read
  CHECK(items[1]["spec"] == json::parse(R"({"ports":[]})"));
  CHECK(items[1]["metadata"]["annotations"]["x"] == "a \"quoted\" ]} brace");

  // Fed in pieces, split anywhere: the same items and resourceVersion.
  for (std::size_t step : {1u, 2u, 3u, 7u, 64u}) {
    std::vector<json> got;
    list_stream_reader r(1 << 20, 64, [&](json&& j) { got.push_back(std::move(j)); });
    for (std::size_t i = 0; i < text.size(); i += step) r.feed(std::string_view(text).substr(i, step));
    std::string srv;
    REQUIRE(r.finish(&srv));
    CHECK(srv == "884301");
    CHECK(got == items);
  }
  // An item over the cap fails the list (and is never held whole).
  list_stream_reader small(100, 64, [](json&&) {});
  small.feed(text);
  CHECK_FALSE(small.finish(&rv));
  CHECK(small.error() == "a list item is larger than 100 bytes");

  items.clear();
  CHECK_FALSE(read_list(R"({"items":[{"a":1},)", 64, [&](json&& j) { items.push_back(std::move(j)); }, &rv, &error));
  CHECK(error == "the list ended early (truncated)");
  CHECK_FALSE(read_list(R"({"items":[{"a":1,}]})", 64, [&](json&&) {}, &rv, &error));
  CHECK(error.find("item 0: parse error") == 0);
  CHECK_FALSE(read_list("[1,2]", 64, [&](json&&) {}, &rv, &error));
  CHECK(error == "a List response must be a JSON object");
  CHECK_FALSE(read_list(R"({"items":[)" + std::string(100, '[') + std::string(100, ']') + "]}", 64, [&](json&&) {}, &rv, &error));
  CHECK(error == "nesting deeper than 64 levels");
  std::string none = "unset";
  CHECK(read_list(R"({"items":[]})", 64, [&](json&&) {}, &none, &error));
  CHECK(none.empty());
}

TEST_CASE("object_store: replace from list text; a malformed list keeps the objects") {
  object_store store;
  load_options opts;
  opts.range_override = port_range{1, 65535};
  std::string rv;
  const std::string list = R"({"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[)" +
                           svc("a", 30001).dump() + "," + svc("b", 30002).dump() + "]}";
  CHECK(store.replace(api_kind::service, list, 64, &rv).empty());
  CHECK(rv == "9");
  CHECK(store.build(opts, "api").services.size() == 2);
  CHECK_THROWS_AS(store.replace(api_kind::service, std::string_view(list).substr(0, list.size() - 3), 64, &rv),
                  std::runtime_error);
  CHECK(store.build(opts, "api").services.size() == 2);
}
