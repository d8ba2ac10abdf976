#pragma once
// The objects a live API watch has delivered (Services and EndpointSlices by namespace/name),
// kept apart from the HTTP client so the snapshot is built by the same conversion the file
// inputs use (kubernetes_objects.cpp: decode, then assemble()). Pure: no sockets, no threads.
//
// Each object is decoded once, when it arrives; build() merges the decoded pieces. It is
// incremental: a Service is assembled (joined with its EndpointSlices and checked) again only when
// it or one of its slices changed since the last build, and the new snapshot shares every other
// Service's object with the previous one, so one changed EndpointSlice costs one Service's work
// plus a pass over the nodePort numbers, not a cluster's worth of copying. What the incremental
// path cannot decide alone (a problem anywhere, a nodePort to allocate, a number held twice, an
// endpoint looping back into a nodePort) is left to rebuild_all(), the whole-set build, so the
// problems reported are exactly the ones a whole build finds. Services with TLS settings are
// assembled at every build, since their files are checked then and can change without an event.
// An object the
// decoder finds problems with (say a misspelt nodeport-proxy.io/ annotation) is left out, and its
// problems are returned to the caller to log: one bad Service must not stop a cluster's worth of
// updates, and, as with files, a typo must not leave a port open with the wrong settings.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
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
  void commit(pending_list&& list);

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
  /// Incremental (see the top of this file); the result equals rebuild_all()'s.
  snapshot build(const load_options& opts, const std::string& source);
  /// The whole-set build: every object merged by one assemble(). build() falls back to it.
  snapshot rebuild_all(const load_options& opts, const std::string& source) const;
  /// How the last build() went: Service ids assembled again (all of them after a list), and
  /// whether it fell back to rebuild_all().
  std::size_t last_build_assembled() const { return last_assembled_; }
  bool last_build_whole() const { return last_whole_; }

 private:
  static std::size_t index(api_kind k) { return k == api_kind::service ? 0 : 1; }
  static std::string key_of(const nlohmann::json& object);
  static std::vector<std::string> decode(api_kind k, const nlohmann::json& object, entry& out);
  /// The Service ids an EndpointSlice entry feeds (its kubernetes.io/service-name), or, for one
  /// that feeds none (say an FQDN slice), a key of its own that no Service id can equal.
  static std::vector<std::string> owners_of_slice(const std::string& key, const entry& e);
  /// A Service entry whose assembly reads files (TLS certificates, keys, CAs, CRLs).
  static bool uses_files(const entry& e);
  void slice_changed(const std::string& key, const entry* before, const entry* after);
  void invalidate();

  /// One Service id assembled alone: the Service (if bound) joined with its slices.
  struct assembled {
    std::shared_ptr<const service> svc;  ///< null: nothing bound (skipped, rejected or absent)
    std::vector<std::string> notes;
    bool whole_build_needed = false;  ///< problems, or a number to allocate: rebuild_all() decides
    /// (protocol, port) of its loopback endpoints, for the self-loop check across Services.
    std::vector<std::pair<protocol, int>> loopback_targets;
  };
  assembled assemble_one(const std::string& id, const load_options& opts) const;

  std::map<std::string, entry> objects_[2];  ///< by "namespace/name"
  /// Slice keys by the Service id they feed.
  std::map<std::string, std::set<std::string>> slices_of_;
  std::map<std::string, assembled> assembled_;  ///< by Service id; valid while !stale_
  std::set<std::string> dirty_;                 ///< ids to assemble again at the next build()
  /// Ids of Services with TLS settings: assembled again at every build(), because assembling
  /// checks their certificate, key, CA and CRL files, which change without any event.
  std::set<std::string> file_ids_;
  bool stale_ = true;                           ///< assembled_ must be rebuilt from scratch
  std::optional<port_range> range_override_;    ///< the option assembled_ was built with
  std::vector<std::int32_t> holder_scratch_;  ///< build(): nodePort -> Service index
  std::vector<bool> bound_scratch_[2];        ///< build(): nodePorts bound, by protocol
  std::size_t last_assembled_ = 0;
  bool last_whole_ = false;
};

}  // namespace npp::config
