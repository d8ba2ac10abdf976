#pragma once
// Kubernetes Service (core/v1) and EndpointSlice (discovery.k8s.io/v1) objects as input: single
// objects, List / ServiceList / EndpointSliceList exactly as `kubectl get svc,endpointslices -A
// -o json` (or the API) prints them, and YAML manifests (via yaml.hpp). Decoding is lenient where
// Kubernetes output is noisy (unknown fields such as managedFields and status are ignored) and
// strict where a value matters to the proxy (a port written "30080" is refused, as the API server
// refuses it). The rules, with their sources, are in ../shared/KUBERNETES.md §2-§3:
//
//  - Bound: ports of type NodePort and LoadBalancer Services that have (or get) a nodePort, plus
//    spec.healthCheckNodePort (LoadBalancer + externalTrafficPolicy Local).
//  - Skipped, each with a note "ns/name: skipped: why": ClusterIP, ExternalName, headless
//    (clusterIP: None or label service.kubernetes.io/headless), label
//    service.kubernetes.io/service-proxy-name (another proxy owns it), LoadBalancer with
//    allocateLoadBalancerNodePorts: false and no nodePort, SCTP ports.
//  - A NodePort Service port without nodePort (a manifest, not API output) gets one allocated as
//    in the native format, with a note. Likewise a missing healthCheckNodePort for LB + Local.
//  - EndpointSlices join their Service by namespace + label kubernetes.io/service-name (none:
//    note, ignored); ports match by name ("" for a single unnamed port) and protocol; the
//    endpoint's port is that slice's ports[].port, so two slices may give one port name
//    different numbers. Only addresses[0] is used (kube-proxy); addressType IPv4/IPv6 must match
//    the address family (else the endpoint is skipped with a note); FQDN slices are ignored;
//    missing conditions read ready=true, serving=true, terminating=false.
//  - The same address:port from several slices is one endpoint. If the copies' conditions
//    differ (an endpoint moving between slices), the most usable copy wins: ready over
//    serving-only over neither; on a tie the first in input order.
//  - Annotations nodeport-proxy.io/allow-source-ranges (comma-separated CIDRs), proxy-protocol
//    (v1|v2), max-connections and max-connections-per-source set the fields the native keys
//    allowSourceRanges, proxyProtocol, maxConnections and maxConnectionsPerSource set
//    (examples/README.md). Any other nodeport-proxy.io/ annotation is an error (a typo must not
//    leave a port open); other annotations are ignored. spec.loadBalancerSourceRanges is not
//    used: it is for load balancer traffic, and kube-proxy does not apply it to nodePorts.
//  - publishNotReadyAddresses: true marks every endpoint of the Service ready, as the
//    EndpointSlice controller does for slices it writes. For slices from a live cluster this
//    changes nothing (they already say ready); for hand-written slices and native "backends" it
//    makes not-ready and terminating endpoints usable, as they would be in a cluster.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "config/loader_internal.hpp"

namespace npp::config::detail {

/// True for a document that is a Kubernetes object or list (it has "kind" or "apiVersion");
/// everything else is read as the native format.
bool is_kubernetes_document(const nlohmann::json& doc);

/// Decodes one Kubernetes document into `out`: a Service, an EndpointSlice, or a List /
/// ServiceList / EndpointSliceList of them. `position` names the document in problems when the
/// input holds several ("documents[2]"), else "". Objects of other kinds inside a list or a
/// multi-document stream are skipped with a note; as the only object of an input
/// (`only_object`) they are an error, since the file is then not an endpoints file at all.
void decode_kubernetes(const nlohmann::json& doc, const std::string& position, bool only_object, decoded_input& out,
                       std::vector<problem>& problems);

/// decode_kubernetes() for one object that may lack "kind" because it is an item of a typed
/// list (the API server leaves kind out of ServiceList items): default_kind is assumed then.
void decode_kubernetes_item(const nlohmann::json& doc, std::string_view default_kind, decoded_input& out,
                            std::vector<problem>& problems);

}  // namespace npp::config::detail
