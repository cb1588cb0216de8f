#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need: Debian packages, the Temporal CLI and moto into a
# cache outside the clone (so a fresh clone reuses them), and the npm dependencies of this clone. `npm run demo`,
# `npm test` and `npm run bench` run it first, so those commands are the whole set-up on a fresh machine.
# Safe to run twice: each step checks what is there first. A step that fails stops everything, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${BOOTC_RELEASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bootc-release}"
BIN="$CACHE/bin"
VENV="$CACHE/venv"
TEMPORAL_CLI_VERSION=1.5.1
TEMPORAL_SERVER_VERSION=1.29.1  # what v1.5.1 embeds; go-installed builds report their own version as 0.0.0-DEV
GO_MIN_VERSION=1.25             # what the Temporal CLI v1.5.1 module requires
MOTO_VERSION=5.2.5
# Every package the path needs is named, also those that arrive today only as another package's recommendation, so
# a machine configured with APT::Install-Recommends=false gets the same rig.
APT_PACKAGES=(
  build-essential python3-venv                     # ssh2's native AES-GCM binding (node-gyp); moto's venv
  openssh-server openssh-client                    # the rig's builder VMs and hypervisors are real sshd
  qemu-utils libvirt-daemon-system libvirt-clients dnsmasq-base  # libvirt storage; qemu-img for qcow2
  glance-api python3-glanceclient python3-keystone  # a real Glance, and a real Keystone for password auth
  podman runc catatonit slirp4netns fuse-overlayfs uidmap containernetworking-plugins netavark aardvark-dns iptables
  docker-registry busybox                          # the local registry; the stand-in image's userland
  e2fsprogs xfsprogs util-linux git iproute2 zstd openssl
  chromium                                         # the Temporal Web UI tested in a real browser (playwright-core)
  rabbitmq-server                                  # AMQP notifications, as Fedora's message bus speaks them
  lftp time                                        # the fetch bench's references: lftp pget -n 8; GNU time (CPU)
)

say() { printf '[tools] %s\n' "$*" >&2; }
mkdir -p "$BIN"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

if [ -x "$BIN/temporal" ] && "$BIN/temporal" --version 2>/dev/null | grep -q "Server $TEMPORAL_SERVER_VERSION"; then
  say "temporal CLI $TEMPORAL_CLI_VERSION present"
else
  command -v go >/dev/null || { say "Go >= $GO_MIN_VERSION is required to build the Temporal CLI v$TEMPORAL_CLI_VERSION; install it first"; exit 1; }
  have=$(go env GOVERSION | sed 's/^go//')
  if [ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$have" | sort -V | head -n1)" != "$GO_MIN_VERSION" ]; then
    say "Go $have is too old: the Temporal CLI v$TEMPORAL_CLI_VERSION needs Go >= $GO_MIN_VERSION ($(command -v go)); install a newer Go first"
    exit 1
  fi
  say "building the Temporal CLI v$TEMPORAL_CLI_VERSION with go install (a cold build takes several minutes)"
  start=$(date +%s)
  GOBIN="$BIN" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION"
  say "temporal CLI built in $(( $(date +%s) - start ))s"
fi

if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  say "moto $MOTO_VERSION present"
else
  say "installing moto[server]==$MOTO_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi

# npm dependencies, installed again whenever package-lock.json changed (a stamp in node_modules remembers its hash).
# node-gyp builds ssh2's native crypto against the headers shipped with this node, offline.
export npm_config_nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.bootc-release-lock.sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
  say "npm dependencies present"
else
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" >"$stamp"
fi

# Native ssh2 crypto (AES-GCM in C) is what makes the fetch fast; without it ssh2 silently falls back to slow JS
# ciphers, so a missing binding is an error here, not a surprise in the figures.
binding=node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node
if ! node -e "require('./$binding')" 2>/dev/null; then
  say "building ssh2's native crypto binding"
  npm rebuild ssh2 >&2
  node -e "require('./$binding')" || { say "ssh2's native binding ($binding) did not build: is build-essential installed?"; exit 1; }
fi

say "tools ready in $CACHE"
