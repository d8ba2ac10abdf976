// /status and /status.json. The page is one static template: the server embeds the current
// report as JSON (escaped for a <script> element) and the inline script renders every table with
// DOM calls (textContent, never innerHTML), so text from the report cannot become markup.
#include "proxy/status_page.hpp"

#include <ctime>
#include <nlohmann/json.hpp>

namespace npp::proxy {

namespace {

using json = nlohmann::json;

std::string port_state(const port_status& p) {
  if (!p.bind_error.empty()) return "bind_error";
  if (p.listening) return "listening";
  for (const auto& ep : p.endpoints)
    if (ep.in_use) return "not_listening";
  return "no_endpoints";
}

std::string endpoint_state(const endpoint_status& ep) {
  if (ep.ready) return "ready";
  if (ep.terminating) return ep.serving ? "serving" : "terminating";
  return "not_ready";
}

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

json report_json(const status_report& r) {
  const auto now = std::chrono::system_clock::now();
  json j;
  j["version"] = r.version;
  j["now"] = format_rfc3339(now);
  j["now_unix"] = unix_seconds(now);
  j["started"] = format_rfc3339(r.started);
  j["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(now - r.started).count();
  j["ready"] = r.ready;
  j["draining"] = r.draining;
  j["workers"] = r.workers;
  j["max_connections"] = r.max_connections;
  j["allow_source_ranges"] = r.allow_source_ranges;
  j["connections_active"] = r.connections_active;
  j["bind_addresses"] = r.bind_addresses;
  const bool applied = r.last_applied.time_since_epoch().count() != 0;
  j["config"] = {
      {"source", r.source},
      {"generation", r.generation},
      {"last_applied", applied ? json(format_rfc3339(r.last_applied)) : json(nullptr)},
      {"last_applied_unix", applied ? unix_seconds(r.last_applied) : 0.0},
      {"reloads_total", r.reloads_total},
      {"reload_failures_total", r.reload_failures_total},
      {"last_reload_ok", r.last_reload_ok},
      {"last_reload_error", r.last_reload_error},
  };
  json help = json::object();
#define NPP_HELP_ROW(name, text) help[#name] = text;
  NPP_PORT_COUNTERS(NPP_HELP_ROW)
#undef NPP_HELP_ROW
  help["connections_active"] = "client connections open right now";
  j["counter_help"] = std::move(help);
  json ports = json::array();
  for (const auto& p : r.ports) {
    json c = json::object();
#define NPP_VALUE_ROW(name, text) c[#name] = p.counters.name;
    NPP_PORT_COUNTERS(NPP_VALUE_ROW)
#undef NPP_VALUE_ROW
    c["connections_active"] = p.counters.connections_active;
    json tls = nullptr;
    if (p.tls) {
      json certs = json::array();
      for (const auto& cert : p.tls_certificates) {
        const auto expiry = std::chrono::duration_cast<std::chrono::seconds>(cert.not_after.time_since_epoch()).count();
        // ocsp: null without ocspResponseFile; "loaded" false when the response was refused at load
        // (the log says why); next_update_unix 0 when it has no nextUpdate.
        json ocsp = nullptr;
        if (!cert.ocsp_file.empty())
          ocsp = {{"file", cert.ocsp_file},
                  {"loaded", cert.ocsp_stapled},
                  {"next_update_unix", static_cast<std::int64_t>(cert.ocsp_next_update)}};
        certs.push_back({{"file", cert.file},
                         {"subject", cert.subject},
                         {"names", cert.names},
                         {"key_type", cert.key_type},
                         {"serial", cert.serial},
                         {"not_after_unix", expiry},
                         {"ocsp", std::move(ocsp)}});
      }
      tls = {{"client_auth", p.tls_client_auth}, {"crl", p.tls_crl}, {"certificates", std::move(certs)}};
    }
    json eps = json::array();
    int ready = 0;
    for (const auto& ep : p.endpoints) {
      ready += ep.ready;
      eps.push_back({{"address", ep.address},
                     {"state", endpoint_state(ep)},
                     {"ready", ep.ready},
                     {"serving", ep.serving},
                     {"terminating", ep.terminating},
                     {"in_use", ep.in_use},
                     {"failing", ep.failing},
                     {"connect_failures", ep.connect_failures},
                     {"node_name", ep.node_name}});
    }
    ports.push_back({{"service", p.service},
                     {"port_name", p.port_name},
                     {"protocol", std::string(config::to_string(p.proto))},
                     {"port", p.port},
                     {"node_port", p.node_port},
                     {"node_port_allocated", p.node_port_allocated},
                     {"listening", p.listening},
                     {"bind_error", p.bind_error},
                     {"state", port_state(p)},
                     {"endpoints_ready", ready},
                     {"endpoints_total", p.endpoints.size()},
                     {"allow_source_ranges", p.allow_source_ranges},
                     {"proxy_protocol", p.proxy_protocol},
                     {"max_connections", p.max_connections},
                     {"max_connections_per_source", p.max_connections_per_source},
                     {"service_connections_active", p.service_connections_active},
                     {"tls", std::move(tls)},
                     {"upstream_tls", p.upstream_tls},
                     {"counters", std::move(c)},
                     {"endpoints", std::move(eps)}});
  }
  j["ports"] = std::move(ports);
  return j;
}

/// Invalid UTF-8 in names becomes U+FFFD instead of an exception.
std::string dump(const json& j, int indent = -1) { return j.dump(indent, ' ', false, json::error_handler_t::replace); }

/// JSON that is safe inside <script>: no "</script>", "<!--" or "]]>" can form (as Go's
/// html/template escapes JSON: < > & as \u escapes, which JSON.parse reads back unchanged).
std::string script_safe(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    if (ch == '<') out += "\\u003c";
    else if (ch == '>') out += "\\u003e";
    else if (ch == '&') out += "\\u0026";
    else out += ch;
  }
  return out;
}

// The page. @@VERSION@@ and @@DATA@@ are replaced once each.
constexpr std::string_view page_template = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nodeport-proxy status</title>
<style>
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --line: #8884; --head: #8882; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 1em 2em; }
h1 { font-size: 1.3em; margin: .6em 0 .2em; }
h2 { font-size: 1.05em; margin: 1.2em 0 .3em; }
#banner { display: none; padding: .6em 1em; margin: .5em 0; border: 2px solid var(--bad); color: var(--bad); font-weight: bold; }
body[data-connection="lost"] #banner { display: block; }
dl.summary { display: grid; grid-template-columns: max-content auto max-content auto; gap: .1em 1em; margin: .3em 0; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .3em 0; }
th, td { border: 1px solid var(--line); padding: .15em .45em; text-align: left; vertical-align: top; }
thead th { background: var(--head); position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.port > * { border-top: 2px solid var(--line); }
tr.detail > td { padding: .2em .2em .6em 2em; }
table.eps { width: auto; min-width: 50%; }
.state { font-weight: 600; white-space: nowrap; }
.s-ok { color: var(--ok); } .s-bad { color: var(--bad); } .s-warn { color: var(--warn); }
.muted { opacity: .75; }
details summary { cursor: pointer; }
code { font-size: .95em; }
</style>
</head>
<body data-connection="ok" data-rendered="none" data-refreshes="0">
<header>
<h1>nodeport-proxy status <span class="muted">@@VERSION@@</span></h1>
<div id="banner" role="alert">Connection to proxy lost: <span id="banner-error"></span>. Showing the last data received (<span id="banner-since"></span>); retrying every 2 s.</div>
<noscript><p><strong>This page needs JavaScript to render.</strong> The same data is at <a href="status.json">status.json</a>; metrics are at <a href="metrics">metrics</a>.</p></noscript>
</header>
<main>
<section aria-labelledby="proc-h"><h2 id="proc-h">Proxy</h2><dl class="summary" id="summary"></dl></section>
<section aria-labelledby="ports-h"><h2 id="ports-h">Services and nodePorts</h2>
<table id="ports">
<caption class="muted" id="ports-caption"></caption>
<thead><tr>
<th scope="col">Service</th><th scope="col">Port</th><th scope="col">Protocol</th><th scope="col" class="num">NodePort</th>
<th scope="col">Status</th><th scope="col">Access</th><th scope="col" class="num">Endpoints ready / total</th><th scope="col" class="num">Active</th>
<th scope="col" class="num">Accepted</th><th scope="col" class="num">Bytes client&#8594;upstream</th>
<th scope="col" class="num">Bytes upstream&#8594;client</th><th scope="col" class="num">Errors</th>
</tr></thead>
</table>
</section>
</main>
<footer class="muted"><p>Updated <span id="updated"></span>. Data: <a href="status.json">status.json</a> &middot; <a href="metrics">metrics</a></p></footer>
<script id="initial-data" type="application/json">@@DATA@@</script>
<script>
"use strict";
(function () {
  var REFRESH_MS = 2000;
  // The "Errors" column: client connections the proxy could not serve, plus dropped UDP
  // datagrams (every counter still shows under "all counters").
  var ERROR_COUNTERS = ["connections_rejected_limit", "connections_rejected_allowlist",
    "connections_rejected_service_limit", "connections_rejected_source_limit", "connections_rejected_no_endpoints",
    "connections_connect_failed"];
  function isError(k) { return ERROR_COUNTERS.indexOf(k) >= 0 || k.indexOf("udp_dropped_") === 0; }
  var PORT_STATE = { listening: ["listening", "s-ok"], no_endpoints: ["no endpoints (not accepting)", "s-warn"],
    bind_error: ["bind failed", "s-bad"], not_listening: ["not listening", "s-bad"] };
  var EP_STATE = { ready: ["ready", "s-ok"], serving: ["terminating, still serving", "s-warn"],
    terminating: ["terminating", "s-warn"], not_ready: ["not ready", "s-bad"] };
  var lastOk = null, refreshes = 0;

  // el("td", {class: "num"}, "text", node, ...): every string becomes a text node.
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === undefined || c === null) continue;
      e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function bytes(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], v = Number(n), i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return i === 0 ? String(n) + " B" : v.toFixed(1) + " " + u[i];
  }
  function ago(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 120) return seconds + " s ago";
    if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }
  function stateSpan(table, key) {
    var s = table[key] || [key, ""];
    return el("span", { "class": "state " + s[1], "data-state": key }, s[0]);
  }
  function pair(dl, term, value) { dl.appendChild(el("dt", null, term)); dl.appendChild(el("dd", null, value)); }

  function renderSummary(d) {
    var dl = document.getElementById("summary");
    dl.textContent = "";
    var state = d.draining ? ["DRAINING", "s-warn"] : d.ready ? ["READY", "s-ok"] : ["NOT READY", "s-bad"];
    pair(dl, "State", el("span", { "class": "state " + state[1], id: "proxy-state" }, state[0]));
    pair(dl, "Uptime", "since " + d.started + " (" + ago(d.uptime_seconds) + ")");
    pair(dl, "Connections", d.connections_active + " active of max " + d.max_connections);
    pair(dl, "Source allowlist", d.allow_source_ranges.length ? d.allow_source_ranges.join(", ") + " (--allow-source-ranges)"
      : "all sources (no --allow-source-ranges)");
    pair(dl, "Workers", String(d.workers));
    var c = d.config;
    pair(dl, "Configuration", "generation " + c.generation + " from " + (c.source || "(none)"));
    pair(dl, "Last applied", c.last_applied ? c.last_applied + " (" + ago(d.now_unix - c.last_applied_unix) + ")" : "never");
    var reload = c.last_reload_ok ? el("span", { "class": "state s-ok", id: "reload-state" }, "last reload ok")
      : el("span", { "class": "state s-bad", id: "reload-state" }, "last reload FAILED: " + c.last_reload_error);
    pair(dl, "Reloads", el("span", null, reload, " (" + c.reloads_total + " attempts, " + c.reload_failures_total + " failed)"));
    pair(dl, "Bind addresses", d.bind_addresses.length ? d.bind_addresses.join(", ") : "(all local addresses)");
  }

  // The "Access" column: allowSourceRanges, proxyProtocol and the Service's connection limits.
  function accessOf(p) {
    var parts = [];
    parts.push(p.allow_source_ranges.length ? "allow " + p.allow_source_ranges.join(", ") : "all sources");
    if (p.proxy_protocol !== "off") parts.push("PROXY " + p.proxy_protocol);
    if (p.max_connections) parts.push(p.service_connections_active + " of max " + p.max_connections + " connections (service)");
    if (p.max_connections_per_source) parts.push("max " + p.max_connections_per_source + " per source");
    if (p.tls) {
      var certs = p.tls.certificates.map(function (c) {
        return c.subject + " (" + c.key_type + ", expires " + new Date(c.not_after_unix * 1000).toISOString().slice(0, 10) +
          (c.not_after_unix < d.now_unix ? ", EXPIRED" : "") +
          (!c.ocsp ? "" : !c.ocsp.loaded ? ", OCSP response refused" :
           c.ocsp.next_update_unix && c.ocsp.next_update_unix <= d.now_unix ? ", OCSP response stale" : ", OCSP stapled") + ")";
      });
      parts.push("TLS " + certs.join(", ") + (p.tls.client_auth ? "; mTLS on" + (p.tls.crl ? " (CRL)" : "") : "; mTLS off"));
    }
    if (p.upstream_tls) parts.push("TLS to endpoints, " + p.upstream_tls);
    return parts.join("; ");
  }

  function errorsOf(c) { var n = 0; Object.keys(c).forEach(function (k) { if (isError(k)) n += Number(c[k] || 0); }); return n; }

  function endpointTable(p) {
    if (!p.endpoints.length)
      return el("p", { "class": "state s-warn" }, "No endpoints: connections to this nodePort are refused.");
    var t = el("table", { "class": "eps" },
      el("caption", { "class": "muted" }, "Endpoints of " + p.service + " port " + (p.port_name || p.port)),
      el("thead", null, el("tr", null, el("th", { scope: "col" }, "Endpoint"), el("th", { scope: "col" }, "State"),
        el("th", { scope: "col" }, "Conditions"), el("th", { scope: "col" }, "In use"),
        el("th", { scope: "col" }, "Connect"), el("th", { scope: "col", "class": "num" }, "Connect failures"),
        el("th", { scope: "col" }, "Node"))));
    var tb = el("tbody");
    p.endpoints.forEach(function (e) {
      var conds = ["ready=" + e.ready, "serving=" + e.serving, "terminating=" + e.terminating].join(" ");
      tb.appendChild(el("tr", { "data-endpoint": e.address },
        el("th", { scope: "row" }, el("code", null, e.address)),
        el("td", null, stateSpan(EP_STATE, e.state)),
        el("td", { "class": "muted" }, conds),
        el("td", null, e.in_use ? "in use" : "not used"),
        el("td", null, e.failing ? el("span", { "class": "state s-bad", "data-state": "failing" }, "failing")
          : el("span", { "class": "muted" }, "ok")),
        el("td", { "class": "num" }, String(e.connect_failures)),
        el("td", null, e.node_name || "")));
    });
    t.appendChild(tb);
    return t;
  }

  function counterList(p, help) {
    var dl = el("dl", { "class": "summary" });
    Object.keys(p.counters).forEach(function (k) {
      dl.appendChild(el("dt", { title: help[k] || "" }, k));
      dl.appendChild(el("dd", { "class": "num" }, String(p.counters[k])));
    });
    return el("details", null, el("summary", null, "all counters"), dl);
  }

  function renderPorts(d) {
    var table = document.getElementById("ports");
    Array.prototype.slice.call(table.tBodies).forEach(function (b) { table.removeChild(b); });
    document.getElementById("ports-caption").textContent = d.ports.length + " service port(s)";
    if (!d.ports.length) {
      table.appendChild(el("tbody", null, el("tr", null, el("td", { colspan: "12" }, "No services configured."))));
      return;
    }
    d.ports.forEach(function (p) {
      var c = p.counters;
      var status = el("td", null, stateSpan(PORT_STATE, p.state));
      if (p.bind_error) status.appendChild(el("div", { "class": "s-bad" }, p.bind_error));
      var tb = el("tbody", { "data-service": p.service, "data-node-port": String(p.node_port) });
      tb.appendChild(el("tr", { "class": "port" },
        el("th", { scope: "row" }, p.service),
        el("td", null, p.port_name || "(unnamed)", " ", el("span", { "class": "muted" }, String(p.port))),
        el("td", null, p.protocol),
        el("td", { "class": "num" }, String(p.node_port), p.node_port_allocated ? " (allocated)" : ""),
        status,
        el("td", null, accessOf(p)),
        el("td", { "class": "num" }, p.endpoints_ready + " / " + p.endpoints_total),
        el("td", { "class": "num" }, String(c.connections_active)),
        el("td", { "class": "num" }, String(c.connections_accepted)),
        el("td", { "class": "num", title: c.bytes_client_to_upstream + " bytes" }, bytes(c.bytes_client_to_upstream)),
        el("td", { "class": "num", title: c.bytes_upstream_to_client + " bytes" }, bytes(c.bytes_upstream_to_client)),
        el("td", { "class": "num", title: Object.keys(c).filter(isError).join(" + ") }, String(errorsOf(c)))));
      tb.appendChild(el("tr", { "class": "detail" }, el("td", { colspan: "12" }, endpointTable(p), counterList(p, d.counter_help))));
      table.appendChild(tb);
    });
  }

  function render(d) {
    renderSummary(d);
    renderPorts(d);
    refreshes++;
    document.body.setAttribute("data-rendered", "js");
    document.body.setAttribute("data-refreshes", String(refreshes));
    lastOk = new Date();
    document.getElementById("updated").textContent = d.now + " (every " + REFRESH_MS / 1000 + " s)";
  }

  function lost(why) {
    document.body.setAttribute("data-connection", "lost");
    document.getElementById("banner-error").textContent = why;
    document.getElementById("banner-since").textContent = lastOk ? "from " + lastOk.toLocaleTimeString() : "none yet";
  }

  function refresh() {
    fetch("status.json", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (d) {
      document.body.setAttribute("data-connection", "ok");
      render(d);
    }).catch(function (e) {
      lost(e && e.message ? e.message : String(e));
    }).then(function () { setTimeout(refresh, REFRESH_MS); });
  }

  try { render(JSON.parse(document.getElementById("initial-data").textContent)); } catch (e) { lost("bad initial data: " + e); }
  setTimeout(refresh, 0);
})();
</script>
</body>
</html>
)html";

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string render_status_json(const status_report& report) { return dump(report_json(report), 1) + "\n"; }

std::string render_status_html(const status_report& report) {
  // Split the template at its two markers instead of search-and-replace, so text inside the
  // report can never be taken for a marker.
  constexpr std::string_view version_marker = "@@VERSION@@", data_marker = "@@DATA@@";
  const auto v = page_template.find(version_marker);
  const auto d = page_template.find(data_marker);
  std::string page;
  page += page_template.substr(0, v);
  page += html_escape(report.version);
  page += page_template.substr(v + version_marker.size(), d - v - version_marker.size());
  page += script_safe(dump(report_json(report)));
  page += page_template.substr(d + data_marker.size());
  return page;
}

}  // namespace npp::proxy
