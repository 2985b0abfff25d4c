# Shell functions for tests that boot a guest under QEMU (TCG); source it from bash.
#
#   vm_kernel                       the newest /boot/vmlinuz-*-amd64 (or $GMIG_VM_KERNEL)
#   vm_initramfs OUT SRC[=DEST]...  a cpio.gz with busybox, modules, gmig.ko ($GMIG_KO), files;
#                                   the caller supplies /test/run (see initramfs.sh)
#   vm_boot KERNEL INITRD [QEMU ARGS...]
#                                   boots, prints the console, returns /test/run's exit code
#                                   (124 on timeout, 125 when the guest printed no exit line)
# Environment: GMIG_VM_TIMEOUT (seconds, default 180), GMIG_VM_MEM (MiB, default 512),
# GMIG_VM_LOG (also keep the console in this file).

GMIG_VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

vm_kernel() {
	if [ -n "${GMIG_VM_KERNEL:-}" ]; then
		echo "$GMIG_VM_KERNEL"
		return
	fi
	ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1
}

vm_initramfs() {
	GMIG_VM_KERNEL=$(vm_kernel) "$GMIG_VM_DIR/initramfs.sh" "$@"
}

# Whether this machine can boot a test guest; prints why not.
vm_usable() {
	local k
	k=$(vm_kernel)
	if [ -z "$k" ] || [ ! -r "$k" ]; then
		echo "no readable /boot/vmlinuz-*-amd64 (install linux-image-amd64, run as root)"
		return 1
	fi
	for tool in qemu-system-x86_64 cpio busybox; do
		command -v "$tool" >/dev/null || { echo "no $tool"; return 1; }
	done
	return 0
}

vm_boot() {
	local kernel=$1 initrd=$2 log rc
	shift 2
	log=$(mktemp)
	timeout --kill-after=10 "${GMIG_VM_TIMEOUT:-180}" \
		qemu-system-x86_64 -M pc -accel tcg -m "${GMIG_VM_MEM:-512}" -nographic -no-reboot -nic none \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 ${GMIG_VM_APPEND:-}" "$@" \
		</dev/null 2>&1 | tr -d '\r' | tee "$log"
	rc=${PIPESTATUS[0]}
	[ -n "${GMIG_VM_LOG:-}" ] && cp "$log" "$GMIG_VM_LOG"
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		rm -f "$log"
		echo "vm_boot: guest did not finish in ${GMIG_VM_TIMEOUT:-180} s" >&2
		return 124
	fi
	rc=$(sed -n 's/^.*GMIG-VM-EXIT \([0-9]*\).*$/\1/p' "$log" | tail -1)
	rm -f "$log"
	if [ -z "$rc" ]; then
		echo "vm_boot: the guest printed no GMIG-VM-EXIT line" >&2
		return 125
	fi
	return "$rc"
}
