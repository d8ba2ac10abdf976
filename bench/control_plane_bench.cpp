// Control-plane micro-benchmark: the API mode's CPU cost without sockets or a server. Generates
// the text of a ServiceList and an EndpointSliceList in the API's format, then times what the
// proxy does with them after they are received: object_store::replace() (item-by-item JSON parse
// + decode) for each list, and object_store::build() (merge into a validated snapshot), each
// repeated, then one changed EndpointSlice at a time (upsert + the incremental build); prints the
// best and median of the runs and the process's peak RSS.
//
// usage: npp_control_plane_bench [SERVICES=10000] [ENDPOINTS_PER_SERVICE=10] [NODEPORT_SERVICES=5000] [RUNS=5]
// (cmake --build build --target npp_control_plane_bench; see bench/control_plane.sh for the
// end-to-end measurement through HTTPS and the data plane.)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/kube_store.hpp"

using namespace npp::config;
using clock_type = std::chrono::steady_clock;

namespace {

std::string services_list(int n, int nodeports) {
  std::string out = R"({"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1000"},"items":[)";
  for (int i = 0; i < n; ++i) {
    const std::string name = "svc-" + std::to_string(i), ns = "ns-" + std::to_string(i % 50);
    const bool np = i < nodeports;
    out += (i ? "," : "") + std::string(R"({"metadata":{"name":")") + name + R"(","namespace":")" + ns +
           R"(","uid":"5f1c2a9e-3b1d-4c4e-9f3a-)" + std::to_string(100000000000 + i) + R"(","resourceVersion":")" +
           std::to_string(i + 1) + R"(","creationTimestamp":"2024-05-02T10:15:00Z","labels":{"app":")" + name +
           R"("}},"spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080)" +
           (np ? R"(,"nodePort":)" + std::to_string(10000 + i) : "") + R"(}],"selector":{"app":")" + name +
           R"("},"clusterIP":"10.96.0.1","clusterIPs":["10.96.0.1"],"type":")" + (np ? "NodePort" : "ClusterIP") +
           R"(","sessionAffinity":"None",)" + (np ? R"("externalTrafficPolicy":"Cluster",)" : "") +
           R"("ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"},"status":{"loadBalancer":{}}})";
  }
  return out + "]}";
}

// One EndpointSlice of Service i, with `per` endpoints (the last `drop` of them left out).
std::string slice_item(int i, int per, int drop = 0) {
  const std::string name = "svc-" + std::to_string(i), ns = "ns-" + std::to_string(i % 50);
  std::string out = std::string(R"({"metadata":{"name":")") + name + R"(-abcde","generateName":")" + name +
                    R"(-","namespace":")" + ns + R"(","resourceVersion":")" + std::to_string(i + 1) +
                    R"(","labels":{"kubernetes.io/service-name":")" + name +
                    R"(","endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"},"ownerReferences":[{"apiVersion":"v1","kind":"Service","name":")" +
                    name + R"(","uid":"5f1c2a9e","controller":true,"blockOwnerDeletion":true}]},"addressType":"IPv4","endpoints":[)";
  for (int k = 0; k < per - drop; ++k) {
    const int addr = i * per + k;
    const std::string ip = "10." + std::to_string(1 + addr / 65536) + "." + std::to_string((addr / 256) % 256) + "." +
                           std::to_string(addr % 256);
    out += (k ? "," : "") + std::string(R"({"addresses":[")") + ip +
           R"("],"conditions":{"ready":true,"serving":true,"terminating":false},"targetRef":{"kind":"Pod","namespace":")" +
           ns + R"(","name":")" + name + "-" + std::to_string(k) + R"(","uid":"1b2c"},"nodeName":"node-)" +
           std::to_string(k % 20) + R"(","zone":"zone-a"})";
  }
  return out + R"(],"ports":[{"name":"http","protocol":"TCP","port":8080}]})";
}

std::string slices_list(int n, int per) {
  std::string out =
      R"({"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"1000"},"items":[)";
  for (int i = 0; i < n; ++i) out += (i ? "," : "") + slice_item(i, per);
  return out + "]}";
}

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("  %-44s best %7.1f ms   median %7.1f ms\n", what, v.front(), v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int per = argc > 2 ? std::atoi(argv[2]) : 10;
  const int nodeports = argc > 3 ? std::atoi(argv[3]) : 5000;
  const int runs = argc > 4 ? std::atoi(argv[4]) : 5;
  const std::string svc_text = services_list(n, nodeports), slice_text = slices_list(n, per);
  std::printf("%d Services (%d NodePort, %.1f MB), %d EndpointSlices with %d endpoints (%.1f MB); %d runs\n", n,
              nodeports, svc_text.size() / 1e6, n, n * per, slice_text.size() / 1e6, runs);
  load_options opts;
  opts.range_override = port_range{1, 65535};
  std::vector<double> t_svc, t_slices, t_build, t_total, t_update;
  std::size_t services = 0, endpoints = 0;
  for (int r = 0; r < runs; ++r) {
    object_store store;
    std::string rv;
    auto t0 = clock_type::now();
    auto bad = store.replace(api_kind::service, svc_text, 64, &rv);
    t_svc.push_back(ms_since(t0));
    auto t1 = clock_type::now();
    bad = store.replace(api_kind::endpoint_slice, slice_text, 64, &rv);
    t_slices.push_back(ms_since(t1));
    auto t2 = clock_type::now();
    auto snap = store.build(opts, "bench");
    t_build.push_back(ms_since(t2));
    t_total.push_back(ms_since(t0));
    // One MODIFIED EndpointSlice (a NodePort Service's, one endpoint fewer, then back), decoded
    // and built: the incremental path, which assembles that one Service again.
    for (int u = 0; u < 20; ++u) {
      const int i = (r * 20 + u) % std::max(1, nodeports);
      const auto object = nlohmann::json::parse(slice_item(i, per, u % 2 == 0 ? 1 : 0));
      auto t3 = clock_type::now();
      store.upsert(api_kind::endpoint_slice, object);
      auto next = store.build(opts, "bench");
      t_update.push_back(ms_since(t3));
      if (store.last_build_whole() || store.last_build_assembled() != 1) {
        std::fprintf(stderr, "the update was not incremental\n");
        return 1;
      }
    }
    services = snap.services.size();
    endpoints = 0;
    for (const auto& s : snap.services)
      for (const auto& p : s.ports) endpoints += p.endpoints.size();
  }
  report("ServiceList: parse + decode", t_svc);
  report("EndpointSliceList: parse + decode", t_slices);
  report("snapshot build (assemble + validate)", t_build);
  report("total (both lists + build)", t_total);
  report("one EndpointSlice changed: upsert + build", t_update);
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  std::printf("  snapshot: %zu bound Services, %zu endpoints; peak RSS %ld MB (includes the %.0f MB of list text)\n",
              services, endpoints, ru.ru_maxrss / 1024, (svc_text.size() + slice_text.size()) / 1e6);
  return 0;
}
