#!/bin/sh
# sshd_dropin.sh FILE: install an sshd drop-in from the tar on stdin, safely.
# The old FILE is kept aside; when `sshd -t` refuses the new settings, the old file (or no file)
# is put back and the script fails with sshd's message, so a bad setting never reaches a reload.
# Then sshd reloads (the running connections, ours included, are not touched by a reload).
set -u
file=$1
backup="$file.pronghorn-old"   # not *.conf: sshd's Include never reads it
rm -f "$backup"
if [ -e "$file" ]; then cp -p "$file" "$backup" || exit 1; fi
tar -xzf - -C / --same-owner --same-permissions --no-overwrite-dir || exit 1
mkdir -p /run/sshd   # sshd -t wants its privilege separation directory
if ! out=$(sshd -t 2>&1); then
    if [ -e "$backup" ]; then mv -f "$backup" "$file"; else rm -f "$file"; fi
    echo "sshd -t refused the new settings; the previous ones are back: $out" >&2
    exit 1
fi
rm -f "$backup"
for unit in ssh.service sshd.service; do
    if systemctl is-active --quiet "$unit"; then exec systemctl reload "$unit"; fi
done
