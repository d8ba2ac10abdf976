// The --forward [tcp:|udp:]LISTEN=HOST:PORT[,HOST:PORT...] parser (config/forward.cpp). Checks:
// an accepted spec is an ad-hoc Service named forward-LISTEN[-udp] with one port (TCP+UDP: two,
// same number and endpoints), at least one endpoint and no duplicate; problems are printable;
// the Service validates as a snapshot of its own or is refused with a config_error.
#include <string>

#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto spec = npp::fuzz::as_text(data, size);
  npp::config::service svc;
  try {
    svc = npp::config::parse_forward(spec);
  } catch (const npp::config::config_error& e) {
    npp::fuzz::check_problems(e);
    return 0;
  }
  FUZZ_CHECK(svc.ad_hoc, "not ad hoc");
  FUZZ_CHECK(svc.ports.size() == 1 || svc.ports.size() == 2, "%zu ports", svc.ports.size());
  const auto& port = svc.ports[0];
  const std::string name = "forward-" + std::to_string(port.node_port);
  FUZZ_CHECK(svc.name == name || svc.name == name + "-udp", "name %s for port %d", svc.name.c_str(), port.node_port);
  FUZZ_CHECK(port.node_port >= 1 && port.node_port <= 65535, "listen port %d", port.node_port);
  FUZZ_CHECK(!port.endpoints.empty(), "no endpoints");
  std::set<npp::config::host_port> seen;
  for (const auto& ep : port.endpoints) {
    FUZZ_CHECK(ep.address.port != 0, "endpoint port 0");
    FUZZ_CHECK(seen.insert(ep.address).second, "duplicate endpoint %s", ep.address.str().c_str());
  }
  if (svc.ports.size() == 2)
    FUZZ_CHECK(svc.ports[1].node_port == port.node_port && svc.ports[1].endpoints == port.endpoints &&
                   svc.ports[0].proto != svc.ports[1].proto,
               "TCP and UDP ports differ");
  npp::config::snapshot snap;
  snap.services.push_back(svc);
  npp::fuzz::check_loader([&] {
    npp::config::validate_and_allocate(snap);
    return snap;
  });
  return 0;
}
