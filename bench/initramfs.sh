#!/usr/bin/env bash
# Measures the live image: sizes, cold and warm build times, and boot-to-ready
# time in QEMU (TCG). Run from the repository root after `make deps`.
#   BOOTS=N         boots to time (default 2)
#   STRATA_CACHE    the cache holding the Debian kernel (default ~/.cache/strata)
#   SKIP_COLD=1     skip the cold build (~2-3 min)
set -euo pipefail

cache=${STRATA_CACHE:-$HOME/.cache/strata}
boots=${BOOTS:-2}
root=$cache/kernel/current/root
kernel=$(ls "$root"/boot/vmlinuz-* | head -1)
modules=$root/lib/modules/$(basename "$kernel" | sed 's/^vmlinuz-//')
[ -f "$kernel" ] || { echo "bench: no cached kernel; run make deps" >&2; exit 1; }

tmp=$(mktemp -d)
stamp=live/zz_benchstamp.go
cleanup() { rm -rf "$tmp"; rm -f "$stamp"; }
trap cleanup EXIT

go build -o "$tmp/strata" ./cmd/strata
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
now() { date +%s%N; }
build() { # build CACHE OUT → prints wall seconds
	local t0 t1
	t0=$(now)
	"$tmp/strata" initramfs --cache "$1" --out "$2" --kernel "$kernel" --modules "$modules" >"$tmp/build.out" 2>"$tmp/build.err" ||
		{ cat "$tmp/build.err" >&2; exit 1; }
	t1=$(now)
	secs "$t0" "$t1"
}

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"

if [ "${SKIP_COLD:-}" != 1 ]; then
	# A fresh cache: mkuimage builds the u-root busybox, the system layer is
	# compressed at zstd -19. Go's own build cache stays warm.
	cold=$(build "$tmp/cold-cache" "$tmp/cold")
	echo "cold build (empty strata cache):      ${cold} s"
fi

build "$cache" "$tmp/out" >/dev/null # make sure the real cache is warm
warm0=$(build "$cache" "$tmp/out")
echo "warm build, nothing changed:          ${warm0} s"
printf 'package live\n\nconst benchStamp = "%s"\n' "$(now)" >"$stamp"
warm=$(build "$cache" "$tmp/out")
echo "warm build after a change to strata:  ${warm} s"
rm -f "$stamp"

ksize=$(stat -c %s "$tmp/out/vmlinuz")
isize=$(stat -c %s "$tmp/out/initramfs.cpio.zst")
echo "kernel:     $ksize bytes"
echo "initramfs:  $isize bytes"
echo "total:      $((ksize + isize)) bytes ($(awk -v n=$((ksize + isize)) 'BEGIN { printf "%.1f MiB, %.1f MB", n / 1048576, n / 1e6 }'))"
sed -n 's/^  \(uroot\|system\|strata\)/  layer \1/p' "$tmp/build.out"

# Boot to ready: wall time from starting QEMU to the STRATA READY line, with
# a virtio disk and an e1000 NIC on user networking (DHCP). "ready after" in
# the summary is strata's own time from its start (modules, DHCP, probes).
for i in $(seq 1 "$boots"); do
	truncate -s 1G "$tmp/disk$i.img"
	mkfifo "$tmp/serial$i"
	t0=$(now)
	timeout 180 qemu-system-x86_64 -accel tcg -machine q35 -cpu max -m 2048 -display none -monitor none \
		-serial stdio -no-reboot -kernel "$tmp/out/vmlinuz" -initrd "$tmp/out/initramfs.cpio.zst" \
		-append "console=ttyS0 panic=-1 quiet" \
		-drive "file=$tmp/disk$i.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,serial=BENCH \
		-netdev user,id=n0 -device e1000,netdev=n0 </dev/null >"$tmp/serial$i" 2>"$tmp/qemu$i.err" &
	qemu=$!
	ready=""
	summary=""
	while IFS= read -r line; do
		case "$line" in
		*"STRATA READY"*) ready=$(secs "$t0" "$(now)") ;;
		summary:*)
			summary=${line%$'\r'}
			break
			;;
		esac
	done <"$tmp/serial$i"
	kill "$qemu" 2>/dev/null || true
	wait "$qemu" 2>/dev/null || true
	echo "boot $i: STRATA READY after ${ready:-?} s (QEMU start to marker); ${summary:-no summary: $(head -c 300 "$tmp/qemu$i.err")}"
done
