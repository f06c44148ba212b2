#!/usr/bin/env bash
# Prepares this machine for `make run` and `make test`: installs and starts
# what is missing, and does nothing where all is in place, so running it again
# is cheap. It needs root on Debian 12 (apt-get); nothing is pulled from a
# container registry.
#
#   - Docker engine (Debian's docker.io); dockerd is started in the background
#     when no engine answers
#   - PostgreSQL (Debian's postgresql); the cluster is started, and a
#     superuser role for the calling OS user is created so that the default
#     database URL (peer authentication over /var/run/postgresql) works
#   - the database sandboxd
#   - busybox-static, and the image sandboxd-test/busybox:latest built from it
set -euo pipefail

IMAGE=${SANDBOXD_TEST_IMAGE:-sandboxd-test/busybox:latest}
STATE=${SANDBOXD_DEV_DIR:-$(pwd)/.dev}
mkdir -p "$STATE"

log() { printf 'setup: %s\n' "$*" >&2; }

apt_updated=
need_pkg() { # need_pkg PACKAGE...: install the packages not yet installed
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages ${missing[*]}: run as root, or install them"; exit 1
  fi
  if [ -z "$apt_updated" ]; then
    log "apt-get update"; apt-get update -q >"$STATE/apt.log" 2>&1 || { cat "$STATE/apt.log"; exit 1; }
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >>"$STATE/apt.log" 2>&1 || { tail -50 "$STATE/apt.log"; exit 1; }
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "$what did not come up"; return 1; fi
    sleep 0.2
  done
}

# --- Docker engine -----------------------------------------------------------
need_pkg docker.io busybox-static postgresql ca-certificates
docker_ok() { docker version --format '{{.Server.Version}}'; }
if ! docker_ok >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer"; exit 1
  fi
  # An engine killed without a shutdown leaves pid files behind; with no
  # engine running they are stale, and a reused pid would stop the new one.
  # An engine still exiting holds them a moment longer: try again.
  for try in 1 2 3; do
    if ! pgrep -x dockerd >/dev/null; then
      rm -f /var/run/docker.pid
      pgrep -x containerd >/dev/null || rm -f /var/run/docker/containerd/containerd.pid
    fi
    log "starting dockerd (log: $STATE/dockerd.log)"
    nohup dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
    pid=$!
    # Up as soon as it answers; a try ends early if dockerd exits.
    deadline=$((SECONDS + 60))
    until docker_ok >/dev/null 2>&1 || ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
    docker_ok >/dev/null 2>&1 && break
    if [ "$try" = 3 ]; then log "dockerd did not come up"; tail -30 "$STATE/dockerd.log"; exit 1; fi
    sleep 2
  done
fi
log "docker engine $(docker_ok)"

# --- PostgreSQL ----------------------------------------------------------------
pg_ok() { pg_isready -q -h /var/run/postgresql; }
if ! pg_ok; then
  read -r ver cluster _ < <(pg_lsclusters -h | head -1) || true
  if [ -z "${ver:-}" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1); cluster=main
    log "creating PostgreSQL cluster $ver/$cluster"
    pg_createcluster "$ver" "$cluster" >/dev/null
  fi
  log "starting PostgreSQL $ver/$cluster"
  # A server killed without a shutdown leaves its lock files; the new one
  # refuses them while their pid still names a process (a zombie not yet
  # reaped, or a pid reused). With no postgres process running they are
  # stale: remove them and try again.
  for try in 1 2 3 4 5; do
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start 2>"$STATE/pg-start.log" && break
    if [ "$try" = 5 ]; then cat "$STATE/pg-start.log"; exit 1; fi
    if ! pgrep -u postgres -x postgres >/dev/null; then
      log "removing stale PostgreSQL lock files"
      rm -f /var/run/postgresql/.s.PGSQL.*.lock "/var/lib/postgresql/$ver/$cluster/postmaster.pid"
    fi
    sleep 1
  done
  wait_for 60 postgresql pg_ok
fi
me=$(id -un)
if [ "$me" != postgres ] && ! psql -h /var/run/postgresql -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  log "creating PostgreSQL superuser role $me"
  runuser -u postgres -- psql -q -h /var/run/postgresql -d postgres \
    -c "CREATE ROLE \"$me\" SUPERUSER LOGIN"
fi
if [ "$(psql -h /var/run/postgresql -d postgres -tAc "select 1 from pg_database where datname = 'sandboxd'")" != 1 ]; then
  log "creating database sandboxd"
  psql -q -h /var/run/postgresql -d postgres -c 'CREATE DATABASE sandboxd'
fi
log "postgresql $(psql -h /var/run/postgresql -d postgres -tAc 'show server_version')"

# --- the sandbox image -----------------------------------------------------------
# Built FROM scratch out of Debian's static busybox: no registry is reached.
# Its default command waits, so that a sandbox created without a cmd stays up
# for execs. The image is rebuilt when the busybox binary or this recipe
# changes (recipe version 2).
bb=$(command -v busybox)
sum=$( (cat "$bb"; echo recipe-2) | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "io.sandboxd.busybox-sum"}}' "$IMAGE" 2>/dev/null)" != "$sum" ]; then
  log "building $IMAGE"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$bb" "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
LABEL io.sandboxd.busybox-sum="$sum"
CMD ["sleep", "infinity"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >"$STATE/build.log" 2>&1 || { cat "$STATE/build.log"; exit 1; }
fi
log "image $IMAGE ready"
