#!/bin/sh
# Make a self-signed certificate (run as root by roles/tls.py through the executor).
#
#   tls_self_signed.sh CERT KEY DAYS CN SAN   (SAN: openssl's list, e.g. "DNS:example.com,IP:10.0.0.1")
#
# The key is made under umask 077 and ends root's, 0600; both files are written next to their
# targets and moved into place, so nginx never reads half a pair. nginx, when running and
# happy with its config, reloads to serve the new certificate.
set -e
cert=$1 key=$2 days=$3 cn=$4 san=$5
umask 077
mkdir -p "${cert%/*}" "${key%/*}"
if ! out=$(openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days "$days" -subj "/CN=$cn" \
    -addext "subjectAltName=$san" -keyout "$key.new" -out "$cert.new" 2>&1); then
  echo "$out"
  exit 1
fi
chown root:root "$key.new" "$cert.new"
chmod 600 "$key.new"
chmod 644 "$cert.new"
mv -f "$key.new" "$key"
mv -f "$cert.new" "$cert"
if systemctl is-active --quiet nginx && nginx -t >/dev/null 2>&1; then systemctl reload nginx; fi
