#!/bin/sh
# Install the app's nginx site (run as root by roles/nginx.py through the executor).
#
#   nginx_site.sh reload|start [w:FILE]... [l:LINK]... [r:SITE]...   (the new files: a tar on stdin)
#
# Back up each FILE about to be replaced, unpack the tar, link each sites-enabled LINK to its
# sites-available file, remove each unwanted enabled SITE, then `nginx -t`: when the test fails,
# put the previous files back, remove the new links, print nginx's complaint and exit 1, so a bad
# config never reaches the running nginx. Otherwise reload nginx (or enable and start it).
set -e
action=$1
shift
for arg in "$@"; do
  case $arg in w:*) f=${arg#w:}; if [ -f "$f" ]; then cp -p "$f" "$f.pronghorn-prev"; fi ;; esac
done
case " $* " in *" w:"*) tar -xzf - -C / --same-owner --same-permissions --no-overwrite-dir ;; esac
for arg in "$@"; do
  case $arg in
    l:*) link=${arg#l:}; ln -sfn "../sites-available/${link##*/}" "$link" ;;
    r:*) rm -f "${arg#r:}" ;;
  esac
done
if ! out=$(nginx -t 2>&1); then
  echo "$out"
  for arg in "$@"; do
    case $arg in
      w:*) f=${arg#w:}; if [ -f "$f.pronghorn-prev" ]; then mv -f "$f.pronghorn-prev" "$f"; else rm -f "$f"; fi ;;
      l:*) rm -f "${arg#l:}" ;;
    esac
  done
  echo 'nginx -t failed: the previous config was put back'
  exit 1
fi
for arg in "$@"; do
  case $arg in w:*) rm -f "${arg#w:}.pronghorn-prev" ;; esac
done
if [ "$action" = reload ]; then
  systemctl reload nginx
else
  systemctl enable --quiet nginx && systemctl restart nginx
fi
