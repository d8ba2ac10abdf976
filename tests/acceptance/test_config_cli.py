"""The CLI contract around configuration: validate/run exit codes and messages, port collisions,
ports in use, out-of-range ports, reloads (ACCEPTANCE rows 53, 54, 55, 15)."""

import json
import os
import re
import socket
import subprocess

import npp
from npp import V4


def run_cli(args, timeout=10):
    """Runs the binary to completion (bounded); returns (rc, stdout + stderr)."""
    npp.require_binary()
    p = subprocess.run([npp.BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def port(node_port, endpoints=("127.0.0.1:8081",), name="http", protocol="TCP", svc_port=80):
    return {"name": name, "protocol": protocol, "port": svc_port, "nodePort": node_port,
            "endpoints": list(endpoints)}


def service(name, *ports, namespace="default"):
    return {"namespace": namespace, "name": name, "ports": list(ports)}


class ConfigCli(npp.ProxyTestCase):

    def write(self, obj, name="config.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        return path

    def validate(self, obj, *flags):
        return run_cli(["validate", self.write(obj)] + list(flags))

    def assertValid(self, obj, *flags):
        rc, out = self.validate(obj, *flags)
        self.assertEqual(rc, 0, "expected valid, got rc=%d:\n%s" % (rc, out))
        self.assertIn("OK", out)

    def assertInvalid(self, obj, *expected, flags=()):
        rc, out = self.validate(obj, *flags)
        self.assertEqual(rc, 1, "expected rc 1 for an invalid file, got rc=%d:\n%s" % (rc, out))
        for e in expected:
            self.assertIn(e, out, "missing problem text %r in:\n%s" % (e, out))
        return out

    # ---- general CLI
    def test_version(self):
        rc, out = run_cli(["version"])
        self.assertEqual(rc, 0, out)
        with open(os.path.join(npp.SOURCE_DIR, "CMakeLists.txt")) as f:
            m = re.search(r"project\(\s*\w+\s+VERSION\s+([0-9.]+)", f.read())
        self.assertIsNotNone(m)
        self.assertIn(m.group(1), out)

    def test_usage_errors_exit_2(self):
        path = self.write({"services": [service("web", port(30080))]})
        for args in (["run", "--endpoints-file", path, "--no-such-flag"],
                     ["run", "--endpoints-file", path, "--workers", "abc"],
                     ["run", "--endpoints-file", path, "--connect-timeout", "soon"],
                     ["no-such-command"]):
            args = args + ["--nodeport-addresses", npp.LOOPBACK_CIDRS] if args[0] == "run" else args
            rc, out = run_cli(args)
            self.assertEqual(rc, 2, "%r: rc=%d (usage error expected)\n%s" % (args, rc, out))
            self.assertTrue(out.strip(), "%r printed nothing" % args)

    # ---- validate
    def test_valid_file_prints_ok(self):
        self.assertValid({"services": [service("web", port(30080, ["127.0.0.1:8081", "[::1]:8083",
                                                                   {"address": "127.0.0.1:8082", "ready": True}]))]})

    def test_nodeport_collision_between_services(self):
        cfg = {"services": [service("a", port(30080)), service("b", port(30080))]}
        self.assertInvalid(cfg, "services[1].ports[0].nodePort: Invalid value: 30080: provided port is already allocated")

    def test_nodeport_collision_within_a_service(self):
        cfg = {"services": [service("a", port(30080, name="one", svc_port=80), port(30080, name="two", svc_port=81))]}
        self.assertInvalid(cfg, "services[0].ports[1].nodePort: Invalid value: 30080: provided port is already allocated")

    def test_tcp_and_udp_may_share_a_number_in_one_service_only(self):
        dns = service("dns", port(30053, name="dns-tcp", protocol="TCP", svc_port=53),
                      port(30053, name="dns-udp", protocol="UDP", svc_port=53))
        self.assertValid({"services": [dns]})
        other = {"services": [service("a", port(30053, protocol="TCP")),
                              service("b", port(30053, protocol="UDP"))]}
        self.assertInvalid(other, "services[1].ports[0].nodePort: Invalid value: 30053: provided port is already allocated")

    def test_nodeport_out_of_range(self):
        cfg = {"services": [service("a", port(29999))]}
        self.assertInvalid(cfg, "services[0].ports[0].nodePort: Invalid value: 29999: provided port is not in "
                                "the valid range. The range of valid ports is 30000-32767")
        self.assertValid(cfg, "--service-node-port-range", "20000-29999")
        self.assertInvalid({"services": [service("a", port(30080))]},
                           "services[0].ports[0].nodePort: Invalid value: 30080: provided port is not in "
                           "the valid range. The range of valid ports is 20000-29999",
                           flags=["--service-node-port-range", "20000-29999"])

    def test_bad_port_values_rejected(self):
        for bad in (65536, -1, "80", 1.5, 70000, True):
            cfg = {"services": [service("a", port(bad))]}
            self.assertInvalid(cfg, "services[0].ports[0].nodePort")
        for bad in (0, 65536, -1, "80", 1.5):
            p = port(30080)
            p["port"] = bad
            self.assertInvalid({"services": [service("a", p)]}, "services[0].ports[0].port")
        for bad in ("127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1", "::1:80",
                    "300.1.1.1:80", "localhost:80", 5):
            self.assertInvalid({"services": [service("a", port(30080, [bad]))]},
                               "services[0].ports[0].endpoints[0]")

    def test_nodeport_zero_or_null_does_not_crash(self):
        # 0/null mean "allocate one" in Kubernetes; either allocation or rejection is fine here,
        # a crash or a usage error is not.
        for v in (0, None):
            rc, out = self.validate({"services": [service("a", port(v))]})
            self.assertIn(rc, (0, 1), "nodePort %r: rc=%d\n%s" % (v, rc, out))

    def test_every_problem_reported_one_per_line(self):
        cfg = {"services": [
            service("a", port(30080)),
            service("b", port(30080)),
            service("c", port(29999)),
            service("d", port(30090, ["not-an-address"])),
        ]}
        out = self.assertInvalid(cfg, "services[1].ports[0].nodePort", "services[2].ports[0].nodePort",
                                 "services[3].ports[0].endpoints[0]")
        lines = out.splitlines()
        for path in ("services[1].ports[0].nodePort", "services[2].ports[0].nodePort",
                     "services[3].ports[0].endpoints[0]"):
            self.assertEqual(sum(path in l for l in lines), 1, "%s not on exactly one line:\n%s" % (path, out))

    def test_malformed_json_and_missing_file(self):
        for text in ("{", "", "[]", '{"services": 5}', '{"services": [}', "{} trailing"):
            rc, out = run_cli(["validate", self.write(text)])
            self.assertEqual(rc, 1, "%r: rc=%d\n%s" % (text, rc, out))
            self.assertTrue(out.strip())
        rc, out = run_cli(["validate", os.path.join(self.tmp, "missing.json")])
        self.assertIn(rc, (1, 2), out)
        self.assertTrue(out.strip())

    # ---- run
    def test_run_on_invalid_file_exits_1_with_the_problems(self):
        path = self.write({"services": [service("a", port(30080)), service("b", port(30080))]})
        rc, out = run_cli(["run", "--endpoints-file", path, "--nodeport-addresses", npp.LOOPBACK_CIDRS])
        self.assertEqual(rc, 1, out)
        self.assertIn("services[1].ports[0].nodePort: Invalid value: 30080: provided port is already allocated", out)

    def test_run_with_port_held_by_another_process_exits_1(self):
        holder = socket.socket(V4, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        held = holder.getsockname()[1]
        path = self.write({"services": [service("a", port(held))]})
        rc, out = run_cli(["run", "--endpoints-file", path, "--nodeport-addresses", "127.0.0.1/32",
                           "--service-node-port-range", npp.TEST_PORT_RANGE])
        self.assertEqual(rc, 1, out)
        lines = [l for l in out.splitlines() if re.search("address already in use", l, re.I)]
        self.assertTrue(lines, "no 'address already in use' line:\n%s" % out)
        self.assertTrue(any(str(held) in l for l in lines), "the port %d is not named:\n%s" % (held, out))

    def test_second_instance_on_the_same_port_exits_1(self):
        # A port held by another process that also uses SO_REUSEPORT (here: a second
        # nodeport-proxy, same user) must still be reported as in use, not silently shared:
        # otherwise the kernel splits connections between the two processes.
        pod = self.backend(npp.echo_handler(b"first"), name="pod")
        p = npp.free_port()
        self.proxy_for([service("a", port(p, [pod.addr]))])
        path = self.write({"services": [service("a", port(p, [pod.addr]))]}, name="second.json")
        try:
            rc, out = run_cli(["run", "--endpoints-file", path, "--nodeport-addresses", "127.0.0.1/32",
                               "--service-node-port-range", npp.TEST_PORT_RANGE], timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("a second nodeport-proxy bound nodePort %d next to the first one and kept "
                      "running (SO_REUSEPORT shares the port between processes)" % p)
        self.assertEqual(rc, 1, out)
        self.assertTrue(re.search(r"address already in use.*\b%d\b|\b%d\b.*address already in use" % (p, p),
                                  out, re.I | re.S), out)

    def test_reload_with_port_in_use_leaves_other_listeners_working(self):
        pod = self.backend(npp.echo_handler(b"A"), name="pod")
        p_a = npp.free_port()
        proxy = self.proxy_for([service("a", port(p_a, [pod.addr]))])
        holder = socket.socket(V4, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        p_b = holder.getsockname()[1]
        a_before = self._listen_inodes(proxy)
        proxy.endpoints.write([service("a", port(p_a, [pod.addr])), service("b", port(p_b, [pod.addr]))])
        start = proxy.mark()
        proxy.sighup()
        idx, _ = proxy.wait_for_log(r"address already in use.*\b%d\b|\b%d\b.*address already in use" % (p_b, p_b),
                                    timeout=5, start=start)
        proxy.assert_alive()
        s = npp.connect(p_a)
        self.assertEqual(npp.recv_exact(s, 1), b"A")
        s.close()
        self.assertTrue(a_before, "no listening sockets found for the proxy")
        self.assertLessEqual(a_before, self._listen_inodes(proxy),
                             "the unchanged listener of port %d was re-created" % p_a)

    def _listen_inodes(self, proxy):
        """Socket inodes of the proxy's listening sockets (ss -tlnpe)."""
        out = subprocess.run(["ss", "-tlnpeH"], capture_output=True, text=True, timeout=10).stdout
        tag = "pid=%d," % proxy.pid
        return {m.group(1) for line in out.splitlines() if tag in line
                for m in [re.search(r"ino:(\d+)", line)] if m}

    def test_json_log_format_emits_one_json_object_per_line(self):
        pod = self.backend(npp.echo_handler(b"J"), name="pod")
        p = npp.free_port()
        proxy = self.proxy_for([service("web", port(p, [pod.addr]))], extra=["--log-format", "json"])
        s = npp.connect(p)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(npp.recv_all(s, 3), b"J")
        s.close()
        proxy.wait_for_log(r"connection closed", timeout=5)
        with proxy.cond:
            lines = [l for l in proxy.lines if l.strip()]
        self.assertGreaterEqual(len(lines), 2)
        for l in lines:
            try:
                obj = json.loads(l)
            except ValueError:
                self.fail("not a JSON log line: %r" % l)
            self.assertIsInstance(obj, dict, l)

    def test_bad_reload_keeps_old_config_then_good_reload_applies(self):
        a = self.backend(npp.id_handler(b"old"), name="old")
        b = self.backend(npp.id_handler(b"new"), name="new")
        p = npp.free_port()
        proxy = self.proxy_for([service("web", port(p, [a.addr]))])

        def fetch():
            s = npp.connect(p)
            try:
                return npp.recv_all(s, 3)
            finally:
                s.close()

        self.assertEqual(fetch(), b"old")
        for bad in ("{", json.dumps({"services": [service("x", port(p, [a.addr])), service("y", port(p, [a.addr]))]})):
            proxy.endpoints.write(bad)
            proxy.reload_expect_rejected()
            proxy.assert_alive()
            self.assertEqual(fetch(), b"old")
        self.assertIsNone(proxy.find(r"configuration applied: generation=2"))
        proxy.endpoints.write([service("web", port(p, [b.addr]))])
        proxy.reload()
        self.assertEqual(fetch(), b"new")


if __name__ == "__main__":
    npp.main()
