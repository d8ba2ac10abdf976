#include "proxy/udp_listener.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <unistd.h>

#include "proxy/access_log.hpp"
#include "proxy/endpoint_format.hpp"
#include "proxy/socket_util.hpp"
#include "proxy/udp_batch.hpp"
#include "proxy/worker.hpp"

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using udp = asio::ip::udp;
using clock_type = std::chrono::steady_clock;

/// Failed receives (queued errors) tolerated per readiness event before yielding to other
/// sockets on the worker; a turn otherwise handles one batch (udp_batch::capacity datagrams).
static constexpr int max_receive_errors_per_turn = 8;
/// How often idle sessions are looked for (at most; less often with a long idle timeout).
static constexpr auto max_sweep_interval = std::chrono::seconds(1);

std::size_t udp_listener::client_key_hash::operator()(const client_key& k) const {
  // FNV-1a over the address and port: cheap, and the map only needs spread, not secrecy (the
  // per-worker table is capped, so a crafted collision flood is bounded too).
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint8_t b) { h = (h ^ b) * 1099511628211ull; };
  for (auto b : k.addr) mix(b);
  mix(static_cast<std::uint8_t>(k.port));
  mix(static_cast<std::uint8_t>(k.port >> 8));
  return static_cast<std::size_t>(h);
}

udp_listener::udp_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port)
    : worker_(w), key_(std::move(key)), socket_(w.context()), port_(std::move(port)), sweep_(w.context()) {
  socket_.assign(key_.addr.ip.v6 ? udp::v6() : udp::v4(), fd);
}

udp_listener::~udp_listener() {
  // Sessions may outlive the listener (a pending wait holds its session): marked closed, they
  // never reach back through their owner pointer. (The worker calls close() first, which also
  // logs and counts their end; this only guards a listener dropped without it.)
  for (auto& [key, s] : sessions_) s->closed = true;
}

void udp_listener::start() { do_wait(/*known_empty=*/false); }

void udp_listener::close() {
  closed_ = true;
  error_code ignored_ec;
  socket_.close(ignored_ec);
  sweep_.cancel();
  while (!lru_.empty()) end_session(lru_.front(), "shutdown");
}

port_counters& udp_listener::counters(const port_runtime& p) { return p.stats->worker(worker_.index()); }

void udp_listener::do_wait(bool known_empty) {
  ready_.start(
      worker_.context(), socket_, shared_from_this(),
      [](void* target, int, const error_code& ec, std::size_t) {
        auto* self = static_cast<udp_listener*>(target);
        if (self->closed_ || ec) return;
        self->on_readable();
      },
      this, known_empty);
}

void udp_listener::on_readable() {
  udp_batch& b = worker_.datagrams();
  for (int attempt = 0; attempt < max_receive_errors_per_turn; ++attempt) {
    const int n = b.receive(socket_.native_handle(), true);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        do_wait(/*known_empty=*/true);
        return;
      }
      // EINTR, or an error queued on an unconnected socket (e.g. ICMP for a reply we sent):
      // it belongs to no session, and reading it clears it. Never let it stop the listener.
      continue;
    }
    forward_batch(b, n);
    if (closed_) return;
    if (n < udp_batch::capacity) {
      // The queue was empty when the kernel looked: wait for readiness instead of paying a
      // recvmmsg that would only say EAGAIN (every arrival after this point wakes epoll again).
      // An unconnected socket without IP_RECVERR has no queued errors for recvmmsg to leave
      // pending behind the datagrams.
      do_wait(/*known_empty=*/true);
      return;
    }
    break;
  }
  // A full batch: more may be queued. Let the worker's other sockets have a turn first.
  asio::post(worker_.context(), [self = shared_from_this()] {
    if (!self->closed_) self->on_readable();
  });
}

udp_listener::client_key udp_listener::key_of(const sockaddr_storage& from) {
  client_key key;
  key.family = from.ss_family;
  if (from.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&from);
    key.port = sin->sin_port;
    std::memcpy(key.addr, &sin->sin_addr, 4);
  } else {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&from);
    key.port = sin6->sin6_port;
    std::memcpy(key.addr, &sin6->sin6_addr, 16);
  }
  return key;
}

void udp_listener::forward_batch(udp_batch& b, int n) {
  int first = 0;
  while (first < n) {
    if (b.truncated(first)) {
      // Cannot happen with 64 KiB slots over IPv4/IPv6 without jumbograms; never forward a
      // truncated datagram if it does.
      bump(counters(*port_).udp_dropped_oversize);
      ++first;
      continue;
    }
    const client_key key = key_of(b.source(first));
    int last = first + 1;
    while (last < n && !b.truncated(last) && key_of(b.source(last)) == key) ++last;
    forward_run(b, key, first, last);
    first = last;
  }
}

void udp_listener::forward_run(udp_batch& b, const client_key& key, int first, int last) {
  session_ptr s;
  int refused_at = -1;  // the datagram that already cost its session a reset (retried once)
  while (first < last) {
    const msghdr& h = b.header(first);
    const auto& from = b.source(first);
    if (!s) {
      // Admission is per datagram, as if each came alone: a refused one is counted by its
      // reason and the next one asks again.
      s = find_or_create(key, from, h.msg_namelen, h);
      if (!s) {
        ++first;
        continue;
      }
    }
    const int sent = b.send(s->upstream.native_handle(), first, last, nullptr, 0, nullptr, 0, s->gso_upstream);
    if (sent > 0) {
      const std::size_t bytes = b.bytes(first, first + sent);
      auto& c = counters(*s->port);
      bump(c.udp_datagrams_client_to_upstream, static_cast<std::uint64_t>(sent));
      bump(c.bytes_client_to_upstream, bytes);
      s->bytes_in += bytes;
      touch(*s);
      first += sent;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNREFUSED && refused_at != first) {
      // An ICMP port-unreachable arrived for this session since its last datagram: the endpoint
      // is gone. Start over with the next endpoint instead of dropping the client's datagram.
      refused_at = first;
      bump(counters(*s->port).udp_sessions_reset);
      end_session(*s, "reset");
      s.reset();
      continue;
    }
    // Send buffer full, or a datagram this endpoint cannot take (EMSGSIZE): drop this one only.
    bump(counters(*s->port).udp_dropped_buffer_full);
    ++first;
  }
}

/// The client's address from recvmsg's sockaddr, IPv4-mapped turned into IPv4.
static config::ip_address source_address(const sockaddr_storage& from) {
  config::ip_address ip;
  if (from.ss_family == AF_INET) {
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(&from)->sin_addr, 4);
    return ip;
  }
  ip.v6 = true;
  std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&from)->sin6_addr, 16);
  return ip.unmapped();
}

bool udp_listener::allowed(const config::ip_address& source) const {
  return worker_.cfg().allowed_sources.allows(source) && port_->allowed_sources.allows(source);
}

udp_listener::session_ptr udp_listener::find_or_create(const client_key& key, const sockaddr_storage& from,
                                                       socklen_t from_len, const msghdr& msg) {
  if (auto it = sessions_.find(key); it != sessions_.end()) {
    session_ptr s = it->second;
    if (s->port == port_) return s;
    // A reload may have narrowed the allowlist: a session adopts the new config only if its
    // client is still allowed (TCP connections keep the config they were accepted under, but a
    // UDP session lives on datagram by datagram, and each one is a new admission).
    if (!allowed(source_address(from))) {
      bump(counters(*port_).udp_dropped_allowlist);
      end_session(*s, "allowlist");
      return nullptr;
    }
    // The port's config changed since this session started. Keep the session if its endpoint is
    // still usable (round-robin state must not churn established flows); otherwise end it, and
    // this datagram starts a new session on a live endpoint.
    const auto& addr = s->port->endpoint_addrs[s->endpoint];
    for (std::size_t i = 0; i < port_->endpoint_addrs.size(); ++i) {
      if (port_->endpoint_addrs[i] == addr) {
        s->port = port_;
        s->endpoint = i;
        return s;
      }
    }
    bump(counters(*port_).udp_sessions_moved);
    end_session(*s, "moved");
  }
  return create_session(key, from, from_len, msg);
}

bool udp_listener::make_room() {
  if (worker_.udp_sessions() < worker_.udp_session_cap()) return true;
  // Full: take the slot of this socket's least recently active session if it has gone quiet;
  // never push out a session that is in use.
  if (!lru_.empty()) {
    session& oldest = lru_.back();
    if (clock_type::now() - oldest.last_activity >= worker_.cfg().udp_evict_idle) {
      bump(counters(*oldest.port).udp_sessions_evicted);
      end_session(oldest, "evicted");
      return true;
    }
  }
  return false;
}

udp_listener::session_ptr udp_listener::create_session(const client_key& key, const sockaddr_storage& from,
                                                       socklen_t from_len, const msghdr& msg) {
  auto& c = counters(*port_);
  // Before anything else: a denied source gets no session, no upstream socket, no endpoint pick.
  const config::ip_address client_ip = source_address(from);
  if (!allowed(client_ip)) {
    bump(c.udp_dropped_allowlist);
    return nullptr;
  }
  if (port_->endpoints.empty()) {
    bump(c.udp_dropped_no_endpoints);
    return nullptr;
  }
  if (!make_room()) {
    bump(c.udp_dropped_session_limit);
    return nullptr;
  }
  auto s = std::make_shared<session>(worker_.context(), *this);
  s->key = key;
  std::memcpy(&s->client, &from, sizeof from);
  s->client_len = from_len;
  for (cmsghdr* cm = CMSG_FIRSTHDR(const_cast<msghdr*>(&msg)); cm; cm = CMSG_NXTHDR(const_cast<msghdr*>(&msg), cm)) {
    if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
      std::memcpy(&s->local6, CMSG_DATA(cm), sizeof s->local6);
      s->local6.ipi6_ifindex = 0;  // let routing pick the interface; only the source address matters
      s->local_kind = 6;
    } else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO && s->local_kind == 0) {
      in_pktinfo info;
      std::memcpy(&info, CMSG_DATA(cm), sizeof info);
      s->local4 = {};
      s->local4.ipi_spec_dst = info.ipi_addr;
      s->local_kind = 4;
    }
  }
  if (from.ss_family == AF_INET6 && s->local_kind == 4) s->local_kind = 0;  // an IPv6 socket needs IPV6_PKTINFO
  s->port = port_;
  s->endpoint = port_->pick(client_ip);
  port_->pin(client_ip, s->endpoint);
  const auto& ep = port_->endpoints[s->endpoint];
  udp::endpoint target(ep.address(), ep.port());
  error_code ec;
  // Born non-blocking (SOCK_NONBLOCK, and adopt_socket tells Asio so: no ioctl per session).
  const int fd = ::socket(target.protocol().family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec.assign(errno, boost::system::system_category());
  } else {
    adopt_socket(s->upstream, target.protocol(), fd, ec);
    if (ec) ::close(fd);  // not taken
  }
  if (!ec) s->upstream.connect(target, ec);  // no packet: only fixes the peer and enables ICMP reports
  if (ec) {
    bump(c.udp_dropped_buffer_full);
    spdlog::warn("UDP session to {} not opened: {}", format_endpoint(target), ec.message());
    return nullptr;
  }
  // The reply direction of a busy session deserves the nodePort socket's queue (failure is harmless).
  const int rcvbuf = udp_receive_buffer;
  ::setsockopt(s->upstream.native_handle(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  s->last_activity = s->started = clock_type::now();
  sessions_.emplace(key, s);
  lru_.push_front(*s);
  worker_.udp_session_opened();
  bump(c.udp_sessions_created);
  bump(c.udp_sessions_active, 1);
  // Known empty: registered with epoll before anything was sent, so any reply raises an edge.
  wait_upstream(s, /*known_empty=*/true);
  arm_sweep();
  return s;
}

void udp_listener::wait_upstream(const session_ptr& s, bool known_empty) {
  s->upstream_ready.start(
      worker_.context(), s->upstream, s,
      [](void* target, int, const error_code& ec, std::size_t) {
        auto* sp = static_cast<session*>(target);
        if (sp->closed || ec) return;
        sp->owner->on_upstream_readable(sp->shared_from_this());
      },
      s.get(), known_empty);
}

void udp_listener::on_upstream_readable(const session_ptr& s) {
  udp_batch& b = worker_.datagrams();
  int n = -1;
  while (n < 0) {
    n = b.receive(s->upstream.native_handle(), false);
    if (n >= 0) break;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_upstream(s, /*known_empty=*/true);
      return;
    }
    if (errno == EINTR) continue;
    // ECONNREFUSED: ICMP port unreachable from the endpoint. This session is dead; the
    // listener is not affected, and the client's next datagram picks a live endpoint.
    bump(counters(*s->port).udp_sessions_reset);
    end_session(*s, "reset");
    return;
  }
  int first = 0;
  while (first < n) {
    if (b.truncated(first)) {
      bump(counters(*s->port).udp_dropped_oversize);
      ++first;
      continue;
    }
    int last = first + 1;
    while (last < n && !b.truncated(last)) ++last;
    send_to_client(*s, b, first, last);
    first = last;
  }
  if (n < udp_batch::capacity) {
    // Drained, or an ICMP error is pending behind the datagrams (recvmmsg keeps it for the next
    // call, and its epoll edge may be spent): not known empty, so the next receive finds out.
    wait_upstream(s, /*known_empty=*/false);
    return;
  }
  asio::post(worker_.context(), [self = shared_from_this(), s] {
    if (!s->closed) self->on_upstream_readable(s);
  });
}

void udp_listener::send_to_client(session& s, udp_batch& b, int first, int last) {
  // The same source address for every datagram of the run: one control buffer for all of them.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  std::size_t control_len = 0;
  if (s.local_kind != 0) {
    cmsghdr* cm = reinterpret_cast<cmsghdr*>(control);
    if (s.local_kind == 6) {
      control_len = CMSG_SPACE(sizeof(in6_pktinfo));
      cm->cmsg_level = IPPROTO_IPV6;
      cm->cmsg_type = IPV6_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      std::memcpy(CMSG_DATA(cm), &s.local6, sizeof s.local6);
    } else {
      control_len = CMSG_SPACE(sizeof(in_pktinfo));
      cm->cmsg_level = IPPROTO_IP;
      cm->cmsg_type = IP_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      std::memcpy(CMSG_DATA(cm), &s.local4, sizeof s.local4);
    }
  }
  auto& c = counters(*s.port);
  bool sent_any = false;
  while (first < last) {
    const int sent = b.send(socket_.native_handle(), first, last, reinterpret_cast<const sockaddr*>(&s.client),
                            s.client_len, control_len ? control : nullptr, control_len, s.gso_client);
    if (sent > 0) {
      const std::size_t bytes = b.bytes(first, first + sent);
      bump(c.udp_datagrams_upstream_to_client, static_cast<std::uint64_t>(sent));
      bump(c.bytes_upstream_to_client, bytes);
      s.bytes_out += bytes;
      sent_any = true;
      first += sent;
      continue;
    }
    if (errno == EINTR) continue;
    // Send buffer full, or too big for the client's family (EMSGSIZE): drop this one only.
    bump(c.udp_dropped_buffer_full);
    ++first;
  }
  if (sent_any) touch(s);
}

void udp_listener::touch(session& s) {
  s.last_activity = clock_type::now();
  if (&lru_.front() != &s) {
    lru_.erase(lru_.iterator_to(s));
    lru_.push_front(s);
  }
}

void udp_listener::end_session(session& s, std::string_view reason) {
  if (s.closed) return;
  s.closed = true;
  if (access_log* alog = worker_.shared().access; alog || spdlog::should_log(spdlog::level::debug)) {
    access_record r;
    r.protocol = "udp";
    udp::endpoint client;
    const std::size_t len = std::min<std::size_t>(s.client_len, client.capacity());
    std::memcpy(client.data(), &s.client, len);
    client.resize(len);
    r.client = format_endpoint(client);
    r.node_port = key_.port;
    r.service = s.port->service_id;
    r.port_name = s.port->port_name;
    r.endpoint = s.port->endpoint_addrs[s.endpoint].str();
    r.attempts = 1;
    r.bytes_in = s.bytes_in;
    r.bytes_out = s.bytes_out;
    r.duration = clock_type::now() - s.started;
    r.reason = reason;
    if (alog) alog->write(r);
    spdlog::debug("session closed {}", access_fields(r));
  }
  error_code ignored_ec;
  s.upstream.close(ignored_ec);
  lru_.erase(lru_.iterator_to(s));
  worker_.udp_session_closed();
  bump(counters(*s.port).udp_sessions_active, -1);
  const client_key key = s.key;  // copy: erasing may destroy s, and with it s.key
  sessions_.erase(key);          // nothing may touch s after this line
}

void udp_listener::arm_sweep() {
  if (sweeping_ || closed_) return;
  sweeping_ = true;
  auto interval = std::min<clock_type::duration>(max_sweep_interval, worker_.cfg().udp_idle_timeout / 2);
  sweep_.expires_after(interval);
  sweep_.async_wait([self = shared_from_this()](const error_code& ec) {
    self->sweeping_ = false;
    if (ec || self->closed_) return;
    self->sweep();
  });
}

void udp_listener::sweep() {
  const auto limit = clock_type::now() - worker_.cfg().udp_idle_timeout;
  while (!lru_.empty() && lru_.back().last_activity <= limit) {
    session& s = lru_.back();
    bump(counters(*s.port).udp_sessions_expired);
    end_session(s, "idle_timeout");
  }
  // Large datagrams leave up to 4 MiB of batch memory resident; give it back once they stop
  // (and at once when this socket has no session left, as no sweep follows then).
  worker_.datagrams().trim(lru_.empty());
  if (!lru_.empty()) arm_sweep();
}

}  // namespace npp::proxy
