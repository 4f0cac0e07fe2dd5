#!/usr/bin/env bash
# `make compose-test`: bring docker-compose.yml up for real, check it end to end, tear it down.
#
#  1. Tools: docker, docker-compose, debootstrap and Debian's prometheus package are apt-installed if missing.
#  2. A Docker engine: the running one, or `dockerd --iptables=false --bridge=none` started here (and stopped
#     again, by its pid, at the end).
#  3. Offline images (COMPOSE_TEST_OFFLINE=1, the default: no Docker registry is reachable here):
#     - a base image made with debootstrap (Debian bookworm, python3, python3-venv) and `docker import`;
#     - a wheelhouse (`pip download`, cp311 manylinux wheels) of the `serve` extra, setuptools and locust,
#       served to the builds on 127.0.0.1 by `python3 -m http.server`;
#     - the translator from the repo's Dockerfile (BASE_IMAGE = that base), Prometheus (Debian's binary) and
#       Locust on the same base (deploy/local/*.Dockerfile, via deploy/compose.offline.yml).
#     Grafana cannot be built here (see GRAFANA below); with COMPOSE_TEST_OFFLINE=0 (a machine that reaches
#     Docker Hub) the pinned official images of docker-compose.yml are pulled and Grafana is checked too.
#  4. `docker-compose up`, wait for the translator's healthcheck, translate through the published port,
#     check through Prometheus's HTTP API that it scraped translator_request_duration_seconds, evaluate every
#     query of the Grafana dashboard in Prometheus, check Grafana's API lists the provisioned dashboard (when
#     Grafana runs), run the `load` profile (Locust master + 2 workers, headless, SLO gates) briefly, stop
#     the translator gracefully, and `docker-compose down -v`.
# The wheelhouse, the rootfs tarball and the build contexts are cached in .cache/compose-test/ (git-ignored).
# Tools, engine, base image and wheelhouse: deploy/lib.sh (shared with deploy/compose_scale_test.sh).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
OFFLINE=${COMPOSE_TEST_OFFLINE:-1}
PROJECT=${COMPOSE_TEST_PROJECT:-engpol-compose-test}
LOAD_SECONDS=${COMPOSE_TEST_LOAD_SECONDS:-30}
# Published on loopback only, on ports unlikely to be taken by a `make serve` on the same machine.
T_PORT=${COMPOSE_TEST_TRANSLATOR_PORT:-18000}
P_PORT=${COMPOSE_TEST_PROMETHEUS_PORT:-19090}
G_PORT=${COMPOSE_TEST_GRAFANA_PORT:-13000}
export TRANSLATOR_PUBLISH=127.0.0.1:$T_PORT PROMETHEUS_PUBLISH=127.0.0.1:$P_PORT GRAFANA_PUBLISH=127.0.0.1:$G_PORT
export LOCUST_PUBLISH=127.0.0.1:${COMPOSE_TEST_LOCUST_PORT:-18089}

# -- 1. tools -------------------------------------------------------------------------------------------------
step "tools"
if [ "$OFFLINE" = 1 ]; then need_tools offline; else need_tools; fi

# -- 2. the engine --------------------------------------------------------------------------------------------
UP=0
compose() { docker-compose -p "$PROJECT" "${COMPOSE_FILES[@]}" "$@"; }
cleanup() {
  rc=$?
  set +e
  if [ "$UP" = 1 ]; then
    step "teardown: docker-compose down -v"
    compose --profile load --profile gpu down -v --remove-orphans --timeout 40 2>&1 | tail -n 20
  fi
  finish compose-test $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Docker engine"
start_engine

# -- 3. images ------------------------------------------------------------------------------------------------
COMPOSE_FILES=(-f docker-compose.yml)
SERVICES=(translator prometheus grafana)
if [ "$OFFLINE" = 1 ]; then
  COMPOSE_FILES+=(-f deploy/compose.offline.yml)
  export BASE_IMAGE=local/debian-python:$SUITE
  export PROMETHEUS_IMAGE=local/prometheus:debian-$SUITE LOCUST_IMAGE=local/locust:$LOCUST_VERSION
  export TRANSLATOR_IMAGE=eng-pol-translator:compose-test

  step "base image $BASE_IMAGE (debootstrap $SUITE minbase + python3, docker import)"
  base_image

  step "wheelhouse (serve extra + setuptools + locust==$LOCUST_VERSION, cp311 manylinux wheels)"
  wheelhouse
  serve_wheels

  # build contexts for the local Prometheus and Locust images
  mkdir -p "$COMPOSE_TEST_CACHE/prometheus-context" "$COMPOSE_TEST_CACHE/locust-context"
  cp /usr/bin/prometheus /usr/bin/promtool "$COMPOSE_TEST_CACHE/prometheus-context/"
  cp deploy/local/prometheus.Dockerfile "$COMPOSE_TEST_CACHE/prometheus-context/Dockerfile"
  cp deploy/local/locust.Dockerfile "$COMPOSE_TEST_CACHE/locust-context/Dockerfile"
  SERVICES=(translator prometheus)       # GRAFANA: no image can be had offline, see the note printed below
fi

step "docker-compose config -q"
compose --profile load --profile gpu config -q && echo "valid"
echo "services: $(compose --profile load --profile gpu config --services | tr '\n' ' ')"
echo "profiles: $(compose config --profiles | tr '\n' ' ')"

if [ "$OFFLINE" = 1 ]; then
  step "docker-compose build translator prometheus locust-master"
  compose --profile load build translator prometheus locust-master 2>&1 \
    | grep -vE '^ ---> |^Removing intermediate|^\s*$|Downloading|Collecting|Using cached|^\s+Obtaining|━━' \
    | grep -vE '^(Step [0-9]+/[0-9]+ : (LABEL|ENV|ARG|WORKDIR|EXPOSE))' | tail -n 80
else
  step "docker-compose pull + build"
  compose --profile load pull prometheus grafana locust-master
  compose build translator
fi
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
  | grep -E "^(${TRANSLATOR_IMAGE:-eng-pol-translator:latest}|${PROMETHEUS_IMAGE:-prom/prometheus:v2.55.1}|${LOCUST_IMAGE:-locustio/locust:2.32.4}|${BASE_IMAGE:-python:3.11-slim-bookworm}) "
timg=${TRANSLATOR_IMAGE:-eng-pol-translator:latest}
echo "translator image: user $(docker image inspect -f '{{.Config.User}}' "$timg"), cmd $(docker image inspect -f '{{json .Config.Cmd}}' "$timg"), healthcheck $(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$timg" | cut -c1-60)..."
docker run --rm --entrypoint sh "$timg" -c '
  python -c "import importlib.util as u; print(\"torch installed:\", u.find_spec(\"torch\") is not None)"
  for t in gcc cc g++ pip; do command -v $t >/dev/null && echo "$t: $(command -v $t)" || echo "$t: absent"; done
  id'

# -- 4. up ----------------------------------------------------------------------------------------------------
step "docker-compose up -d ${SERVICES[*]}"
UP=1
compose up -d "${SERVICES[@]}"
cid=$(compose ps -q translator)
echo "translator container limits: NanoCpus=$(docker inspect -f '{{.HostConfig.NanoCpus}}' "$cid") Memory=$(docker inspect -f '{{.HostConfig.Memory}}' "$cid") ReadonlyRootfs=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$cid")"

step "waiting for the translator's healthcheck"
for i in $(seq 180); do
  h=$(docker inspect -f '{{.State.Health.Status}}' "$cid")
  [ "$h" = healthy ] && break
  [ "$(docker inspect -f '{{.RestartCount}}' "$cid")" = 0 ] && [ "$(docker inspect -f '{{.State.Status}}' "$cid")" != exited ] \
    || { compose logs --no-color translator | tail -n 40; die "the translator container exited"; }
  sleep 1
done
[ "$h" = healthy ] || { compose logs translator | tail -n 40; die "translator not healthy after 180 s ($h)"; }
echo "healthy after ${i} s"
compose ps

step "translate through the published port $TRANSLATOR_PUBLISH"
T=http://$TRANSLATOR_PUBLISH
curl -sS --fail-with-body "$T/translate" -H 'Content-Type: application/json' -d '{"q": "How are you?", "source": "en", "target": "pl"}'; echo
curl -sS --fail-with-body "$T/translate" -H 'Content-Type: application/json' \
  -d '{"q": ["I would like to buy a new car.", "Where is the train station?"], "alternatives": 1}'; echo
body=$COMPOSE_TEST_CACHE/last-body.json
code=$(curl -sS -o "$body" -w '%{http_code}' "$T/translate" -H 'Content-Type: application/json' -d '{"q": "Hi", "target": "de"}')
cat "$body"; echo " -> HTTP $code"
[ "$code" = 400 ] || die "expected 400 for an unsupported pair, got $code"
echo "GET /v1/models: $(curl -sS --fail "$T/v1/models" | cut -c1-400)"
for _ in $(seq 10); do curl -sS -o /dev/null "$T/translate" -H 'Content-Type: application/json' -d '{"q": "Thank you very much."}'; done

step "Prometheus (http://$PROMETHEUS_PUBLISH): scrape of translator_request_duration_seconds"
P=http://$PROMETHEUS_PUBLISH
pq() { curl -sS --fail -G "$P/api/v1/query" --data-urlencode "query=$1"; }
ok=0
for i in $(seq 60); do
  if pq 'sum(translator_request_duration_seconds_count{job="translator"})' 2>/dev/null \
      | "$PY" -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and float(r[0]["value"][1]) > 0 else 1)'; then
    ok=1; break
  fi
  sleep 1
done
[ "$ok" = 1 ] || { compose logs prometheus | tail -n 30; die "Prometheus has no translator_request_duration_seconds_count > 0 after 60 s"; }
echo "scraped after ${i} s:"
pq 'translator_request_duration_seconds_count'; echo
curl -sS --fail "$P/api/v1/targets?state=active" | "$PY" -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("target", t["labels"]["job"].ljust(15), t["scrapeUrl"].ljust(40), t["health"].ljust(8), t["lastError"][:70])'

echo "datasource URL from inside the stack's network: $(compose exec -T translator python -c "import urllib.request; print(urllib.request.urlopen('http://prometheus:9090/-/ready', timeout=5).read().decode().strip())")"

if [[ " ${SERVICES[*]} " == *" grafana "* ]]; then
  step "Grafana (http://$GRAFANA_PUBLISH): provisioned dashboard"
  G=http://$GRAFANA_PUBLISH
  for i in $(seq 120); do curl -sf "$G/api/health" >/dev/null && break; sleep 1; done
  found=$(curl -sS --fail -u "${GRAFANA_ADMIN_USER:-admin}:${GRAFANA_ADMIN_PASSWORD:-admin}" "$G/api/search?type=dash-db&query=Translator")
  echo "$found"
  grep -q '"uid":"translator"' <<<"$found" || die "Grafana does not list the provisioned dashboard"
  curl -sS --fail -u "${GRAFANA_ADMIN_USER:-admin}:${GRAFANA_ADMIN_PASSWORD:-admin}" "$G/api/datasources/uid/prometheus" | head -c 300; echo
else
  step "GRAFANA NOT STARTED: no Grafana image or binary can be obtained on this machine"
  echo "No Docker registry is reachable here, and Grafana is packaged neither by Debian nor on PyPI or npm, so"
  echo "grafana/grafana cannot be pulled or built offline. Checked instead: the dashboard's queries (below, against"
  echo "the real Prometheus), the datasource URL from inside the stack's network (above), and the files (tests/test_deploy.py)."
  echo "With COMPOSE_TEST_OFFLINE=0 on a machine that reaches Docker Hub this step runs Grafana and asks its API."
fi

step "load profile: Locust master + 2 workers, headless, ${LOAD_SECONDS}s"
export LOCUST_HEADLESS=true LOCUST_USERS=${LOCUST_USERS:-8} LOCUST_SPAWN_RATE=${LOCUST_SPAWN_RATE:-4}
export LOCUST_RUN_TIME=${LOAD_SECONDS}s LOCUST_WORKERS=2
compose --profile load up -d --scale locust-worker=2 locust-master locust-worker
master=$(compose --profile load ps -q locust-master)
lrc=$(timeout $(( LOAD_SECONDS + 120 )) docker wait "$master") || die "Locust master did not finish"
compose --profile load logs --no-color locust-master | sed 's/^[^|]*| //' \
  | grep -vE 'DeprecationWarning|^\s*$' | tail -n 40
echo "locust-master exit code: $lrc (0 = every SLO gate passed)"
[ "$lrc" = 0 ] || die "Locust run failed its SLO gates (exit $lrc)"

step "Prometheus after the load run"
for q in 'sum by (status) (translator_requests_total)' \
         'histogram_quantile(0.95, sum by (le) (rate(translator_request_duration_seconds_bucket[1m])))' \
         'histogram_quantile(0.95, sum by (le) (rate(translator_batch_size_bucket[1m])))' \
         'max_over_time(translator_active_sequences[2m])'; do
  printf '%s\n  -> %s\n' "$q" "$(pq "$q" | "$PY" -c 'import json, sys; print([(r["metric"], r["value"][1]) for r in json.load(sys.stdin)["data"]["result"]])')"
done

step "Grafana dashboard: every panel query evaluated in Prometheus (after the load run)"
"$PY" deploy/check_dashboard.py "$P"

step "graceful stop: docker-compose stop translator (stop_grace_period 30 s, TRANSLATOR_SHUTDOWN_GRACE_S 20 s)"
s=$(date +%s.%N)
compose stop translator
echo "stopped in $("$PY" -c "print(round($(date +%s.%N) - $s, 1))") s, exit code $(docker inspect -f '{{.State.ExitCode}}' "$cid") (137 would mean SIGKILL)"
compose logs --no-color translator | sed 's/^[^|]*| //' | tail -n 8
[ "$(docker inspect -f '{{.State.ExitCode}}' "$cid")" = 0 ] || die "the translator did not exit 0 on SIGTERM"
