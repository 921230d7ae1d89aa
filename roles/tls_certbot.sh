#!/bin/sh
# Get the site's certificate from an ACME server with certbot (run as root by the TLS step).
#
#   tls_certbot.sh CERT_NAME WEBROOT EMAIL DIRECTORY_URL PROXY_ENV -d DOMAIN [-d DOMAIN]...
#
# HTTP-01 through nginx: certbot writes the challenge answer under WEBROOT, which nginx serves
# on port 80 at /.well-known/acme-challenge/. The lineage is named CERT_NAME (the app's name),
# so its files are /etc/letsencrypt/live/CERT_NAME/{fullchain,privkey}.pem and `certbot renew`
# (certbot's timer) keeps it fresh; the deploy hook in renewal-hooks/deploy reloads nginx.
# PROXY_ENV: deploy.toml's [proxy] as an environment file (roles/tls.py writes it only when a
# proxy is set; certbot.service reads the same file for the timer's renewals): the proxy, and the
# hosts reached without it (e.g. a private ACME server on the LAN).
set -e
name=$1 webroot=$2 email=$3 server=$4 proxy_env=$5
shift 5
if [ -f "$proxy_env" ]; then set -a; . "$proxy_env"; set +a; fi
mkdir -p "$webroot"
certbot certonly --non-interactive --agree-tos --no-eff-email --email "$email" --server "$server" \
  --webroot -w "$webroot" --cert-name "$name" --keep-until-expiring --expand "$@" 2>&1
