#!/usr/bin/env bash
# Regenerates the machine recordings in hosts/ (see capture.Recording):
#   regen.sh           loop-device machines made here with the real tools
#                      (GPT: ESP, ext4, xfs, btrfs with subvolumes, swap;
#                      msdos with logical partitions), before and after drift
#   regen.sh --qemu    also the LUKS/LVM/md machines of guest/*.sh, made in
#                      the live image under QEMU (TestRegenHosts)
# Needs root, loop devices, util-linux, e2fsprogs, xfsprogs, btrfs-progs,
# dosfstools. Then refresh the goldens: go test ./capture -update
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
T=$(mktemp -d)
LOOPS=()
cleanup() {
	set +e
	umount "$T/mnt" 2>/dev/null
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	rm -rf "$T"
}
trap cleanup EXIT
(cd ../.. && CGO_ENABLED=0 go build -o "$T/strata" ./cmd/strata)
S="$T/strata"
attach() { # image → loop device with partitions, in $L
	L=$(losetup --find --show --partscan "$1")
	LOOPS+=("$L")
	partx --add "$L" 2>/dev/null || true
	for _ in $(seq 50); do [ -e "${L}p1" ] && break; sleep 0.1; done
}
# Recordings say /dev/loopX whatever loop device was free.
norm() { sed -e "s#$1#/dev/loopX#g" -e "s#${1#/dev/}#loopX#g" -e "s#$T/root#/mnt/root#g"; }
record() { # name, capture flags...
	local name=$1; shift
	"$S" capture -record "$T/$name.txt" "$@" > /dev/null 2>&1
	# keep only the mounts of the recorded disk: the rest is this build host's
	norm "$L" < "$T/$name.txt" | awk '/^-- /{inmi = ($0 ~ /^-- file: \/proc\/self\/mountinfo --/)} !inmi || /^-- / || /loopX/' > "hosts/$name.txt"
}

# --- GPT: ESP, ext4 (custom settings), a gap, xfs, btrfs, swap -------------
truncate -s 2G "$T/gpt.img"
sfdisk -q "$T/gpt.img" <<'SF'
label: gpt
label-id: 6E0C0F9A-3B1D-4C55-9E7A-1D2C3B4A5F60
start=1M, size=64M, type=U, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E01, name="EFI System Partition", attrs="RequiredPartition GUID:63"
start=65M, size=128M, type=L, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E02, name=root
start=257M, size=400M, type=L, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E03
size=512M, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E04, name=system
type=S, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E05, name=swap
SF
attach "$T/gpt.img"
mkfs.fat -F 32 -i 1234ABCD -n ESP "${L}p1" >/dev/null
mke2fs -q -t ext4 -m 1 -I 512 -O ^metadata_csum -L x -U 11111111-2222-3333-4444-555555555555 "${L}p2"
mkfs.xfs -q -f -d agcount=3 -L xf -m uuid=0bc76a50-2ec7-4bd0-8c83-7499e529812f "${L}p3"
mkfs.btrfs -q -f -L bt -U ba8b21bd-a0b7-40e7-bf1d-2362bb596bf3 "${L}p4" >/dev/null
mkswap -q -L sw -U 41b4092b-3ba5-4553-89ed-1ddc15fa2e6f "${L}p5"
mkdir -p "$T/mnt" "$T/root/etc"
mount "${L}p4" "$T/mnt"
btrfs -q subvolume create "$T/mnt/@"
btrfs -q subvolume create "$T/mnt/@home"
btrfs -q subvolume snapshot -r "$T/mnt/@home" "$T/mnt/@home-snap"
btrfs subvolume set-default "$T/mnt/@"
umount "$T/mnt"
cat > "$T/root/etc/fstab" <<'FS'
UUID=11111111-2222-3333-4444-555555555555 /data ext4 defaults,noatime 0 2
UUID=1234-ABCD /boot/efi vfat umask=0077 0 1
LABEL=xf /srv xfs defaults 0 0
UUID=ba8b21bd-a0b7-40e7-bf1d-2362bb596bf3 /mnt/sys btrfs subvol=@,compress=zstd:1 0 0
UUID=ba8b21bd-a0b7-40e7-bf1d-2362bb596bf3 /home btrfs subvol=@home 0 0
PARTUUID=71d0b6b8-20b2-4e0f-9c6a-0a1b2c3d4e05 none swap sw,pri=10 0 0
FS
record loop-gpt -disk "$L" -root "$T/root"
# Drift: the root partition grows into the gap, a partition is added after
# it, reserved blocks change, a mount option changes.
echo ',+32M' | sfdisk -q --no-reread --no-tell-kernel -N 2 "$L"
echo 'size=16M, type=L, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E06, name=scratch' | sfdisk -q --no-reread --no-tell-kernel -a "$L"
partx --update "$L"
tune2fs -m 2 "${L}p2" >/dev/null
sed -i 's#/data ext4 defaults,noatime#/data ext4 defaults,relatime#' "$T/root/etc/fstab"
record loop-gpt-drift -disk "$L" -root "$T/root"

# --- msdos: boot flag, ESP type, logical partitions ---------------------------
truncate -s 1G "$T/dos.img"
sfdisk -q "$T/dos.img" <<'SF'
label: dos
label-id: 0x5eed1234
size=200M, type=83, bootable
size=100M, type=ef
type=5
size=300M, type=82
type=83
SF
attach "$T/dos.img"
mke2fs -q -t ext4 -L root -U c2516f7a-8e9d-4acb-9e0f-a1b2c3d4e5f6 -b 4096 "${L}p1"
mkfs.fat -F 16 -i 0000BEEF "${L}p2" >/dev/null
mkswap -q -U d3627a8b-9fa0-4bdc-8f1a-b2c3d4e5f6a7 "${L}p5"
mke2fs -q -t ext2 -L data -U 647ebae9-6df0-446e-9042-f27c2c49a3ff "${L}p6"
printf 'UUID=c2516f7a-8e9d-4acb-9e0f-a1b2c3d4e5f6 / ext4 errors=remount-ro 0 1\nUUID=d3627a8b-9fa0-4bdc-8f1a-b2c3d4e5f6a7 none swap sw 0 0\n' > "$T/root/etc/fstab"
record loop-msdos -disk "$L" -root "$T/root"

if [ "${1:-}" = "--qemu" ]; then
	"$S" initramfs -strata "$S" -out "$T/live"
	cd ../.. && STRATA_REGEN_HOSTS=1 STRATA_LIVE_DIR="$T/live" go test ./capture -run TestRegenHosts -v -timeout 40m
fi
echo "regen: done; now run: go test ./capture -update"
