#!/usr/bin/env bash
# Builds the release for each ARCH and proves it runs there: its own Node runtime and its own
# better-sqlite3 addon start the broker (arm64 / armv7 under qemu-user with a Debian root,
# x64 natively through bin/nats-edge), and the real nats.js client publishes into a JetStream
# stream, reads it back, and reads it again after a restart on the same store.
#
#   scripts/release-test.sh [ARCH...]     ARCH: arm64 (default), armv7, x64
#
# Installs what it needs from Debian's packages when it runs as root and they are missing
# (the cross compilers and qemu-user-static). Slow: a first build compiles SQLite for each
# architecture (about 3 minutes each here; cached in build/release-cache afterwards), and the
# test runs Node under emulation. Not part of `npm test`; see docs/release.md.
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
((${#arches[@]} > 0)) || arches=(arm64)

packages=()
for arch in "${arches[@]}"; do
  case $arch in
    arm64) packages+=(g++-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-user-static) ;;
    armv7) packages+=(g++-arm-linux-gnueabihf binutils-arm-linux-gnueabihf qemu-user-static) ;;
    x64) packages+=(g++ binutils) ;;
    *) echo "release-test.sh: unknown architecture $arch (arm64, armv7, x64)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if ((EUID != 0)); then
    echo "release-test.sh: missing Debian packages: ${missing[*]} (apt-get install them, or run as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

start=$SECONDS
for arch in "${arches[@]}"; do
  t=$SECONDS
  npm run --silent release -- --arch "$arch"
  echo "release-test.sh: $arch release built in $((SECONDS - t)) s"
done

t=$SECONDS
NATS_EDGE_RELEASE_ARCHES="${arches[*]}" npx vitest run --config test/release/vitest.config.ts
echo "release-test.sh: release test of ${arches[*]} ran in $((SECONDS - t)) s (all: $((SECONDS - start)) s)"
