package parse

import "bytes"

// MBRBootCode names the boot code in a disk's first sector (its first 440
// bytes; the disk signature and the partition table follow): "grub" for
// GRUB's boot.img as grub-install --target=i386-pc writes it, "" for none
// (all zero), "other" for anything else (syslinux, Windows, ...).
func MBRBootCode(sector []byte) string {
	code := sector[:min(len(sector), 440)]
	switch {
	case len(bytes.Trim(code, "\x00")) == 0:
		return ""
	case bytes.Contains(code, []byte("GRUB ")):
		return "grub"
	}
	return "other"
}
