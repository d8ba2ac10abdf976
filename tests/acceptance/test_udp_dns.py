"""Real UDP peers through the proxy (issue 4): dnsmasq answering dig over UDP and TCP on one
nodePort, also right after its endpoint is replaced (the stale-conntrack blackhole class,
KUBERNETES.md section 7), and iperf3 -u.

Needs dnsmasq (dnsmasq-base), dig (dnsutils) and iperf3: `scripts/deps.sh test`.
"""

import json
import shutil
import subprocess
import time

import npp

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DIG = shutil.which("dig") or "/usr/bin/dig"
IPERF3 = shutil.which("iperf3") or "/usr/bin/iperf3"


def dig(port, tcp=False, source_port=None, name="web.test"):
    """`dig @127.0.0.1 -p port name +short` with one 1 s try; returns (exit code, output)."""
    cmd = [DIG, "@127.0.0.1", "-p", str(port), name, "A", "+short", "+time=1", "+tries=1"]
    if tcp:
        cmd.append("+tcp")
    if source_port is not None:
        cmd += ["-b", "127.0.0.1#%d" % source_port]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    return r.returncode, (r.stdout + r.stderr).strip()


def listening_tcp(port):
    out = subprocess.run(["ss", "-tlnH", "sport = :%d" % port], capture_output=True, text=True,
                         timeout=10).stdout
    return bool(out.strip())


class PeerTestCase(npp.ProxyTestCase):

    def setUp(self):
        super().setUp()
        for tool in (DNSMASQ, DIG, IPERF3):
            if not shutil.which(tool):
                self.fail("%s not installed (scripts/deps.sh test installs dnsmasq-base, dnsutils "
                          "and iperf3)" % tool)

    def spawn(self, cmd):
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            proc.stdout.close()
        self.addCleanup(stop)
        return proc

    def dnsmasq(self, answer):
        """A dnsmasq on 127.0.0.1:<free port> (UDP and TCP) answering web.test A <answer>."""
        port = npp.free_port_tcp_udp()
        proc = self.spawn([DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                           "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces",
                           "--host-record=web.test,%s" % answer, "--user=root", "--pid-file=",
                           "--log-facility=-"])
        deadline = time.monotonic() + 5.0
        while True:
            rc, out = dig(port)
            if rc == 0 and out == answer:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail("dnsmasq on port %d not answering (exit %s): %s\n%s"
                          % (port, proc.poll(), out, proc.stdout.read() if proc.poll() is not None else ""))
            time.sleep(0.05)
        proc.port = port
        proc.addr = "127.0.0.1:%d" % port
        return proc

    def dns_service(self, node_port, servers):
        """A Service like kube-dns: TCP and UDP on one nodePort."""
        service = npp.svc("kube-dns", node_port, [s.addr for s in servers], namespace="kube-system",
                          port=53, protocol="UDP", port_name="dns")
        service["ports"].append(dict(service["ports"][0], name="dns-tcp", protocol="TCP"))
        return [service]

    def assertAnswer(self, node_port, answer, what, **kw):
        rc, out = dig(node_port, **kw)
        self.assertEqual((rc, out), (0, answer), "%s: dig %r" % (what, kw))


class Dns(PeerTestCase):

    def test_dig_over_udp_and_tcp_on_one_nodeport(self):
        dns = self.dnsmasq("10.1.2.3")
        node_port = npp.free_port_tcp_udp()
        proxy = self.proxy_for(self.dns_service(node_port, [dns]))
        for i in range(5):
            self.assertAnswer(node_port, "10.1.2.3", "UDP query %d" % i)
        self.assertAnswer(node_port, "10.1.2.3", "TCP query", tcp=True)
        proxy.assert_alive()

    def test_replaced_endpoint_answers_the_very_next_query(self):
        old = self.dnsmasq("10.1.2.3")
        node_port = npp.free_port_tcp_udp()
        proxy = self.proxy_for(self.dns_service(node_port, [old]))
        src = npp.free_port_tcp_udp()  # one fixed client address: one long-lived proxy session
        self.assertAnswer(node_port, "10.1.2.3", "before", source_port=src)

        # Rolling update: the new pod is added and the old one removed from the endpoints while
        # it still runs (terminating). The pinned client's next query goes to the new pod.
        new = self.dnsmasq("10.4.5.6")
        npp.reload_with(proxy, self.dns_service(node_port, [new]))
        self.assertAnswer(node_port, "10.4.5.6", "pinned client, first query after the update",
                          source_port=src)
        self.assertAnswer(node_port, "10.4.5.6", "new client")
        self.assertAnswer(node_port, "10.4.5.6", "TCP", tcp=True)
        old.kill()
        old.wait(5)
        self.assertAnswer(node_port, "10.4.5.6", "after the old pod is gone", source_port=src)

        # Pod restart the blackhole way: the pod dies first (queries to it are lost: there is
        # nobody to answer), then its replacement appears at another address. The first query
        # after that update is answered: no stale session keeps the client on the dead pod.
        new.kill()
        new.wait(5)
        rc, out = dig(node_port, source_port=src)
        self.assertNotEqual((rc, out), (0, "10.4.5.6"), "a killed dnsmasq answered")
        third = self.dnsmasq("10.7.8.9")
        npp.reload_with(proxy, self.dns_service(node_port, [third]))
        self.assertAnswer(node_port, "10.7.8.9", "pinned client after the restart", source_port=src)
        self.assertAnswer(node_port, "10.7.8.9", "TCP after the restart", tcp=True)
        proxy.assert_alive()


class Iperf3(PeerTestCase):

    def test_iperf3_udp_through_the_proxy(self):
        # iperf3 needs its TCP control connection and its UDP data on one port: the --forward
        # entry without a prefix binds both.
        port = npp.free_port_tcp_udp()
        server = self.spawn([IPERF3, "-s", "-1", "-B", "127.0.0.1", "-p", str(port)])
        npp.wait_until(lambda: listening_tcp(port) or server.poll() is not None, 5.0, 0.02,
                       "iperf3 server to listen")
        self.assertIsNone(server.poll(), "iperf3 server exited")
        node_port = npp.free_port_tcp_udp()
        self.proxy(["--forward", "%d=127.0.0.1:%d" % (node_port, port)])
        # -w 4M: socket buffers big enough that a busy 2-core machine does not drop datagrams
        # at the iperf3 ends (without it even a direct run loses up to 5 % here).
        r = subprocess.run([IPERF3, "-u", "-c", "127.0.0.1", "-p", str(node_port), "-b", "200M",
                            "-l", "1200", "-t", "2", "-w", "4M", "-J"],
                           capture_output=True, text=True, timeout=30)
        try:
            report = json.loads(r.stdout)
        except ValueError:
            self.fail("iperf3 exit %d, no JSON: %s %s" % (r.returncode, r.stdout[-500:], r.stderr[-500:]))
        self.assertNotIn("error", report, report.get("error"))
        self.assertEqual(r.returncode, 0)
        end = report["end"]
        received = end.get("sum_received") or end["sum"]
        summary = "iperf3 -u: %.0f Mbit/s, %d bytes, lost %.2f %% (%d of %d)" % (
            received["bits_per_second"] / 1e6, received["bytes"], received["lost_percent"],
            received["lost_packets"], received["packets"])
        print("\n  " + summary)
        self.assertGreater(received["bytes"], 0, summary)
        self.assertLess(received["lost_percent"], 5.0, summary)
        try:
            server.wait(5)  # -1: the server exits after its one test
        except subprocess.TimeoutExpired:
            self.fail("iperf3 server did not finish its one test")


if __name__ == "__main__":
    npp.main()
