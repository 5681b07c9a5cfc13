# Commands typed into the strata live image (QEMU) by regen_dm_test.go, one
# line at a time, to record the device-mapper and md fixtures the host cannot
# make. Disks: vda, vdb, vdc, vdd (512 MiB each, GPT made by the test:
# p1 64 MiB, p2 rest); vde receives /tmp/o as a tar archive at the end.
mkdir -p /tmp/o/mdadm /tmp/o/cryptsetup /tmp/o/lvm /tmp/o/lsblk /tmp/o/blkid /etc/lvm
echo 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 allow_mixed_block_sizes = 1 }' > /etc/lvm/lvm.conf
# md: a RAID1 /boot with metadata 1.0, and a RAID5 with a 128 KiB chunk
mdadm --create /dev/md/boot --run --level=1 --raid-devices=2 --metadata=1.0 --name=fixture:boot --assume-clean /dev/vda1 /dev/vdb1
mdadm --create /dev/md/data --run --level=5 --raid-devices=3 --chunk=128 --name=fixture:data /dev/vda2 /dev/vdb2 /dev/vdc2
mdadm --create /dev/md/mirror10 --run --level=10 --layout=f2 --raid-devices=2 --metadata=1.2 --name=fixture:r10 --assume-clean /dev/vdc1 /dev/vdd1
mkfs.ext4 -q -L boot /dev/md/boot
mdadm --detail --export /dev/md/boot > /tmp/o/mdadm/detail-export-raid1.txt
mdadm --detail /dev/md/boot > /tmp/o/mdadm/detail-raid1.txt
mdadm --detail --export /dev/md/data > /tmp/o/mdadm/detail-export-raid5.txt
mdadm --detail /dev/md/data > /tmp/o/mdadm/detail-raid5.txt
mdadm --detail --export /dev/md/mirror10 > /tmp/o/mdadm/detail-export-raid10.txt
mdadm --detail /dev/md/mirror10 > /tmp/o/mdadm/detail-raid10.txt
mdadm --examine --export /dev/vda1 > /tmp/o/mdadm/examine-export-raid1.txt
# LUKS2 on the RAID5, opened, LVM inside; LUKS1 on md/mirror10
echo -n fixture | cryptsetup luksFormat -q --type luks2 --pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 65536 --pbkdf-parallel 1 --sector-size 4096 --label data-crypt --subsystem fixture --uuid 0d8b6c2e-4f1a-4b3c-9d5e-6f7a8b9c0d1e --key-file - /dev/md/data
echo -n fixture | cryptsetup open --key-file - /dev/md/data cryptdata
echo -n fixture | cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --hash sha512 --cipher aes-cbc-essiv:sha256 --key-size 256 --uuid 1e9c7d3f-5a2b-4c4d-8e6f-7a8b9c0d1e2f --key-file - /dev/md/mirror10
cryptsetup luksDump --dump-json-metadata /dev/md/data > /tmp/o/cryptsetup/luks2.json
cryptsetup luksDump /dev/md/data > /tmp/o/cryptsetup/luks2-dump.txt
cryptsetup luksDump /dev/md/mirror10 > /tmp/o/cryptsetup/luks1-dump.txt
pvcreate -q --dataalignment 1m /dev/mapper/cryptdata
pvcreate -q /dev/vdd2
vgcreate -q -s 8m vg0 /dev/mapper/cryptdata /dev/vdd2
lvcreate -q -y -n root -L 200m vg0 /dev/mapper/cryptdata
lvcreate -q -y -n swap -L 64m vg0
lvcreate -q -y -n stripe -i 2 -I 64k -L 32m vg0 /dev/mapper/cryptdata /dev/vdd2
# a raid1 LV (dm-raid) mirrored across both PVs
lvcreate -q -y --type raid1 -m 1 -n mirror -L 32m vg0 /dev/mapper/cryptdata /dev/vdd2
lvcreate -q -y -n pool --type thin-pool -L 64m vg0
lvcreate -q -y -n thin -V 320m --thinpool vg0/pool
lvcreate -q -y -n rootsnap -s -L 16m vg0/root
mkfs.ext4 -q -L root /dev/vg0/root
mkswap -L swap /dev/vg0/swap
pvs --reportformat json --units b --nosuffix -o pv_name,pv_uuid,vg_name,pv_size,dev_size,pe_start > /tmp/o/lvm/pvs.json
vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_extent_size,vg_size,vg_free,pv_count,lv_count > /tmp/o/lvm/vgs.json
lvs -a --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_uuid,lv_size,lv_attr,segtype,stripes,stripe_size,pool_lv,origin,lv_layout,lv_role,lv_dm_path,seg_count,devices > /tmp/o/lvm/lvs.json
lsblk --json --bytes --output NAME,KNAME,PATH,PKNAME,TYPE,SIZE,RO,RM,MAJ:MIN,LOG-SEC,PHY-SEC,MOUNTPOINTS,SERIAL,MODEL,WWN,TRAN > /tmp/o/lsblk/dm-md.json
blkid --probe --output export /dev/vda1 /dev/vda2 /dev/md127 /dev/md126 /dev/md125 /dev/mapper/cryptdata /dev/mapper/vg0-root > /tmp/o/blkid/dm-md.txt
sync
cd /tmp
tar -cf /dev/vde o
sync
