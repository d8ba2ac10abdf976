#pragma once
// /status (an HTML page in the spirit of HAProxy's stats page) and /status.json, rendered from
// a status_report. The page is self-contained (inline CSS and JS, no external assets) and
// re-renders itself from /status.json every 2 s without reloading.
//
// /status.json fields (stable; new NPP_PORT_COUNTERS entries appear in "counters" and
// "counter_help" automatically):
//   version, now (RFC 3339 UTC), now_unix, started, uptime_seconds, ready, draining, workers,
//   max_connections, connections_active, bind_addresses[],
//   config: { source, generation, last_applied (RFC 3339 or null), last_applied_unix (0 if none),
//             reloads_total, reload_failures_total, last_reload_ok, last_reload_error },
//   counter_help: { <counter>: <help text> },
//   ports[]: { service ("namespace/name"), port_name, protocol ("TCP"/"UDP"), port, node_port,
//              node_port_allocated, listening, bind_error, state ("listening" | "no_endpoints" |
//              "bind_error" | "not_listening"), endpoints_ready, endpoints_total,
//              counters: { <every NPP_PORT_COUNTERS name>, connections_active },
//              endpoints[]: { address, state ("ready" | "serving" | "terminating" | "not_ready"),
//                             ready, serving, terminating, in_use, failing, connect_failures,
//                             node_name } }
#include <chrono>
#include <string>
#include <string_view>

#include "proxy/status.hpp"

namespace npp::proxy {

/// The /status.json document.
std::string render_status_json(const status_report& report);

/// The /status page. `report` is embedded as the first data (so the page shows content at once);
/// the script then fetches /status.json every 2 s.
std::string render_status_html(const status_report& report);

/// Text made safe for HTML element content and quoted attribute values (& < > " ').
std::string html_escape(std::string_view text);

/// "2024-05-01T12:00:00Z" (UTC, whole seconds).
std::string format_rfc3339(std::chrono::system_clock::time_point t);

}  // namespace npp::proxy
