#!/usr/bin/env bash
# Builds the Debian bookworm base-system image the restore and drill tests
# install: debootstrap minbase + kernel, GRUB (BIOS and UEFI), systemd-boot,
# cryptsetup-initramfs, lvm2, mdadm and the filesystem tools, packed as
# tar.zst with its sha256 beside it. Cached: a second run returns at once.
#   STRATA_CACHE  cache directory (default ~/.cache/strata)
# The Debian mirror is the one this machine's apt uses.
set -euo pipefail
cache=${STRATA_CACHE:-$HOME/.cache/strata}
out="$cache/images/debian-12-v6.tar.zst"  # bump the name when the contents change
# Tests and drills find the current image through this link, whatever its version.
link="$cache/images/test-image.tar.zst"
if [ -s "$out" ] && [ -s "$out.sha256" ]; then
  ln -sfn "$(basename "$out")" "$link"
  echo "test image: $out (cached)"
  exit 0
fi
mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1)
[ -n "$mirror" ] || { echo "test image: no Debian mirror found in apt's sources" >&2; exit 1; }
mkdir -p "$cache/images"
root=$(mktemp -d "$cache/images/rootfs.XXXXXX")
trap 'umount -R "$root"/proc "$root"/sys "$root"/dev 2>/dev/null || true; rm -rf "$root"' EXIT
# The examples' packages are included, so a drill's package step is quick (apt
# still runs). git is not: the live image carries it for the hand-off.
# subversion is: the live image carries no svn (docs/handoff.md), and the
# mirror-bios drill checks out its svn repo with the restored system's.
include=subversion,linux-image-amd64,thin-provisioning-tools,grub-pc-bin,grub-efi-amd64-bin,grub2-common,systemd-boot,systemd-sysv,udev,kmod,initramfs-tools,cryptsetup,cryptsetup-initramfs,lvm2,mdadm,btrfs-progs,xfsprogs,dosfstools,e2fsprogs,efibootmgr,zstd,ca-certificates,procps,iproute2,openssh-server,sudo,vim-tiny
echo "test image: debootstrap bookworm from $mirror"
start=$(date +%s)
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" > "$cache/images/debootstrap.log" 2>&1 || {
  tail -20 "$cache/images/debootstrap.log" >&2; exit 1; }
# A root password so a drill can log in on the serial console; the drill checks
# run as root. This image is for tests only.
echo 'root:strata' | chroot "$root" chpasswd
echo strata-test > "$root/etc/hostname"
: > "$root/etc/machine-id"
# Slimmer for TCG drills: no docs, and no kernel modules a virtual machine
# never loads (GPUs, sound, media, wireless, ...). This image is for tests only.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} + 2>/dev/null || true
for kdir in "$root"/lib/modules/*/kernel; do
  ( cd "$kdir" && rm -rf drivers/{gpu,media,staging,infiniband,isdn,bluetooth,iio,hwmon,mtd,mmc,w1,nfc,leds,power,rtc,spi,i2c,misc,edac,thunderbolt,target,vhost,vfio,video,mfd,regulator,pinctrl,gnss,comedi,net/wireless,net/can,net/usb,net/ethernet,platform/x86,usb/gadget,usb/serial,input/touchscreen,input/joystick,input/misc,scsi/lpfc,scsi/qla2xxx,scsi/mpt3sas,scsi/megaraid,scsi/aacraid,scsi/be2iscsi,scsi/bfa,scsi/qedi,scsi/qedf,scsi/fnic,scsi/csiostor,scsi/cxgbi,scsi/bnx2fc,scsi/bnx2i,scsi/pm8001,scsi/smartpqi,scsi/mpi3mr,scsi/hisi_sas} \
       sound net/{bluetooth,mac80211,wireless,netfilter,ipv4/netfilter,ipv6/netfilter,sched,sunrpc,ceph,rxrpc,tipc,sctp,rds,openvswitch,mpls,l2tp,batman-adv,6lowpan,ieee802154,nfc} \
       fs/{ocfs2,nfs,nfsd,cifs,smb,ceph,gfs2,afs,ntfs3,f2fs,jfs,nilfs2,ubifs,reiserfs,orangefs,coda,dlm,lockd,9p,gfs2,erofs,hfsplus,hfs,udf,bcachefs} )
  chroot "$root" depmod "$(basename "$(dirname "$kdir")")"
done
# The initramfs lists its modules (MODULES=list) instead of Debian's default
# MODULES=most: update-initramfs then takes 5 s instead of 22 s natively, and
# minutes instead of ~20 under TCG, the slowest step of a drill. The list is
# what a QEMU guest's root needs; the cryptsetup, lvm2 and mdadm hooks add
# dm-crypt, dm and md themselves. A real host keeps its own setting.
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
cat >> "$root/etc/initramfs-tools/modules" <<'MODS'
# strata test image: a QEMU guest's disks and root filesystems.
virtio_pci
virtio_blk
virtio_scsi
sd_mod
ahci
nvme
crc32c_generic
crc32c-intel
ext4
xfs
btrfs
vfat
nls_cp437
nls_ascii
MODS
# systemd gives a device 90 s to appear (DefaultTimeoutStartSec; systemd 252
# has no separate device timeout). A TCG guest sharing two host cores with
# another guest has stalled for 46 s in kdevtmpfs, so /home's LV came late and
# the drill's boot ended in emergency mode. Real hardware never needs this; a
# drill of a real host's image on a slow CI machine may (docs/drill.md).
mkdir -p "$root/etc/systemd/system.conf.d"
cat > "$root/etc/systemd/system.conf.d/strata-test-tcg.conf" <<'CONF'
[Manager]
DefaultTimeoutStartSec=10min
CONF
# The initramfs is regenerated on every restore; shipping one is dead weight.
rm -f "$root"/boot/initrd.img-*
# No host keys or caches in the image: they would be shared by every restore.
rm -f "$root"/etc/ssh/ssh_host_* "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_* 2>/dev/null || true
tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$root" -cf - . | zstd -q -T0 -6 -o "$out.tmp"
mv "$out.tmp" "$out"
(cd "$cache/images" && sha256sum "$(basename "$out")" > "$out.sha256")
ln -sfn "$(basename "$out")" "$link"
echo "test image: $out $(du -h "$out" | cut -f1) in $(( $(date +%s) - start )) s"
