#include "config/kube_store.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "config/kubernetes_objects.hpp"
#include "config/watch_events.hpp"

namespace npp::config {

std::string_view to_string(api_kind k) { return k == api_kind::service ? "Service" : "EndpointSlice"; }

std::string object_store::key_of(const nlohmann::json& object) {
  std::string ns = "default", name;
  if (auto meta = object.find("metadata"); meta != object.end() && meta->is_object()) {
    if (auto n = meta->find("namespace"); n != meta->end() && n->is_string() && !n->get_ref<const std::string&>().empty())
      ns = n->get<std::string>();
    if (auto n = meta->find("name"); n != meta->end() && n->is_string()) name = n->get<std::string>();
  }
  return ns + "/" + name;
}

std::vector<std::string> object_store::decode(api_kind k, const nlohmann::json& object, entry& out) {
  std::vector<problem> problems;
  // Items of a ServiceList / EndpointSliceList carry no kind (the API leaves it out); decode them
  // as what the list said they are.
  detail::decode_kubernetes_item(object, k == api_kind::service ? "Service" : "EndpointSlice", out.decoded, problems);
  std::vector<std::string> lines;
  for (const auto& p : problems) lines.push_back(p.str());
  out.rejected = !problems.empty();
  return lines;
}

std::vector<std::string> object_store::replace(api_kind k, const nlohmann::json& items) {
  std::vector<std::string> out;
  auto& objects = objects_[index(k)];
  objects.clear();
  invalidate();
  if (!items.is_array()) return out;
  for (const auto& item : items) {
    entry e;
    auto problems = decode(k, item, e);
    out.insert(out.end(), problems.begin(), problems.end());
    objects.insert_or_assign(key_of(item), std::move(e));
  }
  return out;
}

void object_store::commit(pending_list&& list) {
  objects_[index(list.kind_)] = std::move(list.objects_);
  invalidate();  // a re-list may change anything
}

bool object_store::uses_files(const entry& e) {
  return !e.rejected && std::any_of(e.decoded.services.begin(), e.decoded.services.end(),
                     [](const service& svc) { return svc.tls.enabled() || svc.upstream_tls.enabled; });
}

void object_store::invalidate() {
  stale_ = true;
  dirty_.clear();
  file_ids_.clear();
  assembled_.clear();
  slices_of_.clear();
}

std::vector<std::string> object_store::owners_of_slice(const std::string& key, const entry& e) {
  std::vector<std::string> ids;
  if (!e.rejected)
    for (const auto& slice : e.decoded.slices) ids.push_back(slice.ns + "/" + slice.service);
  // '\x01' cannot appear in a namespace or a name, so this never equals a Service id.
  if (ids.empty()) ids.push_back("\x01" + key);
  return ids;
}

void object_store::slice_changed(const std::string& key, const entry* before, const entry* after) {
  if (stale_) return;  // the next build() starts from scratch anyway
  if (before)
    for (auto& id : owners_of_slice(key, *before)) {
      if (auto it = slices_of_.find(id); it != slices_of_.end()) {
        it->second.erase(key);
        if (it->second.empty()) slices_of_.erase(it);
      }
      dirty_.insert(std::move(id));
    }
  if (after)
    for (auto& id : owners_of_slice(key, *after)) {
      slices_of_[id].insert(key);
      dirty_.insert(std::move(id));
    }
}

std::vector<std::string> object_store::pending_list::add(const nlohmann::json& item) {
  entry e;
  auto problems = decode(kind_, item, e);
  objects_.insert_or_assign(key_of(item), std::move(e));
  return problems;
}

std::vector<std::string> object_store::replace(api_kind k, std::string_view list_text, int max_depth,
                                               std::string* resource_version) {
  std::vector<std::string> out;
  pending_list pending(k);
  std::string error;
  const std::function<void(nlohmann::json&&)> add = [&](nlohmann::json&& item) {
    auto problems = pending.add(item);
    out.insert(out.end(), problems.begin(), problems.end());
  };
  if (!read_list(list_text, max_depth, add, resource_version, &error)) throw std::runtime_error(error);
  commit(std::move(pending));
  return out;
}

std::vector<std::string> object_store::upsert(api_kind k, const nlohmann::json& object) {
  entry e;
  auto problems = decode(k, object, e);
  auto key = key_of(object);
  auto& objects = objects_[index(k)];
  auto old = objects.find(key);
  if (k == api_kind::endpoint_slice) slice_changed(key, old == objects.end() ? nullptr : &old->second, &e);
  else if (!stale_) dirty_.insert(key);
  objects.insert_or_assign(std::move(key), std::move(e));
  return problems;
}

void object_store::erase(api_kind k, const nlohmann::json& object) {
  auto key = key_of(object);
  auto& objects = objects_[index(k)];
  auto old = objects.find(key);
  if (old == objects.end()) return;
  if (k == api_kind::endpoint_slice) slice_changed(key, &old->second, nullptr);
  else if (!stale_) dirty_.insert(key);
  objects.erase(old);
}

object_store::assembled object_store::assemble_one(const std::string& id, const load_options& opts) const {
  assembled out;
  std::vector<detail::decoded_input> inputs;
  if (auto it = objects_[0].find(id); it != objects_[0].end() && !it->second.rejected) inputs.push_back(it->second.decoded);
  if (auto it = slices_of_.find(id); it != slices_of_.end())
    for (const auto& key : it->second)
      if (auto e = objects_[1].find(key); e != objects_[1].end() && !e->second.rejected) inputs.push_back(e->second.decoded);
  if (inputs.empty()) return out;
  std::vector<problem> problems;
  snapshot one = detail::assemble(std::move(inputs), opts, problems);
  out.notes = std::move(one.notes);
  if (!problems.empty()) {
    out.whole_build_needed = true;
    return out;
  }
  if (one.services.empty()) return out;
  const service& svc = one.services.front();
  out.whole_build_needed = one.services.size() != 1 || svc.health_check_node_port_allocated ||
                           std::any_of(svc.ports.begin(), svc.ports.end(), [](const service_port& p) { return p.node_port_allocated; });
  for (const auto& port : svc.ports)
    for (const auto& ep : port.endpoints)
      if (ep.address.ip.unmapped().is_loopback()) out.loopback_targets.emplace_back(port.proto, ep.address.port);
  out.svc = one.services.shared(0);
  return out;
}

snapshot object_store::build(const load_options& opts, const std::string& source) {
  last_whole_ = false;
  if (opts.range_override != range_override_) invalidate();
  range_override_ = opts.range_override;
  if (stale_) {
    for (const auto& [key, e] : objects_[1])
      for (auto& id : owners_of_slice(key, e)) slices_of_[id].insert(key);
    for (const auto& [id, e] : objects_[0]) dirty_.insert(id);
    for (const auto& [id, keys] : slices_of_) dirty_.insert(id);
    stale_ = false;
  }
  dirty_.insert(file_ids_.begin(), file_ids_.end());
  for (const auto& id : dirty_) {
    auto a = assemble_one(id, opts);
    if (auto it = objects_[0].find(id); it != objects_[0].end() && uses_files(it->second))
      file_ids_.insert(id);
    else
      file_ids_.erase(id);
    // An event that changed nothing a proxy reads (a status or label update, a resync) keeps the
    // object the last snapshot has, so the data plane sees the Service as unchanged.
    if (auto old = assembled_.find(id); old != assembled_.end() && old->second.svc && a.svc && *old->second.svc == *a.svc)
      a.svc = old->second.svc;
    if (!a.svc && a.notes.empty() && !a.whole_build_needed) assembled_.erase(id);
    else assembled_.insert_or_assign(id, std::move(a));
  }
  last_assembled_ = dirty_.size();
  dirty_.clear();

  // Across Services: one pass over the nodePort numbers. Anything wrong, or a number to allocate,
  // goes to the whole build, whose messages say exactly what and where.
  snapshot snap;
  snap.range = opts.range_override ? *opts.range_override : port_range{};
  snap.services.reserve(assembled_.size());
  // nodePort -> index of the Service holding it, and bound numbers by protocol. Kept between
  // builds: fresh 256 KiB would cost page faults on every build.
  auto& holder = holder_scratch_;
  holder.assign(65536, -1);
  auto& bound = bound_scratch_;
  for (auto& b : bound) b.assign(65536, false);
  bool whole = false;
  for (const auto& [id, a] : assembled_) {
    if (a.whole_build_needed) {
      whole = true;
      break;
    }
    for (const auto& note : a.notes) snap.notes.push_back(note);
    if (!a.svc) continue;
    const auto i = static_cast<std::int32_t>(snap.services.size());
    auto take = [&](int n) {
      auto& h = holder[static_cast<std::size_t>(n)];
      if (h != -1 && h != i) whole = true;  // a number held by two Services
      h = i;
    };
    for (const auto& port : a.svc->ports) {
      take(port.node_port);
      bound[port.proto == protocol::tcp ? 0 : 1][static_cast<std::size_t>(port.node_port)] = true;
    }
    if (a.svc->health_check_node_port > 0) take(a.svc->health_check_node_port);
    snap.services.push_back(a.svc);
  }
  if (!whole)
    for (const auto& [id, a] : assembled_)
      for (const auto& [proto, port] : a.loopback_targets)
        if (bound[proto == protocol::tcp ? 0 : 1][static_cast<std::size_t>(port)]) whole = true;
  if (whole) {
    last_whole_ = true;
    return rebuild_all(opts, source);
  }
  snap.source = source;
  return snap;
}

snapshot object_store::rebuild_all(const load_options& opts, const std::string& source) const {
  std::vector<detail::decoded_input> inputs;
  inputs.reserve(objects_[0].size() + objects_[1].size());
  for (const auto& objects : objects_)
    for (const auto& [key, e] : objects)
      if (!e.rejected) inputs.push_back(e.decoded);
  std::vector<problem> problems;
  snapshot snap = detail::assemble(std::move(inputs), opts, problems);
  if (!problems.empty()) throw config_error(source, std::move(problems));
  snap.source = source;
  return snap;
}

}  // namespace npp::config
