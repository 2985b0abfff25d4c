#!/bin/bash
# Builds a test guest's initramfs: busybox, the kernel modules a test needs, gmig.ko and files.
#
# initramfs.sh OUT [SRC[=DEST]]...
#   OUT   the cpio.gz to write
#   SRC   a file or directory of this machine; DEST its path in the guest, by default
#         /bin/<name> for a file and /<name> for a directory. ELF files bring the shared
#         libraries ldd lists for them.
# Environment: GMIG_VM_KVER (the kernel version whose modules to take; default: from
# GMIG_VM_KERNEL or the newest /boot/vmlinuz-*-amd64), GMIG_KO (gmig.ko, put at
# /lib/modules/gmig.ko when set), GMIG_VM_MODULES (kernel modules to load at boot).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$1
shift

kernel=${GMIG_VM_KERNEL:-$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1)}
kver=${GMIG_VM_KVER:-${kernel#/boot/vmlinuz-}}
mods=${GMIG_VM_MODULES:-"vsock_loopback vmw_vsock_virtio_transport virtio_console"}
busybox=$(command -v busybox || echo /bin/busybox)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,test,usr/bin}

# ldd (libc-bin, always there) rather than file(1): a static program has no libraries to list.
is_dynamic() {
	ldd "$1" >/dev/null 2>&1
}
is_dynamic "$busybox" &&
	{ echo "initramfs.sh: $busybox is not static (install busybox-static)" >&2; exit 1; }
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init"

# Copies an ELF's shared libraries (and its loader) to the same paths in the guest.
copy_libs() {
	local lib
	for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

# Kernel modules with their dependencies, each listed once, dependencies first.
moddir=/lib/modules/$kver
declare -A seen=()
order=()
add_mod() {
	local name=$1 path dep line
	line=$(grep -E "(^|/)${name//_/[_-]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -1 || true)
	[ -n "$line" ] || return 0
	path=${line%%:*}
	[ -n "${seen[$path]:-}" ] && return 0
	seen[$path]=1
	for dep in ${line#*:}; do
		add_mod "$(basename "${dep%%.ko*}")"
	done
	order+=("$path")
}
if [ -d "$moddir" ]; then
	for m in $mods; do
		add_mod "$m"
	done
fi
: > "$root/etc/gmig-modules"
for path in "${order[@]}"; do
	mkdir -p "$root/lib/modules/$(dirname "$path")"
	cp "$moddir/$path" "$root/lib/modules/$path"
	echo "$path" >> "$root/etc/gmig-modules"
done

if [ -n "${GMIG_KO:-}" ]; then
	cp "$GMIG_KO" "$root/lib/modules/gmig.ko"
fi

for spec in "$@"; do
	src=${spec%%=*}
	if [ "$spec" != "$src" ]; then
		dest=${spec#*=}
	elif [ -d "$src" ]; then
		dest=/$(basename "$src")
	else
		dest=/bin/$(basename "$src")
	fi
	if [ -d "$src" ]; then
		mkdir -p "$root$dest"
		cp -rL "$src/." "$root$dest/"
	else
		mkdir -p "$root$(dirname "$dest")"
		cp -L "$src" "$root$dest"
	fi
	if [ -d "$src" ]; then
		while IFS= read -r -d '' f; do
			is_dynamic "$f" && copy_libs "$f"
		done < <(find "$src" -type f -print0)
	elif is_dynamic "$src"; then
		copy_libs "$src"
	fi
done

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
