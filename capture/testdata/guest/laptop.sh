# The laptop of examples/laptop-uefi.yaml, made for real in the live image
# (UEFI): GPT with the example's identities, LUKS2, LVM, ext4/xfs/vfat/swap, a
# fake installed system under /tmp/root (skeleton in guest/laptop/root), then
# strata capture --root, twice: before and after some drift.
# vda: GPT made on the host; the guest sees it as /dev/vda.
mkdir -p /tmp/o /etc/lvm /tmp/root/boot/efi /tmp/root/boot/grub/x86_64-efi
echo 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 allow_mixed_block_sizes = 1 }' > /etc/lvm/lvm.conf
cp -r /tmp/s/laptop/root/etc /tmp/s/laptop/root/var /tmp/root/
mkfs.fat -F 32 -i 7A3C1F2E -n ESP /dev/vda1
mke2fs -q -t ext4 -L boot -U 8e1d2c3b-4a59-4687-9a6b-5c4d3e2f1a0b /dev/vda2
echo -n laptop | cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 --hash sha256 --pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 65536 --pbkdf-parallel 1 --sector-size 4096 --label laptop-root --uuid 0d8b6c2e-4f1a-4b3c-9d5e-6f7a8b9c0d1e --key-file - /dev/vda3
echo -n laptop | cryptsetup open --key-file - /dev/vda3 cryptroot
pvcreate -q /dev/mapper/cryptroot
vgcreate -q -s 4m vg0 /dev/mapper/cryptroot
lvcreate -q -y -n root -l 60%VG vg0
lvcreate -q -y -n swap -L 512m vg0
lvcreate -q -y -n home -l 50%FREE vg0
mke2fs -q -t ext4 -L root -U 9f2e3d4c-5b6a-4798-8b7c-6d5e4f3a2b1c -b 4096 -I 256 -m 1 /dev/vg0/root
mkfs.xfs -q -L home -m uuid=a03f4e5d-6c7b-48a9-9c8d-7e6f5a4b3c2d /dev/vg0/home
mkswap -L swap -U b1405f6e-7d8c-49ba-8d9e-8f7a6b5c4d3e /dev/vg0/swap
mount -t vfat -o iocharset=utf8 /dev/vda1 /tmp/root/boot/efi
mkdir -p /tmp/root/boot/efi/EFI/debian /tmp/root/boot/efi/EFI/BOOT
echo GRUB > /tmp/root/boot/efi/EFI/debian/grubx64.efi
echo shim > /tmp/root/boot/efi/EFI/debian/shimx64.efi
echo 'GRUB shim fallback' > /tmp/root/boot/efi/EFI/BOOT/BOOTX64.EFI
git init -q -b hosts/laptop /tmp/root/etc
git -C /tmp/root/etc remote add origin https://files.example.org/git/etc.git
git -C /tmp/root/etc add fstab crypttab hostname
git -C /tmp/root/etc -c user.name=strata -c user.email=strata@example.org commit -q -m etc
git -C /tmp/root/etc update-ref refs/remotes/origin/hosts/laptop HEAD
git -C /tmp/root/etc branch -q --set-upstream-to=origin/hosts/laptop
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null; true
efibootmgr -v > /tmp/o/efibootmgr-v.txt
strata capture -root /tmp/root -record /tmp/o/laptop.txt > /tmp/o/laptop.yaml
# drift: a new LV, reserved blocks, a mount option, a new package
lvcreate -q -y -n data -L 128m vg0
tune2fs -r 10000 /dev/vg0/root
cp /tmp/s/laptop/fstab-drift /tmp/root/etc/fstab
cat /tmp/s/laptop/drift-status >> /tmp/root/var/lib/dpkg/status
strata capture -root /tmp/root -record /tmp/o/laptop-drift.txt > /tmp/o/laptop-drift.yaml
umount /tmp/root/boot/efi
