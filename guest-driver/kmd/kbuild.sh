#!/bin/sh
# Builds gmig.ko with Kbuild out of the source tree: kbuild.sh KERNEL_DIR SRC_DIR OUT_DIR [MAKE ARG].
# Kbuild of this kernel generation writes next to the sources, so they are copied first.
set -eu
kdir=$1 src=$2 extra=${4:-}
mkdir -p "$3"
out=$(cd "$3" && pwd)
work=$out/kbuild
mkdir -p "$work/include/uapi"
for f in Kbuild gmig_dev.h main.c registry.c barrier.c staging.c sysfs.c; do
	cmp -s "$src/$f" "$work/$f" || cp "$src/$f" "$work/$f"
done
cmp -s "$src/include/uapi/gmig.h" "$work/include/uapi/gmig.h" ||
	cp "$src/include/uapi/gmig.h" "$work/include/uapi/gmig.h"
make -s -C "$kdir" M="$work" $extra modules
cp "$work/gmig.ko" "$out/gmig.ko"
