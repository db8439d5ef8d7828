#!/usr/bin/env bash
# Installs what Aegis needs to build and test, from Debian's packages. Idempotent: packages
# already present are not touched, and apt-get runs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libre2-dev libyaml-dev libssl-dev libboost-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  nginx-light wrk curl redis-server libhiredis-dev
  libsqlite3-dev libpq-dev postgresql libsodium-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tcmalloc, the aegis binary's allocator (docs/decisions.md)
  libgoogle-perftools-dev
  clang libclang-rt-14-dev
  nodejs python3
  # pip with setuptools and wheel (Debian's python3-pip depends on both): `pip install
  # ./sdk/python` offline, as sdk/python/tests/test_packaging.py does.
  python3-pip
  # rsyslogd, the syslog receiver of tests/integration/audit_sinks_test.py, which runs its own
  # instance (own config, loopback ports, pid file). The package's own service holds no
  # network port with Debian's default /etc/rsyslog.conf, and in a container without an init
  # (policy-rc.d) it is not started at all.
  rsyslog
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm comes with nodesource's nodejs; Debian's nodejs needs the separate npm package.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
