#!/usr/bin/env bash
# Measures strata's live media: the size of each artefact, how long it takes to build, and
# how long each boot path takes from QEMU start to the live system's "STRATA READY".
#
#   bench/image.sh                 build the live kernel+initramfs, then usb, iso, pxe
#   KERNEL=... INITRD=... bench/image.sh   use these instead of building them
#   BOOTS="usb-bios iso-cd-uefi" bench/image.sh   boot only these (default: all; "" for none)
#
# Boots run one at a time (TCG, no KVM: STRATA_QEMU_ACCEL overrides), so the times are not
# inflated by a second guest of ours; other load on the host still shows (the load average is
# printed). Serial logs stay in $WORK/logs.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-$(mktemp -d /tmp/strata-bench-image.XXXXXX)}
ACCEL=${STRATA_QEMU_ACCEL:-tcg}
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
BOOTS=${BOOTS-usb-bios usb-uefi iso-cd-bios iso-cd-uefi iso-disk-bios iso-disk-uefi pxe-tftp-bios pxe-tftp-uefi pxe-http-bios pxe-http-uefi}
PORT=${PORT:-18080}
TIMEOUT=${TIMEOUT:-180}
mkdir -p "$WORK/logs"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
size() { stat -c %s "$1"; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f MiB (%.1f MB)", n / 1048576, n / 1000000 }'; }
dirsize() { du -sb "$1" | cut -f1; }

echo "# strata live media benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, accel $ACCEL, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "work directory: $WORK"

t=$(now)
go build -o "$WORK/strata" ./cmd/strata
echo "build strata: $(secs "$t" "$(now)") s"

if [ -z "${KERNEL:-}" ]; then
  t=$(now)
  "$WORK/strata" initramfs --out "$WORK/live" >"$WORK/initramfs.txt"
  echo "build kernel+initramfs (strata initramfs, warm cache if any): $(secs "$t" "$(now)") s"
  KERNEL=$WORK/live/vmlinuz INITRD=$WORK/live/initramfs.cpio.zst
fi
k=$(size "$KERNEL"); i=$(size "$INITRD")
echo
echo "## live system"
echo "kernel     $(mib "$k")  $KERNEL"
echo "initramfs  $(mib "$i")  $INITRD"
total=$((k + i))
verdict=$([ "$total" -le 40000000 ] && echo "within" || echo "OVER")
echo "total      $(mib "$total")  ($verdict the 40 MB goal)"

echo
echo "## artefacts"
printf "%-5s %-28s %8s\n" kind size "build s"
for kind in usb iso pxe; do
  out=$WORK/out
  [ "$kind" = pxe ] && out=$WORK/out/pxe
  t=$(now)
  "$WORK/strata" image "$kind" --kernel "$KERNEL" --initrd "$INITRD" --out "$out" \
    --append "benchmark=1" --host 52:54:00:5e:1a:01=bench >/dev/null 2>"$WORK/image-$kind.log"
  took=$(secs "$t" "$(now)")
  case $kind in
    usb) n=$(size "$WORK/out/strata-usb.img") ;;
    iso) n=$(size "$WORK/out/strata.iso") ;;
    pxe) n=$(dirsize "$WORK/out/pxe") ;;
  esac
  printf "%-5s %-28s %8s\n" "$kind" "$(mib "$n")" "$took"
done

# boot NAME FIRMWARE QEMU-ARGS...: seconds from QEMU start to STRATA READY on ttyS0.
boot() {
  local name=$1 fw=$2; shift 2
  local log=$WORK/logs/$name.serial.log fwargs=()
  if [ "$fw" = uefi ]; then
    cp "$OVMF_VARS" "$WORK/vars-$name.fd"
    fwargs=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
            -drive "if=pflash,format=raw,unit=1,file=$WORK/vars-$name.fd")
  fi
  : >"$log"
  local t; t=$(now)
  qemu-system-x86_64 -name "$name" -machine q35 -cpu max -accel "$ACCEL" -m 1024 -smp 1 \
    -display none -monitor none -parallel none -serial "file:$log" "${fwargs[@]}" "$@" \
    >"$WORK/logs/$name.qemu.log" 2>&1 &
  local pid=$! result=timeout
  while kill -0 "$pid" 2>/dev/null; do
    if grep -qa "STRATA READY" "$log"; then result=$(secs "$t" "$(now)"); break; fi
    if [ "$(secs "$t" "$(now)" | cut -d. -f1)" -ge "$TIMEOUT" ]; then break; fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf "%-15s %8s\n" "$name" "$result"
}

if [ -n "$BOOTS" ]; then
  echo
  echo "## boot to STRATA READY (s from QEMU start, $ACCEL, one guest at a time, load $(cut -d' ' -f1-3 /proc/loadavg))"
  usb=$WORK/out/strata-usb.img iso=$WORK/out/strata.iso pxe=$WORK/out/pxe
  # HTTP for the pxe-http boots: strata's own file server on the bundle; the guest
  # reaches the host's loopback as 10.0.2.2.
  "$WORK/strata" serve --listen "127.0.0.1:$PORT" "$pxe" >"$WORK/logs/serve.log" 2>&1 &
  serve_pid=$!
  trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/boot.ipxe" && break
    kill -0 "$serve_pid" 2>/dev/null || { echo "strata serve failed:" >&2; cat "$WORK/logs/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.2
  kill -0 "$serve_pid" 2>/dev/null || { echo "strata serve failed:" >&2; cat "$WORK/logs/serve.log" >&2; exit 1; }
  usbdisk() { echo -device qemu-xhci,id=xhci -drive "file=$1,format=raw,if=none,id=d0,readonly=on" -device usb-storage,drive=d0,bus=xhci.0,bootindex=0; }
  for b in $BOOTS; do
    fw=${b##*-}
    case $b in
      usb-*)      boot "$b" "$fw" $(usbdisk "$usb") ;;
      iso-cd-*)   boot "$b" "$fw" -drive "file=$iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on" -device ide-cd,drive=cd0,bootindex=0 ;;
      iso-disk-*) boot "$b" "$fw" $(usbdisk "$iso") ;;
      pxe-tftp-*) boot "$b" "$fw" -netdev "user,id=n0,tftp=$pxe,bootfile=boot.ipxe" -device virtio-net-pci,netdev=n0,mac=52:54:00:5e:1a:01,bootindex=0 ;;
      pxe-http-*) boot "$b" "$fw" -netdev "user,id=n0,bootfile=http://10.0.2.2:$PORT/boot.ipxe" -device virtio-net-pci,netdev=n0,mac=52:54:00:5e:1a:01,bootindex=0 ;;
      *) echo "unknown boot $b" >&2; exit 2 ;;
    esac
  done
fi
