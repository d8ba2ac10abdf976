#pragma once
// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that tells an
// endpoint who the client really is. Pure functions: no sockets, byte-exact output.
//
// The session sends it as the first bytes on the upstream connection, before any client byte
// (tcp_session::on_connect), and only then starts relaying; the relay itself is unchanged. We
// only ever send headers: a header arriving from a client is never parsed and is relayed as
// payload like any other bytes (no auto-detection, so a client cannot forge its address).
//
//   v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6 for IPv6; addresses as inet_ntop
//       prints them), at most 107 bytes.
//   v2: the 12-byte signature \r\n\r\n\0\r\nQUIT\n, 0x21 (version 2, command PROXY), 0x11
//       (AF_INET, STREAM) or 0x21 (AF_INET6, STREAM), the address block length (12 or 36, big
//       endian), then source address, destination address, source port, destination port, all
//       in network byte order. No TLVs.
#include <string>

#include "config/ip.hpp"
#include "config/snapshot.hpp"

namespace npp::proxy {

/// The header announcing a TCP connection from `client` to `local` (the address and port the
/// client connected to: the accepted socket's local endpoint). IPv4-mapped addresses are written
/// as IPv4, so an IPv4 client of a dual-stack [::] socket is announced as TCP4 (the caller
/// passes both ends unmapped, as from_asio() gives them; they are unmapped again here to be
/// sure). Should one end still be IPv4 and the other IPv6, the IPv4 one is written IPv4-mapped
/// and the header is TCP6. Returns "" for proxy_protocol_version::off.
std::string proxy_protocol_header(config::proxy_protocol_version version, const config::host_port& client,
                                  const config::host_port& local);

}  // namespace npp::proxy
