#include "test_support.hpp"

using namespace npp::config;
using npp::config::test::problems_of;
using strings = std::vector<std::string>;

TEST_CASE("a --forward spec without a prefix becomes one ad-hoc service with TCP and UDP ports") {
  auto svc = parse_forward("30080=127.0.0.1:8081,127.0.0.1:8082");
  CHECK(svc.ns == "default");
  CHECK(svc.name == "forward-30080");
  CHECK(svc.ad_hoc);
  REQUIRE(svc.ports.size() == 2);
  const auto& port = svc.ports[0];
  CHECK(port.name == "tcp");
  CHECK(port.proto == protocol::tcp);
  CHECK(port.port == 30080);
  CHECK(port.node_port == 30080);
  CHECK_FALSE(port.node_port_allocated);
  REQUIRE(port.endpoints.size() == 2);
  CHECK(port.endpoints[0].address.str() == "127.0.0.1:8081");
  CHECK(port.endpoints[1].address.str() == "127.0.0.1:8082");
  CHECK(port.endpoints[0].ready);
  const auto& udp = svc.ports[1];
  CHECK(udp.name == "udp");
  CHECK(udp.proto == protocol::udp);
  CHECK(udp.node_port == 30080);
  CHECK(udp.endpoints == port.endpoints);
  snapshot snap;
  snap.services.push_back(svc);
  CHECK_NOTHROW(validate_and_allocate(snap));  // TCP+UDP of one Service may share a number
}

TEST_CASE("tcp: and udp: prefixes choose the protocol and udp services get a -udp suffix") {
  auto tcp = parse_forward("tcp:8080=[::1]:80");
  CHECK(tcp.name == "forward-8080");
  CHECK(tcp.ports[0].proto == protocol::tcp);
  CHECK(tcp.ports[0].endpoints[0].address.str() == "[::1]:80");
  auto udp = parse_forward("udp:5353=10.0.0.1:53");
  CHECK(udp.name == "forward-5353-udp");
  CHECK(udp.ports[0].proto == protocol::udp);
  CHECK(parse_forward("UDP:5353=10.0.0.1:53").ports[0].proto == protocol::udp);
}

TEST_CASE("spaces around items are ignored and duplicate endpoints merged") {
  auto svc = parse_forward(" 443 = 10.0.0.1:8443 , 10.0.0.2:8443,10.0.0.1:8443");
  CHECK(svc.ports[0].node_port == 443);
  REQUIRE(svc.ports[0].endpoints.size() == 2);
}

TEST_CASE("bad --forward specs throw with every problem under --forward") {
  auto problems = [](std::string_view spec) { return problems_of([&] { parse_forward(spec); }); };
  CHECK(problems("30080") == strings{"--forward: Invalid value: \"30080\": expected [tcp:|udp:]LISTEN=HOST:PORT[,HOST:PORT...], "
                                     "e.g. 30080=127.0.0.1:8080"});
  CHECK(problems("=127.0.0.1:80") ==
        strings{"--forward: Invalid value: \"=127.0.0.1:80\": missing listen port; expected [tcp:|udp:]LISTEN=HOST:PORT[,HOST:PORT...], "
                "e.g. 30080=127.0.0.1:8080"});
  CHECK(problems("0=127.0.0.1:80") ==
        strings{"--forward: Invalid value: \"0\": the listen port must be between 1 and 65535, inclusive"});
  CHECK(problems("65536=127.0.0.1:80") ==
        strings{"--forward: Invalid value: \"65536\": the listen port must be between 1 and 65535, inclusive"});
  CHECK(problems("http=127.0.0.1:80") ==
        strings{"--forward: Invalid value: \"http\": the listen port must be between 1 and 65535, inclusive"});
  CHECK(problems("sctp:80=127.0.0.1:80") ==
        strings{"--forward: Unsupported value: \"sctp\": supported values: \"tcp\", \"udp\""});
  CHECK(problems("8080=") == strings{"--forward: Invalid value: \"8080=\": no endpoints; expected "
                                     "[tcp:|udp:]LISTEN=HOST:PORT[,HOST:PORT...], e.g. 30080=127.0.0.1:8080"});
  CHECK(problems("8080=127.0.0.1:80,") == strings{"--forward: Invalid value: \"8080=127.0.0.1:80,\": empty endpoint in the list"});
  CHECK(problems("8080=localhost:80,0.0.0.0:80,::1:80") ==
        strings{"--forward: Invalid value: \"localhost:80\": host names are not supported, use an IP address",
                "--forward: Invalid value: \"0.0.0.0:80\": may not be unspecified (0.0.0.0)",
                "--forward: Invalid value: \"::1:80\": an IPv6 address must be in brackets, e.g. \"[fd00::5]:8080\""});
  CHECK(problems("x:99999=\xff") == strings{"--forward: Unsupported value: \"x\": supported values: \"tcp\", \"udp\"",
                                            "--forward: Invalid value: \"99999\": the listen port must be between 1 and 65535, inclusive",
                                            "--forward: Invalid value: \"\\xff\": missing port: must be IP:port, e.g. "
                                            "\"10.0.0.5:8080\" or \"[fd00::5]:8080\""});
  CHECK_THROWS_WITH_AS(parse_forward("1=2"), doctest::Contains("--forward: 1 problem"), config_error);
}
