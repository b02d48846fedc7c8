#!/usr/bin/env sh
# `make browser` (and so `make test`): Debian's chromium and chromium-driver for the admin console's
# browser tests. Installs them with apt-get when they are missing and this can (root, apt-get
# present); otherwise says so, and the browser tests are skipped loudly. With --required, or
# REFUNDGUARD_REQUIRE_EMULATOR=1 (CI), a browser that cannot be installed is an error.
set -eu

have() {
  { [ -n "${CHROMIUM_BIN:-}" ] || command -v chromium >/dev/null 2>&1 \
      || command -v chromium-browser >/dev/null 2>&1; } &&
  { [ -n "${CHROMEDRIVER_BIN:-}" ] || command -v chromedriver >/dev/null 2>&1 \
      || [ -x /usr/lib/chromium/chromedriver ]; }
}

required=no
if [ "${1:-}" = "--required" ] || [ "${REFUNDGUARD_REQUIRE_EMULATOR:-}" = "1" ]; then
  required=yes
fi

have && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "make browser: installing chromium and chromium-driver with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq chromium chromium-driver >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi

have && exit 0

message="chromium and chromium-driver are not installed (as root: apt-get install -y chromium chromium-driver)"
if [ "$required" = "yes" ]; then
  echo "make browser: $message; the admin console's browser tests cannot run" >&2
  exit 1
fi
echo "make browser: WARNING: $message; the admin console's browser tests will be SKIPPED" >&2
