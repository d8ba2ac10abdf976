#pragma once
// /metrics: the Prometheus text exposition format 0.0.4, rendered from a status_report.
// Plain string building, no Asio; the admin server calls it on the control thread.
#include <string>
#include <string_view>

#include "proxy/status.hpp"

namespace npp::proxy {

/// Content-Type of render_metrics()'s output.
inline constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// Every nodeport_proxy_* metric for `report`, then the process_* metrics of this process.
std::string render_metrics(const status_report& report);

/// Only the nodeport_proxy_* metrics (no /proc reads): what render_metrics() prints first.
std::string render_proxy_metrics(const status_report& report);

/// process_* metrics read from /proc/self (as the Go and Python clients name them).
std::string render_process_metrics();

/// The metric family a NPP_PORT_COUNTERS entry is exported as, with its extra label:
/// "connections_rejected_limit" -> `nodeport_proxy_connections_rejected_total{reason="limit"}`;
/// a counter without a mapping -> `nodeport_proxy_<name>_total`.
std::string counter_metric_name(std::string_view counter);

/// A label value escaped per the format: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);

}  // namespace npp::proxy
