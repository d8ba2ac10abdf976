// object_store::build() is incremental; rebuild_all() is the whole-set build it must always agree
// with. A seeded random walk of watch events (Services added, changed and deleted; EndpointSlices
// moved between Services; ClusterIP Services; numbers held twice; endpoints looping back into a
// nodePort; ports without a nodePort to allocate) compares the two after every event.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <random>
#include <string>

#include "config/kube_store.hpp"
#include "test_support.hpp"

using namespace npp::config;
using json = nlohmann::json;

namespace {

json service_object(int n, int node_port, bool cluster_ip, bool udp_twin) {
  json port = {{"name", "http"}, {"port", 80}, {"protocol", "TCP"}};
  if (node_port > 0) port["nodePort"] = node_port;
  json ports = json::array({port});
  if (udp_twin) {
    json twin = port;
    twin["protocol"] = "UDP";
    twin["name"] = "dns";
    ports.push_back(twin);
  }
  json spec = {{"type", cluster_ip ? "ClusterIP" : "NodePort"}, {"ports", ports}};
  return {{"metadata", {{"name", "s" + std::to_string(n)}, {"namespace", "ns"}}}, {"spec", spec}};
}

json slice_object(int n, int owner, const std::string& ip, int target_port, bool ready) {
  return {{"metadata",
           {{"name", "e" + std::to_string(n)},
            {"namespace", "ns"},
            {"labels", {{"kubernetes.io/service-name", "s" + std::to_string(owner)}}}}},
          {"addressType", "IPv4"},
          {"endpoints", {{{"addresses", {ip}}, {"conditions", {{"ready", ready}}}}}},
          {"ports", {{{"name", "http"}, {"protocol", "TCP"}, {"port", target_port}}}}};
}

std::string problems_text(const config_error& e) {
  std::string out;
  for (const auto& p : e.problems()) out += p.str() + "\n";
  return out;
}

}  // namespace

TEST_CASE("object_store: the incremental build always equals the whole build, and shares unchanged Services") {
  load_options opts;
  opts.range_override = port_range{30000, 30039};  // small, so numbers collide and allocation happens
  std::mt19937 rng(20261126);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  object_store store;
  store.replace(api_kind::service, json::array());
  store.replace(api_kind::endpoint_slice, json::array());

  int incremental = 0, whole = 0, failures = 0, shared_checks = 0;
  snapshot previous;
  bool have_previous = false;
  for (int step = 0; step < 3000; ++step) {
    const int r = pick(100);
    std::string changed;  // the Service id this event may change ("" : any)
    if (r < 35) {
      const int n = pick(12);
      // Mostly a free-looking number; sometimes none (allocation), ClusterIP, or a UDP twin.
      const int np = pick(10) == 0 ? 0 : 30000 + pick(40);
      store.upsert(api_kind::service, service_object(n, np, pick(8) == 0, pick(6) == 0));
      changed = "ns/s" + std::to_string(n);
    } else if (r < 45) {
      const int n = pick(12);
      store.erase(api_kind::service, service_object(n, 0, false, false));
      changed = "ns/s" + std::to_string(n);
    } else if (r < 90) {
      // A slice that may move to another Service: both Services change.
      const int n = pick(16);
      const bool loop = pick(15) == 0;  // 127.0.0.1 on a port in the nodePort range
      const std::string ip = loop ? "127.0.0.1" : "10.0." + std::to_string(pick(4)) + "." + std::to_string(1 + pick(200));
      store.upsert(api_kind::endpoint_slice, slice_object(n, pick(12), ip, loop ? 30000 + pick(20) : 8080, pick(4) != 0));
    } else if (r < 98) {
      store.erase(api_kind::endpoint_slice, slice_object(pick(16), 0, "10.0.0.1", 8080, true));
    } else {
      // A re-list of one kind: everything is assembled again.
      json items = json::array();
      for (int n = 0; n < 8; ++n) items.push_back(service_object(n, 30000 + n, false, false));
      store.replace(api_kind::service, items);
    }

    std::string whole_error, incremental_error;
    snapshot expected, got;
    try {
      expected = store.rebuild_all(opts, "api");
    } catch (const config_error& e) {
      whole_error = problems_text(e);
    }
    try {
      got = store.build(opts, "api");
    } catch (const config_error& e) {
      incremental_error = problems_text(e);
    }
    CAPTURE(step);
    REQUIRE(incremental_error == whole_error);
    if (!whole_error.empty()) {
      ++failures;
      have_previous = false;
      continue;
    }
    (store.last_build_whole() ? whole : incremental)++;
    REQUIRE(got.services.size() == expected.services.size());
    for (std::size_t i = 0; i < got.services.size(); ++i) CHECK(got.services[i] == expected.services[i]);
    CHECK(got.range == expected.range);
    CHECK(got.source == "api");
    // An incremental build after an incremental build shares every Service the event did not touch.
    if (have_previous && !store.last_build_whole() && !changed.empty()) {
      for (std::size_t i = 0; i < got.services.size(); ++i)
        for (std::size_t j = 0; j < previous.services.size(); ++j)
          if (got.services[i].id() == previous.services[j].id() && got.services[i].id() != changed) {
            ++shared_checks;
            CHECK(got.services.shared(i) == previous.services.shared(j));
          }
    }
    previous = got;
    have_previous = !store.last_build_whole();
  }
  MESSAGE("incremental " << incremental << ", whole " << whole << ", failed " << failures << ", sharing checks "
                         << shared_checks);
  // The walk must exercise all three outcomes, or it tests less than it claims.
  CHECK(incremental > 500);
  CHECK(whole > 20);
  CHECK(failures > 20);
  CHECK(shared_checks > 1000);
}

TEST_CASE("object_store: one changed EndpointSlice rebuilds only its Service") {
  load_options opts;
  opts.range_override = port_range{30000, 32767};
  object_store store;
  json services = json::array(), slices = json::array();
  for (int n = 0; n < 50; ++n) {
    services.push_back(service_object(n, 30000 + n, false, false));
    slices.push_back(slice_object(n, n, "10.1.0." + std::to_string(n + 1), 8080, true));
  }
  store.replace(api_kind::service, services);
  store.replace(api_kind::endpoint_slice, slices);
  const auto first = store.build(opts, "api");
  CHECK(store.last_build_assembled() == 50);  // after a list: every Service
  CHECK_FALSE(store.last_build_whole());
  REQUIRE(first.services.size() == 50);

  store.upsert(api_kind::endpoint_slice, slice_object(7, 7, "10.2.0.7", 8080, true));
  const auto second = store.build(opts, "api");
  CHECK(store.last_build_assembled() == 1);
  CHECK_FALSE(store.last_build_whole());
  REQUIRE(second.services.size() == 50);
  for (std::size_t i = 0; i < 50; ++i) {
    if (second.services[i].name == "s7") {
      CHECK(second.services.shared(i) != first.services.shared(i));
      CHECK(second.services[i].ports[0].endpoints.at(0).address.str() == "10.2.0.7:8080");
    } else {
      CHECK(second.services.shared(i) == first.services.shared(i));
    }
  }
  // The first snapshot is unchanged by the second (published snapshots are immutable).
  for (std::size_t i = 0; i < 50; ++i)
    if (first.services[i].name == "s7") CHECK(first.services[i].ports[0].endpoints.at(0).address.str() == "10.1.0.8:8080");

  // A number held twice goes to the whole build, which names both holders.
  store.upsert(api_kind::service, service_object(60, 30003, false, false));
  CHECK_THROWS_WITH_AS(store.build(opts, "api"), doctest::Contains("provided port is already allocated (by ns/s3"),
                       config_error);
  store.erase(api_kind::service, service_object(60, 0, false, false));
  CHECK(store.build(opts, "api").services.size() == 50);
}

TEST_CASE("object_store: a Service's TLS files are checked at every build, not only when it changes") {
  using npp::config::test::fixture;
  using npp::config::test::scratch_dir;
  scratch_dir dir("store-tls");
  const auto cert = dir.write("cert.pem", "").string(), key = dir.write("key.pem", "").string();
  std::filesystem::copy_file(fixture("tls") / "cert.pem", cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(fixture("tls") / "key.pem", key, std::filesystem::copy_options::overwrite_existing);
  load_options opts;
  opts.range_override = port_range{30000, 32767};
  object_store store;
  auto tls_service = service_object(1, 30001, false, false);
  tls_service["metadata"]["annotations"] = {{"nodeport-proxy.io/tls-cert-file", cert}, {"nodeport-proxy.io/tls-key-file", key}};
  store.replace(api_kind::service, json::array({tls_service, service_object(2, 30002, false, false)}));
  store.replace(api_kind::endpoint_slice, json::array({slice_object(1, 1, "10.0.0.1", 8080, true),
                                                       slice_object(2, 2, "10.0.0.2", 8080, true)}));
  REQUIRE(store.build(opts, "api").services.size() == 2);

  // The key is replaced by one that does not match; then an event touches only the other Service.
  std::filesystem::copy_file(fixture("tls") / "other-key.pem", key, std::filesystem::copy_options::overwrite_existing);
  store.upsert(api_kind::endpoint_slice, slice_object(2, 2, "10.0.0.3", 8080, true));
  std::string whole_error, error;
  try {
    store.rebuild_all(opts, "api");
  } catch (const config_error& e) {
    whole_error = problems_text(e);
  }
  try {
    store.build(opts, "api");
  } catch (const config_error& e) {
    error = problems_text(e);
  }
  CHECK(whole_error.find("tls-key-file") != std::string::npos);
  CHECK(error == whole_error);

  // Fixed on disk: the next build, again for an unrelated event, is incremental and succeeds.
  std::filesystem::copy_file(fixture("tls") / "key.pem", key, std::filesystem::copy_options::overwrite_existing);
  store.upsert(api_kind::endpoint_slice, slice_object(2, 2, "10.0.0.4", 8080, true));
  CHECK(store.build(opts, "api").services.size() == 2);
  CHECK_FALSE(store.last_build_whole());
  CHECK(store.last_build_assembled() == 2);  // the changed Service and the TLS one
}
