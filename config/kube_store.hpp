#pragma once
// The objects a live API watch has delivered (Services and EndpointSlices by namespace/name),
// kept apart from the HTTP client so the snapshot is built by the same conversion the file
// inputs use (kubernetes_objects.cpp: decode, then assemble()). Pure: no sockets, no threads.
//
// Each object is decoded once, when it arrives; build() merges the decoded pieces. An object the
// decoder finds problems with (say a misspelt nodeport-proxy.io/ annotation) is left out, and its
// problems are returned to the caller to log: one bad Service must not stop a cluster's worth of
// updates, and, as with files, a typo must not leave a port open with the wrong settings.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "config/load.hpp"
#include "config/loader_internal.hpp"

namespace npp::config {

enum class api_kind { service, endpoint_slice };
/// "Service" / "EndpointSlice".
std::string_view to_string(api_kind k);

class object_store {
  struct entry {
    detail::decoded_input decoded;
    bool rejected = false;  ///< had problems: left out of build()
  };

 public:
  /// Replaces every object of kind `k` with the items of a List response. Returns the problems of
  /// objects left out ("Service ops/web: metadata.annotations[...]: ...").
  std::vector<std::string> replace(api_kind k, const nlohmann::json& items);
  /// A re-list in progress: items are decoded as they arrive (list_stream_reader), and
  /// commit() swaps them in for the kind's objects at once. Until then the store is unchanged.
  class pending_list {
   public:
    explicit pending_list(api_kind k) : kind_(k) {}
    /// Decodes one item; returns its problems (it is then left out of builds).
    std::vector<std::string> add(const nlohmann::json& item);
    api_kind kind() const { return kind_; }

   private:
    friend class object_store;
    api_kind kind_;
    std::map<std::string, entry> objects_;
  };
  void commit(pending_list&& list) { objects_[index(list.kind_)] = std::move(list.objects_); }

  /// replace() from the text of a List response, parsed item by item (watch_events.hpp
  /// read_list(): the list never exists as one JSON tree). On malformed JSON throws
  /// std::runtime_error and keeps the kind's objects as they were. Sets *resource_version.
  std::vector<std::string> replace(api_kind k, std::string_view list_text, int max_depth, std::string* resource_version);
  /// An ADDED or MODIFIED object. Returns its problems (it is then left out) or nothing.
  std::vector<std::string> upsert(api_kind k, const nlohmann::json& object);
  /// A DELETED object (only its metadata is read).
  void erase(api_kind k, const nlohmann::json& object);
  /// Objects of kind k held (including those left out for problems).
  std::size_t size(api_kind k) const { return objects_[index(k)].size(); }

  /// Merges every object into a snapshot (assemble(): slices join Services, nodePort checks).
  /// Throws config_error if the whole set is inconsistent (e.g. a nodePort outside
  /// opts.range_override). `source` becomes snapshot::source.
  snapshot build(const load_options& opts, const std::string& source) const;

 private:
  static std::size_t index(api_kind k) { return k == api_kind::service ? 0 : 1; }
  static std::string key_of(const nlohmann::json& object);
  static std::vector<std::string> decode(api_kind k, const nlohmann::json& object, entry& out);

  std::map<std::string, entry> objects_[2];  ///< by "namespace/name"
};

}  // namespace npp::config
