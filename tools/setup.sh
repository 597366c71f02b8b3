#!/usr/bin/env bash
# Installs what building and testing Warren needs on a fresh Debian machine with rustup:
# the wasm32 target guests are built for, rustfmt/clippy for the checks, redis-server for
# the tests of the Redis backend, nginx and openssl for the gateway's test, chromium and
# chromedriver for the web client's test, and a C toolchain.
# Idempotent: quick when everything is there. A missing tool is installed or the script
# fails; nothing is skipped.
set -euo pipefail

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust with rustup first" >&2; exit 1; }
minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 95 ]; then
  echo "setup: Warren needs Rust 1.95 or newer; found $(rustc --version)" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
# The Redis backend's tests start their own redis-server processes.
if ! command -v redis-server >/dev/null; then
  echo "setup: installing redis-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools
fi
# The web client's test drives Debian's headless Chromium through chromedriver (browser
# downloads at install time are not an option: the distribution's packages are).
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
  echo "setup: installing chromium and chromium-driver"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
# The gateway's test runs a real nginx in front of the hosts, with a certificate made by
# openssl (ps lists nginx's workers).
if ! command -v nginx >/dev/null && ! [ -x /usr/sbin/nginx ]; then
  echo "setup: installing nginx"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light
fi
for tool in openssl ps; do
  if ! command -v "${tool}" >/dev/null; then
    echo "setup: installing ${tool}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl procps
  fi
done
# A C toolchain links the host (and build scripts).
if ! command -v cc >/dev/null; then
  echo "setup: installing a C toolchain"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^${component}"; then
    echo "setup: adding ${component}"
    rustup component add "${component}"
  fi
done
