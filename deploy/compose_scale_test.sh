#!/usr/bin/env bash
# `make compose-scale-test`: deploy/compose.scale.yml for real, offline: 2 translator replicas behind HAProxy,
# Locust load through HAProxy, a rolling restart and a rolling model update under that load, zero failures.
#
#  1. Tools and engine as in deploy/compose_test.sh (docker, docker-compose, debootstrap, Debian's prometheus;
#     `dockerd --iptables=false --bridge=none` started here if none runs, stopped again by its pid at the end).
#  2. Images, without a Docker registry: the debootstrap base image and the wheelhouse that `make compose-test`
#     caches in .cache/compose-test/ (made here the same way when absent); the translator from the Dockerfile;
#     a "v2" translator image whose model.json carries a new version (deploy/local/model-update.Dockerfile);
#     HAProxy from Debian's package (deploy/local/haproxy.Dockerfile); Prometheus from Debian's binary.
#  3. Up: 2 replicas, HAProxy, Prometheus. Checks: HAProxy has both replicas UP; Prometheus found both through
#     DNS service discovery.
#  4. Locust (load/locustfile.py, the dev extra's locust on this host) through HAProxy for LOAD_SECONDS; meanwhile
#     - both replicas serve traffic (per-replica counters in Prometheus);
#     - rolling restart: each replica in turn gets SIGTERM (docker stop), must exit 0 (drained, not killed), is
#       started again and must be healthy before the next;
#     - rolling model update: a v2 replica is added and healthy before an old one is drained and removed, twice
#       (maxSurge 1, maxUnavailable 0, as the Kubernetes Deployment); /v1/models answers the new version.
#  5. Pass: Locust counted zero failed requests (its SLO gate --slo-max-failure-ratio 0); every replica that
#     existed served requests (Prometheus, per instance); every dashboard query evaluates with data and sums
#     across replicas (no per-instance series except the panels that ask for them). HAProxy's retry and
#     redispatch counters are printed: they show the drains that the load balancer hid from the clients.
# Tools, engine, base image and wheelhouse: deploy/lib.sh (shared with deploy/compose_test.sh).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
PROJECT=${COMPOSE_SCALE_PROJECT:-engpol-scale-test}
REPLICAS=2
LOAD_SECONDS=${COMPOSE_SCALE_LOAD_SECONDS:-200}
USERS=${COMPOSE_SCALE_USERS:-12}
export LB_PUBLISH=127.0.0.1:${COMPOSE_SCALE_LB_PORT:-18080}
export LB_STATS_PUBLISH=127.0.0.1:${COMPOSE_SCALE_LB_STATS_PORT:-18404}
export PROMETHEUS_PUBLISH=127.0.0.1:${COMPOSE_SCALE_PROMETHEUS_PORT:-19091}
export BASE_IMAGE=local/debian-python:$SUITE LB_BASE_IMAGE=local/debian-python:$SUITE
export TRANSLATOR_IMAGE=eng-pol-translator:scale-test V2_IMAGE=eng-pol-translator:scale-test-v2
export LB_IMAGE=local/haproxy:debian-$SUITE PROMETHEUS_IMAGE=local/prometheus:debian-$SUITE
export TRANSLATOR_CPUS=1 TRANSLATOR_REPLICAS=$REPLICAS
OUT=$COMPOSE_TEST_CACHE/scale
mkdir -p "$OUT"

# -- 1. tools and engine --------------------------------------------------------------------------------------
step "tools"
need_tools offline
"$PY" -c 'import locust' 2>/dev/null || die "locust is not importable by $PY (make .venv/.dev)"

LOCUST_PID=""; UP=0
compose() { docker-compose -p "$PROJECT" -f deploy/compose.scale.yml "$@"; }
cleanup() {
  rc=$?
  set +e
  [ -n "$LOCUST_PID" ] && kill "$LOCUST_PID" 2>/dev/null
  if [ "$UP" = 1 ]; then
    compose logs --no-color lb >"$OUT/lb.log" 2>&1
    if [ $rc != 0 ]; then
      echo "HAProxy log lines with a 5xx status or retries ($OUT/lb.log):"
      grep -E '" 5[0-9][0-9] |\+?[1-9][0-9]*/?[0-9]* "' "$OUT/lb.log" | grep -E ' 5[0-9][0-9] ' | tail -n 10
    fi
    step "teardown: docker-compose down -v"
    compose down -v --remove-orphans --timeout 40 2>&1 | tail -n 20
  fi
  finish compose-scale-test $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Docker engine"
start_engine

# -- 2. images ------------------------------------------------------------------------------------------------
step "base image $BASE_IMAGE (debootstrap $SUITE minbase + python3, docker import)"
base_image

step "wheelhouse (serve extra + setuptools + locust==$LOCUST_VERSION, cp311 manylinux wheels)"
wheelhouse
serve_wheels

build() {   # build TAG CONTEXT [docker build args...]: legacy builder, host network (wheelhouse, Debian mirror)
  local tag=$1 context=$2 log; shift 2
  log=$OUT/build-${tag//[:\/]/_}.log
  docker build --network host -t "$tag" "$@" "$context" >"$log" 2>&1 || { tail -n 30 "$log"; die "docker build $tag failed"; }
  grep -E '^(Step |Successfully|Setting up haproxy|Available services|onnxruntime )' "$log" \
    | grep -vE 'Step [0-9]+/[0-9]+ : (LABEL|ENV|ARG|WORKDIR|EXPOSE)' || true
}
step "translator image $TRANSLATOR_IMAGE (Dockerfile)"
build "$TRANSLATOR_IMAGE" . --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PIP_NO_INDEX=1 \
  --build-arg PIP_FIND_LINKS="$PIP_FIND_LINKS"

step "model update image $V2_IMAGE (deploy/local/model-update.Dockerfile)"
v1_version=$("$PY" -c 'import json; print(json.load(open("models/eng-pol/model.json"))["version"])')
v2_version="$v1_version-rollout-test"
ctx=$OUT/model-update-context
rm -rf "$ctx" && mkdir -p "$ctx" && cp -r models/eng-pol "$ctx/model"
"$PY" - "$ctx/model/model.json" "$v2_version" <<'PYEOF'
import json, sys
path, version = sys.argv[1:]
meta = json.load(open(path))
meta["version"] = version
open(path, "w").write(json.dumps(meta, indent=1) + "\n")
PYEOF
echo "model version $v1_version -> $v2_version (same weights: no second trained model exists)"
build "$V2_IMAGE" "$ctx" -f deploy/local/model-update.Dockerfile --build-arg FROM_IMAGE="$TRANSLATOR_IMAGE"

step "load balancer image $LB_IMAGE (HAProxy from Debian's package)"
build "$LB_IMAGE" deploy/local -f deploy/local/haproxy.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE"
docker run --rm --entrypoint haproxy "$LB_IMAGE" -v | sed -n 1p
docker run --rm --entrypoint haproxy -v "$REPO/deploy/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro" "$LB_IMAGE" \
  -c -f /etc/haproxy/haproxy.cfg

step "Prometheus image $PROMETHEUS_IMAGE (Debian's binary)"
pctx=$COMPOSE_TEST_CACHE/prometheus-context
mkdir -p "$pctx" && cp /usr/bin/prometheus /usr/bin/promtool "$pctx/"
build "$PROMETHEUS_IMAGE" "$pctx" -f deploy/local/prometheus.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE"

# -- 3. up ----------------------------------------------------------------------------------------------------
step "docker-compose -f deploy/compose.scale.yml config -q"
compose config -q && echo valid

LB=http://$LB_PUBLISH; STATS=http://$LB_STATS_PUBLISH; P=http://$PROMETHEUS_PUBLISH
pq() { curl -sS --fail -G "$P/api/v1/query" --data-urlencode "query=$1"; }
pqv() {     # pqv QUERY: "labels value" per series
  pq "$1" | "$PY" -c 'import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())) or "{}", r["value"][1])'
}
replicas() { compose ps -q translator; }
name_of() { docker inspect -f '{{.Name}}' "$1" | cut -c2-; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
REPLICA_LOG=$OUT/replicas.txt; : >"$REPLICA_LOG"
remember() { local c; for c in $(replicas); do echo "$(ip_of "$c"):8000 $(name_of "$c") $(docker inspect -f '{{.Config.Image}}' "$c")" >>"$REPLICA_LOG"; done; sort -u -o "$REPLICA_LOG" "$REPLICA_LOG"; }
wait_healthy() {   # wait_healthy CONTAINER
  local i h
  for i in $(seq 120); do
    h=$(docker inspect -f '{{.State.Health.Status}}' "$1")
    [ "$h" = healthy ] && { note "$(name_of "$1") healthy after ${i} s"; return 0; }
    [ "$(docker inspect -f '{{.State.Status}}' "$1")" = exited ] && { docker logs --tail 30 "$1"; die "$(name_of "$1") exited"; }
    sleep 1
  done
  docker logs --tail 30 "$1"; die "$(name_of "$1") not healthy after 120 s"
}
lb_up() { curl -sS --fail "$STATS/stats;csv" | awk -F, '$1 == "translators" && $2 != "BACKEND" && $18 == "UP"' | wc -l; }
wait_lb_up() {     # wait_lb_up N: HAProxy's health checks see N replicas UP
  local i
  for i in $(seq 60); do [ "$(lb_up 2>/dev/null)" = "$1" ] && { note "HAProxy: $1 replicas UP"; return 0; }; sleep 0.5; done
  curl -sS "$STATS/stats;csv" | cut -d, -f1,2,18,19 | sed -n 1,12p; die "HAProxy does not see $1 replicas UP"
}

step "docker-compose up -d --scale translator=$REPLICAS translator lb prometheus"
UP=1
compose up -d --no-build --scale translator=$REPLICAS translator lb prometheus
for c in $(replicas); do wait_healthy "$c"; done
remember
compose ps
c1=$(replicas | sed -n 1p)
echo "replica limits: NanoCpus=$(docker inspect -f '{{.HostConfig.NanoCpus}}' "$c1") Memory=$(docker inspect -f '{{.HostConfig.Memory}}' "$c1") ReadonlyRootfs=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$c1")"
wait_lb_up $REPLICAS

step "through HAProxy ($LB)"
curl -sS --fail-with-body "$LB/translate" -H 'Content-Type: application/json' -d '{"q": "How are you?"}'; echo
for _ in 1 2 3 4; do curl -sS --fail "$LB/v1/models" | "$PY" -c 'import json, sys; print("GET /v1/models: version", json.load(sys.stdin)["models"][0]["version"])'; done
code=$(curl -sS -o /dev/null -w '%{http_code}' "$LB/translate" -H 'Content-Type: application/json' -d '{"q": "Hi", "target": "de"}')
[ "$code" = 400 ] || die "an unsupported pair through HAProxy answered $code, not 400"; echo "unsupported pair -> 400"

step "Prometheus: DNS service discovery of every replica"
for i in $(seq 60); do
  n=$(pqv 'up{job="translator"} == 1' | wc -l); [ "$n" = $REPLICAS ] && break; sleep 1
done
[ "$n" = $REPLICAS ] || die "Prometheus scrapes $n translator targets, not $REPLICAS"
curl -sS --fail "$P/api/v1/targets?state=active" | "$PY" -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("target", t["labels"]["job"].ljust(11), t["scrapeUrl"].ljust(34), t["health"].ljust(5), t["discoveredLabels"].get("__meta_dns_name", "static"))'

# -- 4. load, rolling restart, rolling model update ----------------------------------------------------------
step "Locust through HAProxy: $USERS users, ${LOAD_SECONDS} s, --slo-max-failure-ratio 0"
"$PY" -m locust -f load/locustfile.py --headless --only-summary -u "$USERS" -r 4 -t "${LOAD_SECONDS}s" \
  --host "$LB" --csv "$OUT/load" --slo-max-failure-ratio 0 --slo-p95-ms 5000 --slo-min-rps 1 \
  --slo-report "$OUT/load_slo.json" >"$OUT/locust.log" 2>&1 &
LOCUST_PID=$!
LOAD_END=$(( $(date +%s) + LOAD_SECONDS ))
sleep 25

step "both replicas serve traffic (requests per replica in Prometheus, last 20 s)"
pqv 'sum by (instance) (increase(translator_requests_total{job="translator"}[20s]))'
[ "$(pqv 'sum by (instance) (increase(translator_requests_total{job="translator"}[20s])) > 0' | wc -l)" = $REPLICAS ] \
  || die "not every replica served requests"

step "rolling restart: one replica at a time, SIGTERM (drain), start, healthy"
for c in $(replicas); do
  n=$(name_of "$c"); s=$(date +%s.%N)
  docker stop -t 30 "$c" >/dev/null
  rc=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  note "$n stopped in $("$PY" -c "print(round($(date +%s.%N) - $s, 1))") s, exit code $rc (0 = drained; 137 = SIGKILL)"
  docker logs --tail 6 "$c" 2>&1 | sed 's/^/    /'
  [ "$rc" = 0 ] || die "$n did not exit 0 on SIGTERM"
  docker start "$c" >/dev/null
  wait_healthy "$c"
  wait_lb_up $REPLICAS
done

step "rolling model update to $v2_version: add a v2 replica, wait healthy, drain and remove an old one (x$REPLICAS)"
old=$(replicas); added=""
export TRANSLATOR_IMAGE=$V2_IMAGE
for c in $old; do
  compose up -d --no-build --no-deps --no-recreate --scale translator=$(( REPLICAS + 1 )) translator 2>&1 | grep -v 'is up-to-date' || true
  new=$(comm -13 <(printf '%s\n' $old $added | sort) <(replicas | sort))     # the container just added
  added="$added $new"
  [ "$(echo "$new" | wc -w)" = 1 ] && [ "$(docker inspect -f '{{.Config.Image}}' "$new")" = "$V2_IMAGE" ] \
    || die "docker-compose did not add one $V2_IMAGE replica (new: ${new:-none})"
  note "added $(name_of "$new") ($V2_IMAGE)"
  wait_healthy "$new"
  remember
  wait_lb_up $(( REPLICAS + 1 ))
  n=$(name_of "$c"); s=$(date +%s.%N)
  docker stop -t 30 "$c" >/dev/null
  rc=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  note "$n (old version) drained in $("$PY" -c "print(round($(date +%s.%N) - $s, 1))") s, exit code $rc"
  [ "$rc" = 0 ] || die "$n did not exit 0 on SIGTERM"
  docker rm "$c" >/dev/null
  wait_lb_up $REPLICAS
  for _ in 1 2 3 4; do curl -sS --fail "$LB/v1/models" | "$PY" -c 'import json, sys; print("    GET /v1/models:", json.load(sys.stdin)["models"][0]["version"])'; done
done
compose ps

UPDATED_AT=$(date +%s)
step "GET /v1/models through HAProxy after the update (8 requests, both replicas)"
for _ in $(seq 8); do
  v=$(curl -sS --fail "$LB/v1/models" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["models"][0]["version"])')
  echo "version $v"; [ "$v" = "$v2_version" ] || die "/v1/models answered $v after the update, not $v2_version"
done

left=$(( LOAD_END - $(date +%s) ))
[ "$left" -ge 15 ] || die "the load ended (or nearly) before the rolling update finished: raise COMPOSE_SCALE_LOAD_SECONDS"
step "waiting for Locust to finish (${left} s of load left, on the updated replicas)"
lrc=0; wait "$LOCUST_PID" || lrc=$?; LOCUST_PID=""
grep -vE 'DeprecationWarning|^\s*$' "$OUT/locust.log" | tail -n 32
echo "locust exit code: $lrc (0 = every SLO gate passed, failure ratio 0 included)"
"$PY" - "$OUT/load_slo.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("Locust totals:", json.dumps({k: r[k] for k in r if k not in ("thresholds",)}))
PYEOF
[ "$lrc" = 0 ] || die "Locust: failed requests or missed gates (exit $lrc)"

# -- 5. what Prometheus saw -----------------------------------------------------------------------------------
step "per-replica requests over the whole run (Prometheus, instance = replica address)"
sleep 6    # one more scrape of the final counters
echo "replicas (address, container, image):"; sed 's/^/  /' "$REPLICA_LOG"
range=$(( $(date +%s) - T0 ))s
pqv "sum by (instance) (increase(translator_requests_total{job=\"translator\"}[$range]))" | tee "$OUT/per-replica.txt"
echo "(a new container may get a removed one's address: the v2 replicas are checked on their own below)"
since=$(( $(date +%s) - UPDATED_AT ))s
step "the updated replicas serve traffic (requests per replica in the $since since the update)"
pqv "sum by (instance) (increase(translator_requests_total{job=\"translator\"}[$since]))"
for c in $(replicas); do
  n=$(pq "sum(increase(translator_requests_total{job=\"translator\",instance=\"$(ip_of "$c"):8000\"}[$since]))" \
      | "$PY" -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(round(float(r[0]["value"][1])) if r else 0)')
  echo "$(name_of "$c") ($(docker inspect -f '{{.Config.Image}}' "$c"), $(ip_of "$c")): $n requests"
  [ "$n" -gt 0 ] || die "$(name_of "$c") served no requests after the update"
done
echo "requests by status (all replicas):"; pqv "sum by (status) (increase(translator_requests_total{job=\"translator\"}[$range]))"

step "HAProxy: what the load balancer retried and redispatched (its Prometheus exporter)"
for q in "sum(haproxy_backend_retry_warnings_total{proxy=\"translators\"})" \
         "sum(haproxy_backend_redispatch_warnings_total{proxy=\"translators\"})" \
         "sum by (code) (haproxy_backend_http_responses_total{proxy=\"translators\"})" \
         "sum by (code) (haproxy_frontend_http_responses_total{proxy=\"api\"})"; do
  printf '%s\n  -> %s\n' "$q" "$(pqv "$q" | tr '\n' ' ')"
done

compose logs --no-color lb >"$OUT/lb.log" 2>&1
"$PY" - "$OUT/lb.log" <<'PYEOF'
import collections, re, sys
# httplog: ... backend/server Tq/Tw/Tc/Tr/Ta status bytes ... act/fe/be/srv/retries queue "request"
line = re.compile(r' (\S+)/(\S+) -?\d+/-?\d+/-?\d+/-?\d+/\d+ (\d{3}) .* \d+/\d+/\d+/\d+/(\+?)(\d+) \d+/\d+ "(\S+) (\S+)')
status, retried, redispatched, per_server = collections.Counter(), 0, 0, collections.Counter()
for m in filter(None, map(line.search, open(sys.argv[1], errors="replace"))):
    backend, server, code, plus, retries, method, path = m.groups()
    if path != "/translate":
        continue
    status[code] += 1
    per_server[server] += 1
    retried += int(retries) > 0
    redispatched += plus == "+"
print(f"HAProxy log, POST /translate: statuses sent to clients {dict(sorted(status.items()))}; "
      f"{retried} requests retried, {redispatched} of them redispatched to another replica; "
      f"answered by {dict(sorted(per_server.items()))}")
PYEOF

step "Grafana dashboard: every panel query, evaluated in Prometheus, sums across the replicas"
"$PY" deploy/check_dashboard.py "$P" --across-replicas
