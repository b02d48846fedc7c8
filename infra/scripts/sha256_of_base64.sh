#!/bin/sh
# Terraform `external` data source program (plan time): SHA-256 of base64-encoded bytes.
#
# Reads the query {"base64": "<standard base64>"} on stdin and prints
# {"sha256": "<lower-case hex digest of the decoded bytes>", "size": "<byte count>", "base64": "<the input>"}.
# Terraform's sha256() hashes a string's UTF-8 text, so it cannot fingerprint a binary DER certificate;
# this script hashes the real bytes. Needs a POSIX sh, sed, tr, wc, a base64 decoder and one of
# sha256sum (GNU/busybox), shasum (macOS) or openssl: all present in the hashicorp/terraform image.
set -eu

query=$(cat)
b64=$(printf '%s' "$query" | tr -d '\n\r' | sed -n 's/.*"base64"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9+/=]*\)".*/\1/p')
if [ -z "$b64" ]; then
  echo 'sha256_of_base64.sh: the query has no non-empty "base64" string' >&2
  exit 1
fi

decode() {
  if printf 'QQ==' | base64 -d >/dev/null 2>&1; then
    base64 -d
  elif printf 'QQ==' | base64 -D >/dev/null 2>&1; then
    base64 -D
  else
    openssl base64 -d -A
  fi
}

digest() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256
  else
    openssl dgst -sha256 -r
  fi
}

sha=$(printf '%s' "$b64" | decode | digest | sed 's/[[:space:]].*//' | tr 'A-F' 'a-f')
size=$(printf '%s' "$b64" | decode | wc -c | tr -d '[:space:]')
case "$sha" in
  *[!0-9a-f]* | "")
    echo "sha256_of_base64.sh: could not compute a SHA-256 digest" >&2
    exit 1
    ;;
esac
if [ "${#sha}" -ne 64 ]; then
  echo "sha256_of_base64.sh: unexpected digest length" >&2
  exit 1
fi
printf '{"sha256":"%s","size":"%s","base64":"%s"}\n' "$sha" "$size" "$b64"
