#!/usr/bin/env bash
# Regenerates the parser fixtures under testdata/<tool>/ from the real tools,
# on sparse image files and loop devices (needs root, util-linux, e2fsprogs,
# xfsprogs, btrfs-progs, dosfstools, cryptsetup, apt, git, subversion).
#   testdata/regen.sh          host fixtures
#   testdata/regen.sh --dm     also the md/LUKS/LVM ones, recorded in a QEMU
#                              guest running the live image (regen_dm_test.go)
# Then refresh the parsed goldens: go test ./capture/parse -update
set -euo pipefail
cd "$(dirname "$0")"
T=$(mktemp -d)
LOOPS=()
cleanup() {
	set +e
	umount "$T/mnt" 2>/dev/null
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p mbr sfdisk lsblk blkid dumpe2fs xfs_db fsck.fat btrfs cryptsetup dpkg git svn proc etc "$T/mnt"

attach() { # image → loop device with partitions, in $L
	L=$(losetup --find --show --partscan "$1")
	LOOPS+=("$L")
	partx --add "$L" 2>/dev/null || true
	for _ in $(seq 50); do [ -e "${L}p1" ] && break; sleep 0.1; done
}
# Device names differ from run to run; fixtures say /dev/loopX.
norm() { sed -e "s#$1#/dev/loopX#g" -e "s#${1#/dev/}#loopX#g"; }

# --- GPT: ESP, ext4, xfs, btrfs, swap ---------------------------------------
truncate -s 2G "$T/gpt.img"
sfdisk -q "$T/gpt.img" <<'SF'
label: gpt
label-id: 5B2F1E3A-9D4C-4E8B-A6F1-2C3D4E5F6071
size=64M, type=U, uuid=1F0C2A3B-4D5E-4F60-8172-93A4B5C6D7E8, name="EFI System Partition", attrs="RequiredPartition LegacyBIOSBootable GUID:60,62"
size=128M, type=L, uuid=2A1B3C4D-5E6F-4071-8293-A4B5C6D7E8F9, name=root
size=400M, type=L, uuid=3B2C4D5E-6F70-4182-93A4-B5C6D7E8F90A
size=512M, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=4C3D5E6F-7081-4293-A4B5-C6D7E8F90A1B, name=system
type=S, uuid=5D4E6F70-8192-43A4-B5C6-D7E8F90A1B2C, name=swap
SF
attach "$T/gpt.img"
mkfs.fat -F 32 -i 1234ABCD -n ESP "${L}p1" >/dev/null
mke2fs -q -t ext4 -m 1 -I 512 -O ^metadata_csum -L x -U 11111111-2222-3333-4444-555555555555 -E stride=16,stripe_width=32 -e remount-ro "${L}p2"
mkfs.xfs -q -f -d agcount=3 -L xf -m uuid=0bc76a50-2ec7-4bd0-8c83-7499e529812f "${L}p3"
mkfs.btrfs -q -f -L bt -U ba8b21bd-a0b7-40e7-bf1d-2362bb596bf3 "${L}p4" >/dev/null
mkswap -q -L sw -U 41b4092b-3ba5-4553-89ed-1ddc15fa2e6f "${L}p5"
sfdisk --json "$L" | norm "$L" > sfdisk/gpt.json
lsblk --json --bytes --output NAME,KNAME,PATH,PKNAME,TYPE,SIZE,RO,RM,MAJ:MIN,LOG-SEC,PHY-SEC,MOUNTPOINTS,SERIAL,MODEL,WWN,TRAN "$L" | norm "$L" > lsblk/loop-gpt.json
blkid --probe --output export "$L" "${L}p1" "${L}p2" "${L}p3" "${L}p4" "${L}p5" | norm "$L" > blkid/loop-gpt.txt
dumpe2fs -h "${L}p2" 2>/dev/null > dumpe2fs/ext4-custom.txt
xfs_db -r -c info -c version -c uuid -c label "${L}p3" | norm "$L" > xfs_db/xfs-agcount3.txt
fsck.fat -n -v "${L}p1" 2>/dev/null | norm "$L" > fsck.fat/fat32.txt || true
btrfs inspect-internal dump-super "${L}p4" | norm "$L" > btrfs/dump-super.txt
mount "${L}p4" "$T/mnt"
btrfs -q subvolume create "$T/mnt/@"
btrfs -q subvolume create "$T/mnt/@home"
mkdir -p "$T/mnt/@/var"
btrfs -q subvolume create "$T/mnt/@/var/log"
btrfs -q subvolume snapshot -r "$T/mnt/@home" "$T/mnt/@home-snap"
btrfs subvolume set-default "$T/mnt/@"
btrfs subvolume list "$T/mnt" > btrfs/subvolume-list.txt
grep " $T/mnt " /proc/self/mountinfo | sed "s#$T/mnt#/mnt#g" | norm "$L" > proc/mountinfo-btrfs.txt
umount "$T/mnt"
btrfs inspect-internal dump-tree -t root "${L}p4" | norm "$L" > btrfs/dump-tree-root.txt
btrfs inspect-internal dump-tree -t chunk "${L}p4" | norm "$L" > btrfs/dump-tree-chunk.txt

# --- ext4 with mke2fs defaults, ext2, ext3 without default mount options ------
truncate -s 600M "$T/ext.img"
mke2fs -q -t ext4 -F "$T/ext.img"
dumpe2fs -h "$T/ext.img" 2>/dev/null > dumpe2fs/ext4-default.txt
mke2fs -q -t ext3 -F -b 2048 -N 5000 "$T/ext.img"
tune2fs -o ^acl,^user_xattr -r 1234 "$T/ext.img" >/dev/null
dumpe2fs -h "$T/ext.img" 2>/dev/null > dumpe2fs/ext3-nodefaults.txt

# --- FAT16 and FAT12, xfs v4-style (no crc) ----------------------------------
truncate -s 100M "$T/fat.img"
mkfs.fat -F 16 -s 4 -i 0000BEEF "$T/fat.img" >/dev/null
fsck.fat -n -v "$T/fat.img" 2>/dev/null | sed "s#$T/##" > fsck.fat/fat16.txt || true
truncate -s 4M "$T/fat12.img"
mkfs.fat -F 12 "$T/fat12.img" >/dev/null
fsck.fat -n -v "$T/fat12.img" 2>/dev/null | sed "s#$T/##" > fsck.fat/fat12.txt || true
truncate -s 320M "$T/xfs.img"
mkfs.xfs -q -f -m crc=0 -i size=256 -b size=2048 -L old "$T/xfs.img" 2>/dev/null
xfs_db -r -c info -c version -c uuid -c label "$T/xfs.img" | sed "s#$T/##" > xfs_db/xfs-nocrc.txt

# --- btrfs on two devices, raid1 ---------------------------------------------
truncate -s 300M "$T/b1.img" "$T/b2.img"
mkfs.btrfs -q -f -d raid1 -m raid1 -O ^no-holes "$T/b1.img" "$T/b2.img" >/dev/null
btrfs inspect-internal dump-super "$T/b2.img" | sed "s#$T/##" > btrfs/dump-super-raid1.txt
btrfs inspect-internal dump-tree -t chunk "$T/b1.img" | sed "s#$T/##" > btrfs/dump-tree-chunk-raid1.txt

# --- msdos: primaries with the boot flag, logical partitions ------------------
truncate -s 1G "$T/dos.img"
sfdisk -q "$T/dos.img" <<'SF'
label: dos
label-id: 0x5eed1234
size=200M, type=83, bootable
size=100M, type=ef
type=5
size=300M, type=82
type=8e
SF
attach "$T/dos.img"
sfdisk --json "$L" | norm "$L" > sfdisk/msdos.json
blkid --probe --output export "$L" "${L}p1" "${L}p5" | norm "$L" > blkid/loop-msdos.txt

# --- LUKS headers (formatting needs no device-mapper) -------------------------
truncate -s 32M "$T/luks2.img" "$T/luks1.img"
echo -n fixture | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha512 \
	--sector-size 512 --label host-luks --subsystem backup --luks2-metadata-size 64k --luks2-keyslots-size 8m --key-file - "$T/luks2.img"
cryptsetup luksDump --dump-json-metadata "$T/luks2.img" > cryptsetup/luks2-pbkdf2.json
echo -n fixture | cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file - "$T/luks1.img"
cryptsetup luksDump "$T/luks1.img" | sed "s#$T/##" > cryptsetup/luks1-xts.txt
blkid --probe --output export "$T/luks2.img" "$T/luks1.img" | sed "s#$T/##" > blkid/luks.txt

# --- dpkg status and apt's auto marks: a sample of this host's, and what
#     apt-mark says about that sample ------------------------------------------
if [ -f /var/lib/dpkg/status ] && command -v apt-mark >/dev/null; then
	mkdir -p "$T/apt/lists" "$T/apt/dpkg"
	awk 'BEGIN{RS="";ORS="\n\n"} /^Package: (apt|base-files|bash|dpkg|git|less|libc6|libgcc-s1|mdadm|openssh-client|perl-base|vim-tiny|zstd|xfsprogs|sudo|lvm2|dmsetup|libdevmapper1.02.1|cryptsetup|cryptsetup-bin|gcc-12-base)\n/' \
		/var/lib/dpkg/status > dpkg/status
	awk 'BEGIN{RS="";ORS="\n\n"} /^Package: (apt|base-files|bash|dpkg|git|less|libc6|libgcc-s1|mdadm|openssh-client|perl-base|vim-tiny|zstd|xfsprogs|sudo|lvm2|dmsetup|libdevmapper1.02.1|cryptsetup|cryptsetup-bin|gcc-12-base)\n/' \
		/var/lib/apt/extended_states > dpkg/extended_states
	cp dpkg/status "$T/apt/dpkg/status"
	apt-mark showmanual -o Dir::State::status="$T/apt/dpkg/status" -o Dir::State="$T/apt" \
		-o Dir::State::extended_states="$PWD/dpkg/extended_states" -o Dir::Etc::SourceList=/dev/null \
		-o Dir::Etc::SourceParts=/nonexistent -o Dir::Cache="$T/apt" > dpkg/apt-mark-showmanual.txt
fi

# --- VCS working copies --------------------------------------------------------
git init -q --bare -b main "$T/etc.git"
git clone -q "file://$T/etc.git" "$T/etc" 2>/dev/null
git -C "$T/etc" -c user.name=strata -c user.email=strata@example.org commit -q --allow-empty -m init
echo x > "$T/etc/hosts" && git -C "$T/etc" add hosts && git -C "$T/etc" -c user.name=strata -c user.email=strata@example.org commit -q -m hosts
git -C "$T/etc" checkout -q -b hosts/laptop && git -C "$T/etc" push -q -u origin hosts/laptop 2>/dev/null
echo y >> "$T/etc/hosts" && touch "$T/etc/untracked"
git -C "$T/etc" status --porcelain=v2 --branch > git/status-dirty.txt
git -C "$T/etc" remote get-url origin | sed "s#$T#/srv#" > git/remote-url.txt
svnadmin create "$T/svnrepo"
svn -q mkdir -m layout "file://$T/svnrepo/trunk" "file://$T/svnrepo/branches"
svn -q copy -m branch "file://$T/svnrepo/trunk" "file://$T/svnrepo/branches/laptop"
svn -q checkout "file://$T/svnrepo/branches/laptop" "$T/wc"
svn info "$T/wc" | sed "s#$T#/srv#g" > svn/info.txt

# --- this host's kernel tables -----------------------------------------------
cp /proc/swaps proc/swaps-empty.txt
cp /etc/os-release etc/os-release
printf 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/dm-2                               partition\t999420\t\t0\t\t-2\n/swap\\040file                           file\t\t1048572\t\t0\t\t10\n' > proc/swaps.txt

# --- boot code in the MBR -------------------------------------------------------
# GRUB for BIOS as grub-install writes it (GRUB_INSTALL: a grub-install
# unpacked from grub2-common with dpkg -x works too), syslinux's MBR, and an
# msdos table with no boot code. Loop partition nodes need udev, so the
# filesystem for /boot/grub is a second loop device at the partition's offset.
mkdir -p mbr
mbrdisk() { truncate -s 64M "$1"; printf 'label: dos\nlabel-id: 0x5eed1234\nstart=2048, type=83, bootable\n' | sfdisk -q "$1"; }
mbrdisk "$T/none.img"
head -c 512 "$T/none.img" > mbr/msdos-no-code.bin
if [ -f /usr/lib/syslinux/mbr/mbr.bin ]; then
	mbrdisk "$T/syslinux.img"
	dd if=/usr/lib/syslinux/mbr/mbr.bin of="$T/syslinux.img" bs=440 count=1 conv=notrunc status=none
	head -c 512 "$T/syslinux.img" > mbr/syslinux.bin
fi
if command -v "${GRUB_INSTALL:-grub-install}" >/dev/null; then
	mbrdisk "$T/grub.img"
	G=$(losetup --find --show "$T/grub.img"); LOOPS+=("$G")
	P=$(losetup --find --show --offset 1048576 "$T/grub.img"); LOOPS+=("$P")
	mke2fs -q -t ext4 "$P"
	mount "$P" "$T/mnt"
	"${GRUB_INSTALL:-grub-install}" --target=i386-pc --boot-directory="$T/mnt/boot" "$G" 2>/dev/null
	umount "$T/mnt"
	head -c 512 "$T/grub.img" > mbr/grub-i386-pc.bin
fi

if [ "${1:-}" = "--dm" ]; then
	cd ../../.. && STRATA_REGEN_DM=1 go test ./capture/parse -run 'TestRegen(DM|EFI)Fixtures' -v -timeout 30m
fi
echo "regen: done; now run: go test ./capture/parse -update"
