"""Writes the JSON schemas of the two custom resources the manifests use, from PyPI packages (no cluster, no
GitHub: only package registries are reachable here). Run it in a throw-away virtualenv:

    python3 -m venv /tmp/crdgen && /tmp/crdgen/bin/pip install \
        cloudcoil-models-prometheus-operator==0.80.1.0 cloudcoil-models-keda==2.16.1.0
    /tmp/crdgen/bin/python deploy/kubernetes/crds/generate.py

The cloudcoil model packages are generated (by cloudcoil-model-codegen) from the upstream projects' CRD
manifests, their version naming the upstream release: prometheus-operator v0.80.1 and KEDA v2.16.1, the newest
installable on Python 3.11 (cloudcoil-models-keda 2.20.2.x, for one, needs Python >= 3.14). Each model's pydantic
JSON schema keeps the CRD's field names, types, enums, patterns, bounds and required fields; what it adds is
`null` as an allowed value of optional fields (the API server would drop a null). tests/test_kubernetes.py
validates the rendered ServiceMonitor and ScaledObject against these files, with unknown fields rejected as
`kubectl apply`'s default server-side field validation (Strict) would.
"""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

HERE = Path(__file__).parent
MODELS = [
    (ServiceMonitor, "monitoring.coreos.com/v1", "cloudcoil-models-prometheus-operator", "prometheus-operator"),
    (ScaledObject, "keda.sh/v1alpha1", "cloudcoil-models-keda", "KEDA"),
]

for model, api_version, package, upstream in MODELS:
    version = importlib.metadata.version(package)
    schema = model.model_json_schema(by_alias=True)
    schema["$comment"] = (f"{model.__name__} ({api_version}): the JSON schema of the pydantic model in PyPI's "
                          f"{package}=={version}, generated from {upstream} "
                          f"v{'.'.join(version.split('.')[:3])}'s CRD; written by deploy/kubernetes/crds/generate.py")
    schema["x-source"] = {"package": f"pypi:{package}", "version": version, "upstream": upstream,
                          "upstream_version": "v" + ".".join(version.split(".")[:3]),
                          "apiVersion": api_version, "kind": model.__name__}
    out = HERE / f"{model.__name__.lower()}.{api_version.replace('/', '.')}.json"
    out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"{out.name}: {len(json.dumps(schema))} bytes from {package}=={version}")
