#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need, into a cache outside the clone so that a fresh
# clone reuses it. Safe to run twice: each step checks what is there first. A step that fails stops everything.
set -euo pipefail

CACHE="${BOOTC_RELEASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bootc-release}"
BIN="$CACHE/bin"
VENV="$CACHE/venv"
TEMPORAL_CLI_VERSION=1.5.1
TEMPORAL_SERVER_VERSION=1.29.1  # what v1.5.1 embeds; go-installed builds report their own version as 0.0.0-DEV
MOTO_VERSION=5.2.5
APT_PACKAGES=(openssh-server openssh-client qemu-utils libvirt-daemon-system libvirt-clients glance-api
  python3-glanceclient e2fsprogs util-linux git iproute2 podman runc xfsprogs docker-registry
  python3-keystone busybox zstd openssl)  # python3-keystone: a real Keystone for the openstack target's password auth (test/rig/keystone.ts)

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
  command -v go >/dev/null || { say "go is required to build the Temporal CLI"; exit 1; }
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

# Native ssh2 crypto (AES-GCM in C) is what makes SFTP fetch fast; node-gyp must use the local headers, offline.
if [ -f package.json ] && [ -d node_modules/ssh2 ] && [ ! -f node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node ]; then
  say "building ssh2's native crypto binding"
  npm_config_nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" npm rebuild ssh2 >/dev/null
fi

say "tools ready in $CACHE"
