#!/bin/sh
# STAND-IN for bootc-image-builder (quay.io/centos-bootc/bootc-image-builder), which cannot be pulled here.
# It runs as the ENTRYPOINT of a real podman image (see image.ts) and follows the contract in
# docs/contracts.md#bootc-image-builder:
#   podman run --rm --privileged --pull=newer --security-opt label=type:unconfined_t -v CONFIG:/config.toml:ro \
#     -v OUT:/output -v /var/lib/containers/storage:/var/lib/containers/storage BIB_IMAGE \
#     --type T [--type ...] --rootfs R [--progress verbose] SOURCE_IMAGE
# - reads SOURCE_IMAGE from the mounted container storage (fails like bib when it is not there);
# - writes /output/manifest-<types>.json, then osbuild's LogMonitor text (`Pipeline build: <id>`, one
#   `org.osbuild.<stage>: <id> {` header per stage, `⏱  Duration: Ns`), then the outputs at their contract paths:
#   qcow2/disk.qcow2, image/disk.raw (ami, raw), vmdk/disk.vmdk, vpc/disk.vhd, gce/image.tar.gz, bootiso/install.iso;
# - the raw disk is sparse (BIB_STANDIN_DISK_SIZE, default 10G, like bib) with BIB_STANDIN_DATA_MIB MiB of data
#   scattered over it, derived from the source image id and the target architecture: the same image for the same
#   architecture gives the same sha256, and each architecture's disk differs;
# - the disk starts with the marker `BIB-STANDIN-ARCH=<arch>;`, so a test can tell which architecture's bytes a
#   published image holds. The target architecture is bib's: `--target-arch` when given, else the machine's. All rig
#   builders are one machine, so "the machine's" is read from where the builder put /output: the production command
#   mounts `<workDir>/<releaseId>/<arch>/<run>/output` (activities/build/bib-runs.ts); failing that, `uname -m`.
# Knobs (environment; the rig sets them through CONTAINERS_CONF `env`, so the command line stays the production one):
#   BIB_STANDIN_SECONDS   duration of the whole build (default 2)
#   BIB_STANDIN_FAIL      `enospc` (osbuild's "No space left on device" in /var/tmp, exit 1) or `exit:N`
#   BIB_STANDIN_DISK_SIZE / BIB_STANDIN_DATA_MIB   raw disk size and data written into it
# Every start appends a line to /output/bib-standin.starts, so tests can count builds.
# Stand-in rule of its own: ami and raw in one run are refused (both write image/disk.raw; bib would overwrite one).
set -eu
PATH=/usr/bin:/bin
export PATH

types=""
rootfs=""
image=""
target_arch=""
while [ $# -gt 0 ]; do
  case "$1" in
    build) shift ;;
    --type) types="$types $2"; shift 2 ;;
    --type=*) types="$types ${1#--type=}"; shift ;;
    --rootfs) rootfs=$2; shift 2 ;;
    --rootfs=*) rootfs=${1#--rootfs=}; shift ;;
    --target-arch) target_arch=$2; shift 2 ;;
    --target-arch=*) target_arch=${1#--target-arch=}; shift ;;
    --progress|--chown|--log-level|--use-librepo|--tls-verify|--config|--output) shift 2 ;;
    --progress=*|--chown=*|--log-level=*|--use-librepo=*|--tls-verify=*|--config=*|--output=*) shift ;;
    -v|--verbose) shift ;;
    -*) echo "error: unknown flag: $1" >&2; exit 2 ;;
    *)
      if [ -n "$image" ]; then echo "error: accepts 1 arg(s), received 2" >&2; exit 2; fi
      image=$1; shift ;;
  esac
done
[ -n "$image" ] || { echo 'error: accepts 1 arg(s), received 0' >&2; exit 2; }
[ -n "$types" ] || types=" qcow2"
[ -d /output ] || { echo 'error: /output is not mounted' >&2; exit 1; }
echo "start $(date +%s) $$ $image$types" >> /output/bib-standin.starts

trap 'echo "error: interrupted"; exit 143' TERM INT
nap() { sleep "$1" & wait $!; }

has() { case " $types " in *" $1 "*) return 0 ;; esac; return 1; }
if has iso && [ "$(echo $types | wc -w)" -gt 1 ]; then
  echo 'error: cannot build iso with different target types' >&2; exit 1
fi
if has ami && has raw; then
  echo 'error: ami and raw both write image/disk.raw: build them into separate output directories' >&2; exit 1
fi

# The source image must be in the mounted storage, as bib reads local storage only.
ref=$image
case "$ref" in
  */*) case "${ref%%/*}" in *.*|*:*|localhost) ;; *) ref="docker.io/$ref" ;; esac ;;
  *) ref="docker.io/library/$ref" ;;
esac
case "${ref##*/}" in *:*|*@*) ;; *) ref="$ref:latest" ;; esac
store=/var/lib/containers/storage/overlay-images/images.json
seed=$(tr '{' '\n' < "$store" 2>/dev/null \
  | sed -n 's/^"id":"\([0-9a-f]\{64\}\)".*"names":\[\([^]]*\)\].*/\1 \2/p' | grep -F "\"$ref\"" | head -n 1 | cut -c1-64 || true)
if [ -z "$seed" ]; then
  echo "error: cannot build manifest: cannot find image $image in local container storage: image not known" >&2
  exit 1
fi

is_arch() { case "$1" in x86_64|aarch64|ppc64le|s390x) return 0 ;; esac; return 1; }
arch=$target_arch
if [ -z "$arch" ]; then
  arch=$(awk '$5 == "/output" { print $4 }' /proc/self/mountinfo 2>/dev/null | awk -F/ '{ print $(NF-2) }' | head -n 1)
  is_arch "$arch" || arch=$(uname -m)
fi
is_arch "$arch" || { echo "error: unsupported target architecture: $arch" >&2; exit 2; }
echo "Target architecture: $arch"

list=$(echo $types | tr ' ' '-')
hex() { printf '%s' "$seed $arch $1" | sha256sum | cut -c1-64; }
stages_of() {
  case "$1" in
    build) echo org.osbuild.container-deploy org.osbuild.selinux ;;
    image) echo org.osbuild.truncate org.osbuild.sfdisk org.osbuild.mkfs.fat org.osbuild.mkfs.$rootfs_name org.osbuild.bootc.install-to-filesystem org.osbuild.fstab ;;
    qcow2|vmdk|vpc) echo org.osbuild.qemu ;;
    gce) echo org.osbuild.tar ;;
    bootiso) echo org.osbuild.xorrisofs org.osbuild.implantisomd5 ;;
  esac
}
rootfs_name=${rootfs:-xfs}
pipelines="build"
if has iso; then pipelines="$pipelines bootiso"; else pipelines="$pipelines image"; fi
has qcow2 && pipelines="$pipelines qcow2"
has vmdk && pipelines="$pipelines vmdk"
has vhd && pipelines="$pipelines vpc"
has gce && pipelines="$pipelines gce"

total=0
manifest="{\"version\":\"2\",\"pipelines\":["
sep=""
for p in $pipelines; do
  st=""; ssep=""
  for s in $(stages_of "$p"); do st="$st$ssep{\"type\":\"$s\",\"options\":{}}"; ssep=","; total=$((total + 1)); done
  manifest="$manifest$sep{\"name\":\"$p\",\"stages\":[$st]}"; sep=","
done
manifest="$manifest],\"sources\":{\"org.osbuild.containers-storage\":{\"items\":{\"sha256:$seed\":{}}}}}"
echo "Manifest generation step"
printf '%s\n' "$manifest" > "/output/manifest-$list.json"
echo "Building manifest-$list.json"

seconds=${BIB_STANDIN_SECONDS:-2}
per=$(awk -v s="$seconds" -v n="$total" 'BEGIN { printf "%.3f", s / n }')
fail=${BIB_STANDIN_FAIL:-}
n=0
for p in $pipelines; do
  printf 'Pipeline %s: %s\nBuild\n  root: <host>\n  runner: org.osbuild.fedora41 (org.osbuild.fedora41)\n' "$p" "$(hex "$p")"
  for s in $(stages_of "$p"); do
    n=$((n + 1))
    printf '%s: %s {\n  "stand-in": true\n}\n' "$s" "$(hex "$p/$s")"
    nap "$per"
    if [ "$fail" = enospc ] && [ "$s" = org.osbuild.bootc.install-to-filesystem ]; then
      echo "error: write /var/tmp/osbuild-store/tmp/buildroot-tmp-$(hex tmp | cut -c1-8)/sysroot/ostree/repo/objects: No space left on device"
      printf '\n⏱  Duration: 1s\nimage:          %s\nFailed\n' "$(hex image)"
      echo 'error: cannot run osbuild: running osbuild failed: exit status 1' >&2
      exit 1
    fi
    printf '\n⏱  Duration: %ss\n' "${per%.*}"
  done
done
case "$fail" in exit:*) echo "error: stand-in failure injected after $n stages" >&2; exit "${fail#exit:}" ;; esac

size=${BIB_STANDIN_DISK_SIZE:-10G}
data_mib=${BIB_STANDIN_DATA_MIB:-4}
if has ami || has raw; then rawdir=/output/image; else rawdir=/var/tmp/bib-standin; fi
mkdir -p "$rawdir"
raw=$rawdir/disk.raw
rm -f "$raw"
truncate -s "$size" "$raw"
size_mib=$(( $(stat -c %s "$raw") / 1048576 ))
i=0
while [ "$i" -lt "$data_mib" ]; do
  key=$(hex "chunk$i" | cut -c1-32)
  openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null \
    | head -c 1048576 | dd of="$raw" bs=65536 seek=$(( i * size_mib / data_mib * 16 )) conv=notrunc 2>/dev/null
  i=$((i + 1))
done
printf 'BIB-STANDIN-ARCH=%s;' "$arch" | dd of="$raw" conv=notrunc 2>/dev/null
convert() { mkdir -p "/output/$2"; qemu-img convert -f raw -O "$1" $3 "$raw" "/output/$2/$4"; }
has qcow2 && convert qcow2 qcow2 "" disk.qcow2
has vmdk && convert vmdk vmdk "" disk.vmdk
has vhd && convert vpc vpc "-o subformat=fixed" disk.vhd
if has gce; then
  mkdir -p /output/gce
  tar --sparse --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rawdir" -cf - disk.raw | gzip -n > /output/gce/image.tar.gz
fi
if has iso; then
  mkdir -p /output/bootiso
  openssl enc -aes-128-ctr -nosalt -K "$(hex iso | cut -c1-32)" -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null \
    | head -c 8388608 > /output/bootiso/install.iso
fi
[ "$rawdir" = /output/image ] || rm -rf "$rawdir"
echo "Build complete!"
echo "Results saved in"
echo ".  (/output)"
