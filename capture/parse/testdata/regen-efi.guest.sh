# Commands run in the strata live image booted through OVMF (UEFI) by
# regen_dm_test.go (TestRegenEFIFixtures), one line at a time, to record
# efibootmgr -v with the boot entries of an installed machine: the
# distribution's, another operating system's and a tool's, on the ESP of vda
# (64 MiB, GPT made by the test: p1 the ESP, PARTUUID
# 1F0C2A3B-4D5E-4F60-8172-93A4B5C6D7E8); vdb receives /tmp/o as a tar archive.
mkdir -p /tmp/o/efibootmgr
busybox mountpoint -q /sys/firmware/efi/efivars || mount -t efivarfs efivarfs /sys/firmware/efi/efivars
efibootmgr -q --create --disk /dev/vda --part 1 --label debian --loader '\EFI\debian\shimx64.efi'
efibootmgr -q --create --disk /dev/vda --part 1 --label 'Windows Boot Manager' --loader '\EFI\Microsoft\Boot\bootmgfw.efi'
efibootmgr -q --create --disk /dev/vda --part 1 --label memtest86+ --loader '\EFI\memtest86\memtest.efi'
efibootmgr -v > /tmp/o/efibootmgr/ovmf-entries-v.txt
sync
cd /tmp
tar -cf /dev/vdb o
sync
