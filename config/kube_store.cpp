#include "config/kube_store.hpp"

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
  if (!items.is_array()) return out;
  for (const auto& item : items) {
    entry e;
    auto problems = decode(k, item, e);
    out.insert(out.end(), problems.begin(), problems.end());
    objects.insert_or_assign(key_of(item), std::move(e));
  }
  return out;
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
  objects_[index(k)].insert_or_assign(key_of(object), std::move(e));
  return problems;
}

void object_store::erase(api_kind k, const nlohmann::json& object) { objects_[index(k)].erase(key_of(object)); }

snapshot object_store::build(const load_options& opts, const std::string& source) const {
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
