// --forward LISTEN=HOST:PORT[,HOST:PORT...]: an ad-hoc service for running without a file.
#include <algorithm>
#include <cctype>
#include <set>

#include "config/loader_internal.hpp"

namespace npp::config {
namespace {

constexpr std::string_view forward_source = "--forward";
constexpr std::string_view forward_form = "expected [tcp:|udp:]LISTEN=HOST:PORT[,HOST:PORT...], e.g. 30080=127.0.0.1:8080";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

// "tcp"/"TCP" -> tcp; anything else nullopt.
std::optional<protocol> parse_protocol(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "tcp") return protocol::tcp;
  if (lower == "udp") return protocol::udp;
  return std::nullopt;
}

}  // namespace

service parse_forward(std::string_view spec) {
  std::vector<problem> problems;
  auto add = [&](std::string message) { problems.push_back({std::string(forward_source), std::move(message)}); };
  auto fail = [&]() { throw config_error(std::string(forward_source), std::move(problems)); };

  const auto equals = spec.find('=');
  if (equals == std::string_view::npos) {
    add("Invalid value: " + quote(spec) + ": " + std::string(forward_form));
    fail();
  }
  std::string_view listen = trim(spec.substr(0, equals));
  const std::string_view targets = spec.substr(equals + 1);

  // No prefix: TCP and UDP on the same number (one Service, two ports), like a NodePort Service
  // that lists both protocols; "tcp:"/"udp:" restricts it to one.
  protocol proto = protocol::tcp;
  bool both = true;
  if (const auto colon = listen.find(':'); colon != std::string_view::npos) {
    both = false;
    if (auto p = parse_protocol(listen.substr(0, colon))) {
      proto = *p;
    } else {
      add("Unsupported value: " + quote(listen.substr(0, colon)) + ": supported values: \"tcp\", \"udp\"");
    }
    listen = listen.substr(colon + 1);
  }
  int listen_port = 0;
  const bool digits = !listen.empty() && listen.size() <= 5 &&
                      std::all_of(listen.begin(), listen.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) listen_port = std::stoi(std::string(listen));
  if (listen.empty()) {
    add("Invalid value: " + quote(spec) + ": missing listen port; " + std::string(forward_form));
  } else if (!digits || listen_port < 1 || listen_port > 65535) {
    add("Invalid value: " + quote(listen) + ": the listen port must be between 1 and 65535, inclusive");
  }

  service svc;
  svc.ns = "default";
  svc.name = "forward-" + std::to_string(listen_port) + (proto == protocol::udp ? "-udp" : "");
  svc.ad_hoc = true;
  service_port port;
  port.proto = proto;
  port.port = listen_port;
  port.node_port = listen_port;

  // Same rules as file endpoints: bad or bogus addresses rejected, duplicates merged.
  std::set<host_port> seen;
  if (trim(targets).empty()) {
    add("Invalid value: " + quote(spec) + ": no endpoints; " + std::string(forward_form));
  } else {
    std::size_t start = 0;
    while (start <= targets.size()) {
      const auto comma = std::min(targets.find(',', start), targets.size());
      const std::string_view item = trim(targets.substr(start, comma - start));
      start = comma + 1;
      if (item.empty()) {
        add("Invalid value: " + quote(spec) + ": empty endpoint in the list");
        continue;
      }
      std::string why;
      auto address = detail::parse_endpoint_address(item, &why);
      if (!address) {
        add("Invalid value: " + quote(item) + ": " + why);
        continue;
      }
      if (!seen.insert(*address).second) continue;
      endpoint ep;
      ep.address = *address;
      port.endpoints.push_back(std::move(ep));
    }
  }

  if (!problems.empty()) fail();
  if (both) {
    // Port names are required and unique once a Service has two ports.
    port.name = "tcp";
    service_port udp_port = port;
    udp_port.name = "udp";
    udp_port.proto = protocol::udp;
    svc.ports.push_back(std::move(port));
    svc.ports.push_back(std::move(udp_port));
  } else {
    svc.ports.push_back(std::move(port));
  }
  return svc;
}

}  // namespace npp::config
