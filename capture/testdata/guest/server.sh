# The file server of examples/server-raid1.yaml, made for real in the live
# image (BIOS): two GPT disks with a bios-boot partition, RAID1 /boot with
# metadata 1.0, RAID1 under LVM with xfs; a fake installed system under
# /tmp/root; then strata capture --root.
mkdir -p /tmp/o /etc/lvm /tmp/root/boot/grub/i386-pc
echo 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }' > /etc/lvm/lvm.conf
cp -r /tmp/s/server/root/etc /tmp/s/server/root/var /tmp/root/
mdadm --create /dev/md/md-boot --run --level=1 --raid-devices=2 --metadata=1.0 --name=fileserver:boot --assume-clean /dev/vda2 /dev/vdb2
mdadm --create /dev/md/md-data --run --level=1 --raid-devices=2 --metadata=1.2 --name=fileserver:data --assume-clean /dev/vda3 /dev/vdb3
mke2fs -q -t ext4 -L boot /dev/md/md-boot
pvcreate -q /dev/md/md-data
vgcreate -q vg-srv /dev/md/md-data
lvcreate -q -y -n root -L 400m vg-srv
lvcreate -q -y -n srv -l 90%FREE vg-srv
mkfs.xfs -q -L root -d agcount=4 /dev/vg-srv/root
mkfs.xfs -q -L srv /dev/vg-srv/srv
strata capture -root /tmp/root -record /tmp/o/server.txt > /tmp/o/server.yaml
