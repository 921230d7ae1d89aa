#!/bin/sh
# certbot's deploy hook (installed by roles/tls.py in /etc/letsencrypt/renewal-hooks/deploy/):
# after a certificate is renewed, nginx reloads to serve it. The reload is graceful (old workers
# finish their requests), and only after `nginx -t` accepts the config.
nginx -t -q && systemctl reload nginx
