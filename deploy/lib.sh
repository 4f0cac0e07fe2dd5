# What deploy/compose_test.sh and deploy/compose_scale_test.sh share; sourced by both (after `set -euo pipefail`):
#   - settings: REPO (the working directory from here on), COMPOSE_TEST_CACHE (.cache/compose-test, git-ignored:
#     the rootfs tarball, the wheelhouse, build contexts, logs), SUITE, MIRROR, LOCUST_VERSION, PY;
#   - step/note/die, timed from T0;
#   - need_tools [offline]: docker, docker-compose (and for offline images debootstrap, Debian's prometheus),
#     apt-installed if missing;
#   - start_engine: the running Docker engine, or `dockerd --iptables=false --bridge=none` started here;
#   - base_image: BASE_IMAGE made with debootstrap (Debian SUITE, python3, python3-venv) and `docker import`;
#   - wheelhouse: cp311 manylinux wheels of the `serve` extra, setuptools and locust, in $wheels;
#     serve_wheels: served on 127.0.0.1:WHEEL_PORT (PIP_FIND_LINKS) by `python3 -m http.server`. The port is
#     fixed (COMPOSE_TEST_WHEEL_PORT, default 18998): it is a Docker build argument, and a new one each run would
#     invalidate the translator image's layer cache;
#   - finish NAME RC: from the caller's EXIT trap: stops the wheel server and the engine started here (by pid),
#     prints NAME's verdict and exits RC.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export COMPOSE_TEST_CACHE=${COMPOSE_TEST_CACHE:-$REPO/.cache/compose-test}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export LOCUST_VERSION=${LOCUST_VERSION:-2.32.4}
WHEEL_PORT=${COMPOSE_TEST_WHEEL_PORT:-18998}
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0 COMPOSE_INTERACTIVE_NO_CLI=1
PY=python3; [ -x "$REPO/.venv/bin/python" ] && PY="$REPO/.venv/bin/python"
mkdir -p "$COMPOSE_TEST_CACHE"
DOCKERD_PID=""; WHEEL_SERVER_PID=""

T0=$(date +%s)
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
note() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

need_tools() {    # need_tools [offline]
  local missing=()
  { command -v docker && command -v dockerd; } >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  if [ "${1:-}" = offline ]; then
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ -x /usr/bin/prometheus ] || missing+=(prometheus)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  docker --version; docker-compose version --short
}

start_engine() {
  if docker info >/dev/null 2>&1; then
    echo "using the running engine"
  else
    echo "starting dockerd --iptables=false --bridge=none (log: $COMPOSE_TEST_CACHE/dockerd.log)"
    dockerd --iptables=false --bridge=none >"$COMPOSE_TEST_CACHE/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -n 20 "$COMPOSE_TEST_CACHE/dockerd.log"; die "dockerd did not come up"; }
  fi
  docker info --format 'engine {{.ServerVersion}}, storage driver {{.Driver}}, {{.NCPU}} CPUs, {{.MemTotal}} bytes'
}

base_image() {
  local tarball rootfs
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "present"
  else
    tarball=$COMPOSE_TEST_CACHE/rootfs-$SUITE.tar
    if [ ! -s "$tarball" ]; then
      rootfs=$(mktemp -d /var/tmp/rootfs.XXXXXX)
      echo "debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates $SUITE $rootfs $MIRROR"
      debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$rootfs" "$MIRROR" \
        >"$COMPOSE_TEST_CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$COMPOSE_TEST_CACHE/debootstrap.log"; die "debootstrap"; }
      rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
      tar -C "$rootfs" -c . >"$tarball.part" && mv "$tarball.part" "$tarball"
      rm -rf "$rootfs"
    else
      echo "cached rootfs: $tarball"
    fi
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tarball" "$BASE_IMAGE"
  fi
  docker run --rm "$BASE_IMAGE" python3 -c 'import sys, platform; print("base:", platform.freedesktop_os_release()["PRETTY_NAME"], "python", sys.version.split()[0])'
}

wheelhouse() {
  local serve_reqs reqs stamp pip_dl t
  wheels=$COMPOSE_TEST_CACHE/wheels
  mkdir -p "$wheels"
  mapfile -t serve_reqs < <("$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["serve"]))')
  reqs=("${serve_reqs[@]}" "setuptools>=68" "locust==$LOCUST_VERSION")
  stamp=$(printf '%s\n' "${reqs[@]}" | sha256sum | cut -c1-16)
  if [ -f "$wheels/.stamp-$stamp" ]; then
    echo "cached: $(ls "$wheels"/*.whl | wc -l) wheels for this requirement set"
    return
  fi
  pip_dl=("$PY" -m pip download --quiet --disable-pip-version-check --dest "$wheels" --only-binary=:all:
          --implementation cp --python-version 3.11)
  # the base's glibc is 2.36: every manylinux tag up to it (pip does not widen a custom --platform itself)
  for t in manylinux1 manylinux2010 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
           manylinux_2_31 manylinux_2_34 manylinux_2_35 manylinux_2_36; do pip_dl+=(--platform "${t}_x86_64"); done
  # the host's pip.conf names optional local indexes: their warnings are left out
  "${pip_dl[@]}" "${serve_reqs[@]}" "setuptools>=68" 2>&1 | { grep -v "^WARNING: Location '" || true; }
  "${pip_dl[@]}" "locust==$LOCUST_VERSION" 2>&1 | { grep -v "^WARNING: Location '" || true; }
  rm -f "$wheels"/.stamp-*; touch "$wheels/.stamp-$stamp"
  echo "$(ls "$wheels"/*.whl | wc -l) wheels"
}

serve_wheels() {
  python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$WHEEL_PORT" >/dev/null 2>&1 &
  WHEEL_SERVER_PID=$!
  export PIP_FIND_LINKS=http://127.0.0.1:$WHEEL_PORT/
  for _ in $(seq 20); do "$PY" -c "import urllib.request; urllib.request.urlopen('$PIP_FIND_LINKS')" 2>/dev/null && break; sleep 0.25; done
  kill -0 "$WHEEL_SERVER_PID" 2>/dev/null || die "the wheel server did not start: is port $WHEEL_PORT taken? (COMPOSE_TEST_WHEEL_PORT)"
  echo "served at $PIP_FIND_LINKS (pip: PIP_NO_INDEX=1, PIP_FIND_LINKS)"
}

finish() {        # finish NAME RC
  [ -n "$WHEEL_SERVER_PID" ] && kill "$WHEEL_SERVER_PID" 2>/dev/null
  if [ -n "$DOCKERD_PID" ]; then
    step "stopping the Docker engine started here (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && echo "dockerd still running after 30 s" || echo "dockerd stopped"
  fi
  step "$1 $([ "$2" = 0 ] && echo PASSED || echo "FAILED (exit $2)") in $(( $(date +%s) - T0 )) s"
  exit "$2"
}
