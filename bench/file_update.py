#!/usr/bin/python3
"""File mode: how long from replacing the endpoints file (write a temporary file, rename it over
the old one, as kubectl-free tooling and ConfigMap updates do) to the changed configuration being
applied. The proxy serves SERVICES Services of one TCP port each with ENDPOINTS endpoints; every
round drops one endpoint of one Service. Times come from the proxy's own log lines
("configuration applied: generation=N ... sync_ms=..."), against the wall clock taken right after
the rename.

usage: bench/file_update.py BINARY [SERVICES=1000] [ENDPOINTS=10] [ROUNDS=5]
"""
import json
import os
import socket
import sys
import tempfile
import time

from proxy_log import ProxyLog, int_args, ts


def free_ports(n, first=20000):
    out, port = [], first
    while len(out) < n and port < 30000:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            out.append(port)
        except OSError:
            pass
        finally:
            s.close()
        port += 1
    return out


def main():
    binary = sys.argv[1]
    n, per, rounds = int_args(1000, 10, 5)
    ports = free_ports(n)
    services = [{"name": "s%d" % i, "ports": [{"name": "http", "port": 80, "nodePort": ports[i], "endpoints": [
        "10.%d.%d.%d:8080" % (1 + (i * per + k) // 65536, ((i * per + k) // 256) % 256, (i * per + k) % 256)
        for k in range(per)]}]} for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "svc.json")

        def write(doc):
            tmp = os.path.join(d, ".svc.json.tmp")
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.rename(tmp, path)
            return time.time()

        write({"services": services})
        cmd = [binary, "run", "--endpoints-file", path, "--workers", "1", "--nodeport-addresses", "127.0.0.1/32",
               "--healthz-bind-address", "", "--metrics-bind-address", "", "--service-node-port-range", "20000-29999"]
        log = ProxyLog(cmd)

        def wait(rx):
            i, m = log.wait(rx, timeout=60)
            return log.lines[i], m

        try:
            wait(r"configuration applied: generation=1 ")
            print("%d Services, %d endpoints each, %.1f MB file" % (n, per, os.path.getsize(path) / 1e6))
            results = []
            for r in range(rounds):
                time.sleep(0.3)  # past the watch's settle time, so rounds do not coalesce
                services[r % n]["ports"][0]["endpoints"].pop()
                t_renamed = write({"services": services})
                line, m = wait(r"configuration applied: generation=%d .*sync_ms=([0-9.]+)" % (r + 2))
                total = (ts(line) - t_renamed) * 1000
                results.append((total, float(m.group(1))))
                print("  round %d: rename -> applied %.0f ms (of which apply %.2f ms)" % (r + 1, total, float(m.group(1))))
            totals = sorted(t for t, _ in results)
            print("median rename -> applied: %.0f ms (the watch waits 5 ms for a write to settle, then the "
                  "whole file is read and validated again)" % totals[len(totals) // 2])
        finally:
            log.proc.terminate()
            log.proc.wait(30)


if __name__ == "__main__":
    main()
