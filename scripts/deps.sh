#!/usr/bin/env bash
# Installs what strata's build and tests need, and unpacks Debian's kernel into the cache.
# Idempotent: a second run with everything in place takes about a second.
#   STRATA_CACHE   cache directory (default ~/.cache/strata)
set -euo pipefail

cache=${STRATA_CACHE:-$HOME/.cache/strata}
packages=(
  qemu-system-x86 qemu-utils ovmf ipxe-qemu
  cryptsetup-bin lvm2 thin-provisioning-tools mdadm e2fsprogs xfsprogs btrfs-progs dosfstools gdisk fdisk kmod efibootmgr
  systemd-boot-efi grub-efi-amd64-bin grub-pc-bin grub-common grub2-common isolinux syslinux syslinux-common mtools xorriso
  debootstrap zstd xz-utils cpio git subversion rsync busybox-static dnsmasq-base tmux curl ca-certificates
  openssh-server
  apache2 libapache2-mod-svn gettext-base openssh-client
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel: Debian's current linux-image-amd64 target, unpacked (not installed) with modules.dep.
kdir="$cache/kernel"
if [ ! -e "$kdir/current" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
  [ -n "$pkg" ] || { echo "deps: cannot resolve linux-image-amd64 to a kernel package" >&2; exit 1; }
  kver=${pkg#linux-image-}
  echo "deps: fetching kernel $pkg"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  mkdir -p "$kdir/$kver"
  dpkg -x "$tmp"/*.deb "$kdir/$kver/root"
  depmod -b "$kdir/$kver/root" "$kver"
  ln -sfn "$kver" "$kdir/current"
fi
kver=$(readlink "$kdir/current")
echo "deps: ok (kernel $kver in $kdir/$kver/root/boot/vmlinuz-$kver)"
