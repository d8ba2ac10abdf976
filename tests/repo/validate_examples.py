#!/usr/bin/python3
"""Validates every native-format examples/**/*.json against config/nodeport-proxy.schema.json (draft-07).

Native-format files are JSON objects without a top-level "kind" or "apiVersion"; Kubernetes objects
(Service, EndpointSlice, List, ...) in examples/ are not this schema's business and are skipped
(`nodeport-proxy validate` checks them). Every native file must name the schema by its relative
path in "$schema" ("../config/..." in examples/, "../../config/..." one level down).

Usage: validate_examples.py PROJECT_ROOT
Exits 0 when every example validates, 1 listing each failure otherwise. Before trusting that,
it checks itself: the schema must be a valid draft-07 schema, and deliberately wrong documents
must fail, so a schema that accepts everything cannot make this test pass vacuously.
"""
import json
import os
import pathlib
import sys

import jsonschema


def errors_of(validator, document):
    """Every validation error of document, as 'path: message' lines."""
    out = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        out.append(f"{path}: {error.message}")
    return out


# Documents the schema must refuse, one mistake each (the loader refuses them too).
MUST_FAIL = {
    "missing services": {},
    "unknown top-level field": {"services": [], "extra": 1},
    "port as a string": {"services": [{"name": "a", "ports": [{"port": "80"}]}]},
    "port 0": {"services": [{"name": "a", "ports": [{"port": 0}]}]},
    "port 65536": {"services": [{"name": "a", "ports": [{"port": 65536}]}]},
    "fractional port": {"services": [{"name": "a", "ports": [{"port": 1.5}]}]},
    "null nodePort": {"services": [{"name": "a", "ports": [{"port": 80, "nodePort": None}]}]},
    "SCTP": {"services": [{"name": "a", "ports": [{"port": 80, "protocol": "SCTP"}]}]},
    "tls without keyFile": {"services": [{"name": "a", "tls": {"certFile": "c.pem"}, "ports": [{"port": 80}]}]},
    "tls with an unknown key": {"services": [{"name": "a", "tls": {"certFile": "c", "keyFile": "k", "ocsp": 1},
                                              "ports": [{"port": 80}]}]},
    "upstreamTLS insecureSkipVerify as a string": {"services": [{"name": "a", "upstreamTLS": {"insecureSkipVerify": "yes"},
                                                                 "ports": [{"port": 80}]}]},
    "misspelt nodePort": {"services": [{"name": "a", "ports": [{"port": 80, "nodeport": 30080}]}]},
    "upper-case name": {"services": [{"name": "Web", "ports": [{"port": 80}]}]},
    "no ports": {"services": [{"name": "a", "ports": []}]},
    "endpoint without port": {"services": [{"name": "a", "ports": [{"port": 80, "endpoints": ["10.0.0.1"]}]}]},
    "unknown endpoint field": {
        "services": [{"name": "a", "ports": [{"port": 80, "endpoints": [{"address": "10.0.0.1:80", "zone": "a"}]}]}]
    },
    "backend port without name or port": {"backends": [{"service": "a", "ports": [{"endpoints": ["10.0.0.1:80"]}]}]},
    "backend with a nodePort": {
        "backends": [{"service": "a", "ports": [{"port": 80, "nodePort": 30080, "endpoints": []}]}]
    },
    "backend without service": {"backends": [{"ports": [{"port": 80, "endpoints": []}]}]},
    "proxyProtocol v3": {"services": [{"name": "a", "proxyProtocol": "v3", "ports": [{"port": 80}]}]},
    "maxConnections 0": {"services": [{"name": "a", "maxConnections": 0, "ports": [{"port": 80}]}]},
    "allowSourceRanges as a string": {"services": [{"name": "a", "allowSourceRanges": "10.0.0.0/8", "ports": [{"port": 80}]}]},
}

MUST_PASS = {
    "minimal": {"services": []},
    "backends only": {
        "backends": [{"namespace": "default", "service": "my-nodeport-service",
                      "ports": [{"port": 80, "endpoints": ["127.0.0.1:8080"]},
                                {"name": "metrics", "protocol": "TCP", "endpoints": [{"address": "[::1]:9100"}]}]}]
    },
    "everything": {
        "$schema": "../config/nodeport-proxy.schema.json",
        "nodePortRange": "30000-32767",
        "services": [{
            "namespace": "default", "name": "web", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080,
                       "endpoints": ["127.0.0.1:8081", "[::1]:8083",
                                     {"address": "10.0.0.5:8080", "ready": None, "serving": True,
                                      "terminating": False, "nodeName": "node-1"}]}],
        }],
    },
}


def main():
    if len(sys.argv) != 2:
        print("usage: validate_examples.py PROJECT_ROOT", file=sys.stderr)
        return 2
    root = pathlib.Path(sys.argv[1])
    schema_path = root / "config" / "nodeport-proxy.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    failures = []
    for name, document in MUST_FAIL.items():
        if not errors_of(validator, document):
            failures.append(f"self-check: the schema accepts a wrong document ({name})")
    for name, document in MUST_PASS.items():
        for error in errors_of(validator, document):
            failures.append(f"self-check: the schema rejects a valid document ({name}): {error}")

    examples = sorted((root / "examples").rglob("*.json"))
    native = 0
    if not examples:
        failures.append("no examples/**/*.json found")
    for path in examples:
        rel = path.relative_to(root)
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            failures.append(f"{rel}: not JSON: {e}")
            continue
        if isinstance(document, dict) and ("kind" in document or "apiVersion" in document):
            continue  # a Kubernetes object or List, not the native format
        native += 1
        expected = os.path.relpath(schema_path, path.parent)
        if not isinstance(document, dict) or document.get("$schema") != expected:
            failures.append(f'{rel}: must start with "$schema": "{expected}"')
        for error in errors_of(validator, document):
            failures.append(f"{rel}: {error}")
    if examples and not native:
        failures.append("no native-format example found")

    if failures:
        print("\n".join(failures))
        print(f"FAIL: {len(failures)} problem(s)")
        return 1
    print(f"OK: {native} native example(s) match {schema_path.relative_to(root)} "
          f"({len(examples) - native} Kubernetes example(s) skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
