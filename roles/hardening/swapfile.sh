#!/bin/sh
# swapfile.sh SIZE_MB: /swapfile of SIZE_MB, mode 0600, swapped on and named in /etc/fstab.
# Run again it only puts right what is missing (an existing /swapfile that swapon accepts is kept).
set -u
size_mb=$1
file=/swapfile

make_swap() {  # make_swap ALLOCATE-COMMAND...: a fresh file, then mkswap and swapon
    rm -f "$file" && "$@" && chmod 600 "$file" && mkswap "$file" >/dev/null && swapon "$file"
}

if ! swapon --show=NAME --noheadings | grep -qx "$file"; then
    chmod 600 "$file" 2>/dev/null
    # fallocate is instant, but some filesystems give it a file swapon refuses: dd always works.
    swapon "$file" 2>/dev/null \
        || make_swap fallocate -l "${size_mb}M" "$file" 2>/dev/null \
        || make_swap dd if=/dev/zero of="$file" bs=1M count="$size_mb" status=none \
        || { rm -f "$file"; echo "could not make a swap file of $size_mb MiB at $file" >&2; exit 1; }
fi
chmod 600 "$file" || exit 1
grep -q "^$file[[:space:]]" /etc/fstab || echo "$file none swap sw 0 0" >> /etc/fstab
