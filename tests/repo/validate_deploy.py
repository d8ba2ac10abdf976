#!/usr/bin/python3
"""Checks the deployment examples: examples/**/deploy/*.yaml (Kubernetes manifests that deploy the
proxy: `kubectl apply -f`) and examples/systemd/*.service. These are not proxy inputs, so
validate_examples_cli.sh skips deploy/ directories and this script checks them instead:

  * every YAML document is an object with apiVersion, kind and metadata.name;
  * the DaemonSet keeps the hardening the README promises (hostNetwork, non-root, RuntimeDefault
    seccomp, read-only root filesystem, no privilege escalation, capabilities drop ALL, NODE_NAME
    from the downward API, /livez and /readyz probes on the healthz port) and every flag it passes
    is one `nodeport-proxy run --help` knows;
  * the ClusterRole grants list/watch on services, endpointslices and nodes and nothing that writes;
  * each systemd unit passes `systemd-analyze verify` (with ExecStart pointed at the built binary;
    skipped with a note where systemd-analyze is missing) and its flags are known too.

Usage: validate_deploy.py BINARY PROJECT_ROOT
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml


def flags_of(words):
    return [w.split("=", 1)[0] for w in words if w.startswith("--")]


def main():
    binary, root = sys.argv[1], pathlib.Path(sys.argv[2])
    help_text = subprocess.run([binary, "run", "--help"], capture_output=True, text=True, timeout=30).stdout
    help_text += subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
    failures = []

    manifests = sorted(p for p in (root / "examples").rglob("*.yaml") if "deploy" in p.parts)
    if not manifests:
        failures.append("no examples/**/deploy/*.yaml found")
    docs = []
    for path in manifests:
        rel = path.relative_to(root)
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as e:
            failures.append("%s: not YAML: %s" % (rel, e))
            continue
        for i, d in enumerate(loaded):
            if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") or \
                    not (d.get("metadata") or {}).get("name"):
                failures.append("%s: document %d needs apiVersion, kind and metadata.name" % (rel, i))
                continue
            docs.append((rel, d))

    by_kind = {}
    for rel, d in docs:
        by_kind.setdefault(d["kind"], []).append((rel, d))
    for kind in ("DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        if kind not in by_kind:
            failures.append("deploy manifests: no %s" % kind)

    for rel, ds in by_kind.get("DaemonSet", []):
        pod = ds["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        c = pod["containers"][0]
        sc = c.get("securityContext") or {}
        checks = {
            "hostNetwork: true": pod.get("hostNetwork") is True,
            "runAsNonRoot: true": psc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True,
            "seccompProfile RuntimeDefault": (psc.get("seccompProfile") or sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
            "readOnlyRootFilesystem: true": sc.get("readOnlyRootFilesystem") is True,
            "allowPrivilegeEscalation: false": sc.get("allowPrivilegeEscalation") is False,
            "capabilities drop ALL": (sc.get("capabilities") or {}).get("drop") == ["ALL"],
            "NODE_NAME from spec.nodeName": any(
                e.get("name") == "NODE_NAME" and
                ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "spec.nodeName"
                for e in c.get("env", [])),
            "livenessProbe /livez": (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") == "/livez",
            "readinessProbe /readyz": (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") == "/readyz",
            "serviceAccountName set": bool(pod.get("serviceAccountName")),
        }
        for what, ok in checks.items():
            if not ok:
                failures.append("%s: DaemonSet %s: expected %s" % (rel, ds["metadata"]["name"], what))
        args = c.get("args", [])
        if not args or args[0] != "run":
            failures.append("%s: the container's args must start with `run`" % rel)
        for f in flags_of(args):
            if f not in known:
                failures.append("%s: flag %s is not a `nodeport-proxy run` flag" % (rel, f))
        hz = [a for a in args if a.startswith("--healthz-bind-address")]
        port = c["readinessProbe"]["httpGet"].get("port") if c.get("readinessProbe") else None
        if not hz or str(port) not in hz[0]:
            failures.append("%s: the probes must use the --healthz-bind-address port" % rel)

    for rel, role in by_kind.get("ClusterRole", []):
        granted = {}
        for rule in role.get("rules", []):
            for r in rule.get("resources", []):
                granted.setdefault(r, set()).update(rule.get("verbs", []))
        for r in ("services", "endpointslices", "nodes"):
            if not {"list", "watch"} <= granted.get(r, set()):
                failures.append("%s: ClusterRole must allow list and watch on %s" % (rel, r))
        for r, verbs in granted.items():
            if verbs - {"get", "list", "watch"}:
                failures.append("%s: ClusterRole grants more than read access on %s: %s" % (rel, r, sorted(verbs)))

    units = sorted((root / "examples").rglob("*.service"))
    if not units:
        failures.append("no examples/**/*.service found")
    analyze = shutil.which("systemd-analyze")
    for unit in units:
        rel = unit.relative_to(root)
        text = unit.read_text()
        m = re.search(r"^ExecStart=(\S+)(.*)$", text, re.M)
        if not m:
            failures.append("%s: no ExecStart" % rel)
            continue
        for f in flags_of(m.group(2).split()):
            if f not in known:
                failures.append("%s: flag %s is not a `nodeport-proxy run` flag" % (rel, f))
        if "ExecReload=/bin/kill -HUP $MAINPID" not in text:
            failures.append("%s: ExecReload must send SIGHUP" % rel)
        if not analyze:
            print("note: systemd-analyze not found; %s not verified" % rel)
            continue
        with tempfile.TemporaryDirectory() as d:
            copy = os.path.join(d, unit.name)
            with open(copy, "w") as f:
                f.write(text.replace(m.group(1), os.path.abspath(binary), 1))
            out = subprocess.run([analyze, "verify", copy], capture_output=True, text=True, timeout=60)
            # Only problems in our unit count (the host's other units may have their own).
            own = [l for l in (out.stdout + out.stderr).splitlines() if unit.name in l]
            if out.returncode != 0 or own:
                failures.append("%s: systemd-analyze verify: %s" % (rel, "\n".join(own) or out.stderr.strip()))

    if failures:
        print("\n".join(failures))
        print("FAIL: %d problem(s)" % len(failures))
        return 1
    print("OK: %d deployment manifest document(s), %d systemd unit(s)" % (len(docs), len(units)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
