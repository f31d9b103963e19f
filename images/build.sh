#!/usr/bin/env bash
# Builds the Lapis images without pulling anything from a registry:
#   lapis/base:bookworm        Debian bookworm minbase (debootstrap from the Debian mirror), imported; cached
#   lapis/node:<node version>  distroless-style Node.js runtime (images/node/Dockerfile): node + its libraries
#   lapis/<service>:<version>  one per service, from images/service/Dockerfile (build arguments below)
# and prints each service image's size and digest (the image id; with --push, the registry
# digest as well, which is what the chart's <component>.image.digest takes).
#
# Usage: images/build.sh [--push REGISTRY] [service...]   (or `images/build.sh base`: the base alone)
#   Needs: docker, debootstrap (first run only: apt-get install debootstrap), node >= 20.19 and
#   npm, and the built tree (npx tsc -b services/<service>: proto/dist, services/*/dist).
# Environment: LAPIS_IMAGE_VERSION (default: the service's package.json version),
#   LAPIS_IMAGE_CACHE (default /var/cache/lapis-images: the base's rootfs, each service's
#   production node_modules per lock file), NODE_BIN (default: node on PATH),
#   DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LAPIS_IMAGE_CACHE:-/var/cache/lapis-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODE_BIN=$(readlink -f "${NODE_BIN:-$(command -v node)}")
NODE_VERSION=$("$NODE_BIN" --version | sed 's/^v//')
NODE_MAJOR=${NODE_VERSION%%.*}
BASE_IMAGE=lapis/base:bookworm
NODE_IMAGE=lapis/node:$NODE_VERSION
ALL_SERVICES=(container-runtime image-sync scheduler tosca-orchestrator occi-gateway)

# What differs between the service images (images/service/Dockerfile's build arguments).
# FINAL: the runtime agent needs host tools (losetup, mount, mkfs.ext4); the rest are distroless.
# NODE_FLAGS: a 64 MiB young generation where a request allocates much that dies at once
# (scheduler placements, orchestrator parses; their READMEs, Benchmark).
service_args() {
  case "$1" in
    container-runtime) printf '%s\n' FINAL=host-tools PORTS=50051 ;;
    image-sync) printf '%s\n' FINAL=distroless PORTS=50052 ;;
    scheduler) printf '%s\n' FINAL=distroless PORTS=50053 NODE_FLAGS=--max-semi-space-size=64 ;;
    tosca-orchestrator) printf '%s\n' FINAL=distroless PORTS=50054 NODE_FLAGS=--max-semi-space-size=64 ;;
    occi-gateway) printf '%s\n' FINAL=distroless 'PORTS=50055 8787' ;;
    *) return 1 ;;
  esac
}

PUSH=""
SERVICES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --push) PUSH=${2:?--push needs a registry (host:port[/path])}; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) SERVICES+=("$1"); shift ;;
  esac
done
[ ${#SERVICES[@]} -gt 0 ] || SERVICES=("${ALL_SERVICES[@]}")

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'images/build.sh: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not on PATH"
docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running?)"
case "$NODE_MAJOR" in ''|*[!0-9]*) die "cannot tell the version of $NODE_BIN" ;; esac
[ "$NODE_MAJOR" -ge 20 ] || die "node $NODE_VERSION is too old: the services need >= 20.19"
mkdir -p "$CACHE"

# 1. The base: Debian bookworm minbase, with CA certificates and e2fsprogs (the runtime agent
#    formats volume files), made with debootstrap from the Debian mirror, trimmed, imported.
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  rootfs=$CACHE/rootfs-bookworm
  if [ ! -f "$rootfs.done" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    log "debootstrap bookworm (minbase) into $rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=ca-certificates,e2fsprogs bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || die "debootstrap failed (log: $CACHE/debootstrap.log)"
    # What a container never needs: package caches and lists, docs, man pages, translations, logs.
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
      "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old \
      "$rootfs"/dev/* "$rootfs"/tmp/* "$rootfs"/root/.bash_history
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' "$MIRROR" "$MIRROR" >"$rootfs/etc/apt/sources.list"
    touch "$rootfs.done"
  fi
  log "importing $BASE_IMAGE"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change 'LABEL org.opencontainers.image.title=lapis-base org.opencontainers.image.description="Debian bookworm minbase, debootstrap"' \
    --message "debootstrap --variant=minbase --include=ca-certificates,e2fsprogs bookworm" \
    - "$BASE_IMAGE" >/dev/null
fi

# `images/build.sh base`: the base alone (images built on it elsewhere, a test's instance image).
[ "${SERVICES[*]}" != base ] || exit 0

# 2. The Node.js runtime: this machine's node on the base's libraries (distroless-style).
if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  log "building $NODE_IMAGE"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$NODE_BIN" "$ctx/node"
  cp "$ROOT/images/node/Dockerfile" "$ctx/Dockerfile"
  docker build -q -t "$NODE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
fi
docker tag "$NODE_IMAGE" "lapis/node:$NODE_MAJOR"

# 3. Each service: a context staged from the built tree with the service's production
#    node_modules (npm ci --omit=dev -w services/<service> in a scratch copy of the manifests;
#    the checkout's node_modules is never touched), then its Dockerfile.
stage_context() {
  local service=$1 ctx=$2 dir
  [ -f "$ROOT/services/$service/dist/src/main.js" ] || die "services/$service is not built (npx tsc -b services/$service)"
  [ -d "$ROOT/proto/dist" ] && [ -f "$ROOT/proto/gen/descriptor.binpb" ] || die "proto is not generated and built (npm run proto; npx tsc -b proto)"
  # The production node_modules follow from the lock file and the manifests alone: installed
  # once per service and lock into the cache, then copied (npm ci takes minutes on 2 cores).
  local key installed
  key=$(cat "$ROOT/package-lock.json" "$ROOT/package.json" "$ROOT"/services/*/package.json "$ROOT"/tools/*/package.json \
    "$ROOT/proto/package.json" | sha256sum | cut -c1-16)
  installed=$CACHE/npm/$service-$key
  if [ ! -f "$installed.done" ]; then
    cp "$ROOT/package.json" "$ROOT/package-lock.json" "$ctx/"
    # npm ci wants every workspace of the lock file to be there (only their manifests are needed).
    for dir in $(node -e 'const l=require(process.argv[1]);for(const[k,v]of Object.entries(l.packages))if(v.link)console.log(v.resolved)' "$ROOT/package-lock.json"); do
      mkdir -p "$ctx/$dir" && cp "$ROOT/$dir/package.json" "$ctx/$dir/"
    done
    (cd "$ctx" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error -w "services/$service" >/dev/null) \
      || die "npm ci --omit=dev -w services/$service failed"
    rm -rf "$CACHE/npm/$service-"*
    mkdir -p "$installed" && cp -a "$ctx/." "$installed/" && touch "$installed.done"
  else
    cp -a "$installed/." "$ctx/"
  fi
  mkdir -p "$ctx/proto/gen"
  cp -r "$ROOT/proto/dist" "$ctx/proto/"
  cp "$ROOT/proto/gen/descriptor.binpb" "$ctx/proto/gen/"
  for dir in services/platform "services/$service"; do
    mkdir -p "$ctx/$dir/dist"
    cp -r "$ROOT/$dir/dist/src" "$ctx/$dir/dist/"
  done
  # Manifests of the workspaces this image does not hold: not needed at run time.
  for dir in $(cd "$ctx" && ls -d services/* tools/* 2>/dev/null); do
    case "$dir" in services/platform|"services/$service") ;; *) rm -rf "${ctx:?}/$dir" ;; esac
  done
  [ -d "$ctx/tools" ] && rmdir "$ctx/tools" 2>/dev/null || true
  cp "$ROOT/images/service/Dockerfile" "$ctx/Dockerfile"
}

results=()
for service in "${SERVICES[@]}"; do
  service_args "$service" >/dev/null || die "unknown service $service (one of: ${ALL_SERVICES[*]})"
  version=${LAPIS_IMAGE_VERSION:-$(node -p "require('$ROOT/services/$service/package.json').version")}
  image="lapis/$service:$version"
  ctx=$(mktemp -d)
  log "staging the context of $image"
  stage_context "$service" "$ctx"
  log "building $image"
  build_args=(--build-arg "NODE_IMAGE=$NODE_IMAGE" --build-arg "SERVICE=$service")
  while read -r kv; do build_args+=(--build-arg "$kv"); done < <(service_args "$service")
  docker build -q "${build_args[@]}" -t "$image" "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build of $image failed"; }
  rm -rf "$ctx"
  id=$(docker image inspect -f '{{.Id}}' "$image")
  size=$(docker image inspect -f '{{.Size}}' "$image")
  line="$image  $(awk -v b="$size" 'BEGIN{printf "%.1f MB", b/1e6}')  id $id"
  if [ -n "$PUSH" ]; then
    remote="${PUSH%/}/lapis/$service:$version"
    docker tag "$image" "$remote"
    docker push -q "$remote" >/dev/null || die "docker push $remote failed"
    digest=$(docker image inspect -f '{{join .RepoDigests "\n"}}' "$remote" | grep -F "${PUSH%/}/lapis/$service@" | head -1)
    line="$line  pushed ${digest:-?}"
  fi
  results+=("$line")
done

printf '\n%s\n' "image  size  digest"
printf '%s\n' "${results[@]}"
