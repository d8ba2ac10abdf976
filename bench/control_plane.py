#!/usr/bin/python3
"""Control-plane benchmark of the Kubernetes API mode (issue 6): how long the proxy takes from a
large list response to the applied configuration, how long the snapshot build alone takes, and
the memory it holds. Driven by the scripted API server of the acceptance tests
(tests/acceptance/fake_apiserver.py, HTTPS with a throwaway CA).

Default workload: 10,000 Services (NODEPORTS of them type NodePort with one TCP nodePort, the rest
ClusterIP) and 100,000 endpoints in 10,000 EndpointSlices (10 endpoints each, one slice per
Service). Listeners: one worker, 127.0.0.1 only, so NODEPORTS listeners need NODEPORTS
descriptors (the process may hold at most 20,000 open files here).

usage: control_plane.py BINARY [SERVICES] [ENDPOINTS_PER_SERVICE] [NODEPORTS]
"""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "acceptance"))
from fake_apiserver import FakeAPIServer, make_pki  # noqa: E402
from proxy_log import ProxyLog, int_args, ts  # noqa: E402

FIRST_NODE_PORT = 10000


def rss(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) // 1024
    return out


def main():
    binary = sys.argv[1]
    n_services, per_service, n_nodeports = int_args(10000, 10, 5000)
    tmp = tempfile.mkdtemp(prefix="npp-bench-cp-")
    api = FakeAPIServer(make_pki(os.path.join(tmp, "pki")))
    kc = api.kubeconfig(os.path.join(tmp, "kubeconfig"))
    t0 = time.monotonic()
    for i in range(n_services):
        name = "svc-%05d" % i
        np = FIRST_NODE_PORT + i if i < n_nodeports else None
        spec = {"type": "NodePort" if np else "ClusterIP", "clusterIP": "10.96.%d.%d" % (i // 250, i % 250 + 1),
                "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080,
                           **({"nodePort": np} if np else {})}],
                "selector": {"app": name}, "sessionAffinity": "None"}
        if np:
            spec["externalTrafficPolicy"] = "Cluster"
        api.objects["services"]["ns-%d/%s" % (i % 50, name)] = {
            "metadata": {"name": name, "namespace": "ns-%d" % (i % 50), "uid": "u%d" % i, "resourceVersion": str(i + 1),
                         "labels": {"app": name}}, "spec": spec, "status": {"loadBalancer": {}}}
        eps = [{"addresses": ["10.%d.%d.%d" % (1 + (i * per_service + k) // 65536, ((i * per_service + k) // 256) % 256,
                                               (i * per_service + k) % 256)],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": "node-%d" % (k % 20), "zone": "zone-a",
                "targetRef": {"kind": "Pod", "namespace": "ns-%d" % (i % 50), "name": "%s-%d" % (name, k)}}
               for k in range(per_service)]
        api.objects["endpointslices"]["ns-%d/%s-abcde" % (i % 50, name)] = {
            "metadata": {"name": name + "-abcde", "namespace": "ns-%d" % (i % 50), "resourceVersion": str(i + 1),
                         "labels": {"kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4", "endpoints": eps, "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}
    api.rv = n_services + 1
    print("workload: %d Services (%d NodePort), %d EndpointSlices, %d endpoints (generated in %.1f s)"
          % (n_services, n_nodeports, n_services, n_services * per_service, time.monotonic() - t0))

    # NPP_BENCH_PREFIX="perf record -g -o perf.data" profiles the proxy.
    cmd = os.environ.get("NPP_BENCH_PREFIX", "").split() + [binary, "run", "--kubeconfig", kc, "--workers", "1", "--nodeport-addresses", "127.0.0.1/32",
           "--healthz-bind-address", "", "--metrics-bind-address", "", "--min-sync-period", "1s"]
    log = ProxyLog(cmd)
    proc, lines, wait = log.proc, log.lines, log.wait

    def proxy_pid():
        # With a prefix (perf) the proxy is a child of proc.
        if not os.environ.get("NPP_BENCH_PREFIX"):
            return proc.pid
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else proc.pid

    try:
        i_applied, m_applied = wait(r"configuration applied: generation=1 .*listening=(\d+)")
        listed = [l for l in lines if "API: listed" in l]
        received = []
        for l in listed:
            m = re.search(r"listed (\d+) (\w+) \((\d+) bytes.*received in (\d+) ms, decoded as it arrived "
                          r"\((\d+) ms CPU\), done (\d+) ms after the last byte", l)
            received.append(ts(l) - int(m.group(6)) / 1000.0)
            print("  %s: %s items, %.1f MB; transfer from the (python) server %s ms; decoded during the transfer "
                  "(%s ms CPU of the API thread), done %s ms after the last byte"
                  % (m.group(2), m.group(1), int(m.group(3)) / 1e6, m.group(4), m.group(5), m.group(6)))
        i_built, m_build = wait(r"snapshot built in (\d+) ms \((\d+) ms CPU\)")
        t_applied, t_built = ts(lines[i_applied]), ts(lines[i_built])
        t_received = max(received)
        print("list fully received -> configuration applied: %.0f ms" % ((t_applied - t_received) * 1000))
        print("  = finishing the last list + snapshot build %s ms (%s ms CPU) + apply (%s listeners) %.0f ms"
              % (m_build.group(1), m_build.group(2), m_applied.group(1), (t_applied - t_built) * 1000))
        print("memory after the first sync: %s" % rss(proxy_pid()))
        # One change after the first sync: a MODIFIED EndpointSlice, event sent -> applied.
        time.sleep(1.2)  # past the min sync period, so the change is applied at once
        while not api.live_watches("endpointslices"):
            time.sleep(0.01)
        key = next(iter(api.objects["endpointslices"]))
        obj = dict(api.objects["endpointslices"][key])
        obj["endpoints"] = obj["endpoints"][:-1]
        start = len(lines)
        t_sent = time.time()
        api.event("endpointslices", "MODIFIED", obj)
        i2, _ = wait(r"configuration applied: generation=2", start)
        print("one MODIFIED EndpointSlice: event sent -> configuration applied: %.0f ms (one Service assembled and applied again)"
              % ((ts(lines[i2]) - t_sent) * 1000))
        print("memory after the update: %s" % rss(proxy_pid()))
    finally:
        os.kill(proxy_pid(), 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        api.close()


if __name__ == "__main__":
    main()
