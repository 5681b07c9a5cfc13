package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// identity fills transport, vendor, model, serial, WWN and the by-id names
// udev's 60-persistent-storage rules would give (virtio-, nvme-, ata-, scsi-,
// usb-, wwn-).
func (p *prober) identity(d *Disk, base, devPath string) {
	dev := filepath.Join(base, "device")
	d.Vendor = readString(filepath.Join(dev, "vendor"))
	d.Model = readString(filepath.Join(dev, "model"))
	d.Serial = readString(filepath.Join(base, "serial")) // virtio
	if d.Serial == "" {
		d.Serial = readString(filepath.Join(dev, "serial")) // nvme
	}
	if d.Serial == "" {
		d.Serial = vpdSerial(filepath.Join(dev, "vpd_pg80")) // scsi, ata
	}
	wwid := readString(filepath.Join(base, "wwid")) // nvme
	if wwid == "" {
		wwid = readString(filepath.Join(dev, "wwid")) // scsi, ata
	}
	d.WWN = wwn(wwid)
	d.Transport = transport(d.Name, d.Vendor, devPath)

	var ids []string
	ms := func(parts ...string) string {
		var keep []string
		for _, s := range parts {
			if s = udevSafe(s); s != "" {
				keep = append(keep, s)
			}
		}
		return strings.Join(keep, "_")
	}
	switch d.Transport {
	case "virtio":
		if d.Serial != "" {
			ids = append(ids, "virtio-"+udevSafe(d.Serial))
		}
	case "nvme":
		if d.Serial != "" {
			ids = append(ids, "nvme-"+ms(d.Model, d.Serial))
		}
		if wwid != "" {
			ids = append(ids, "nvme-"+udevSafe(wwid))
		}
	case "ata":
		if d.Serial != "" {
			ids = append(ids, "ata-"+ms(d.Model, d.Serial))
		}
	case "scsi":
		if strings.HasPrefix(wwid, "naa.") {
			ids = append(ids, "scsi-3"+strings.ToLower(strings.TrimPrefix(wwid, "naa.")))
		} else if d.Serial != "" {
			ids = append(ids, "scsi-0"+ms(d.Vendor, d.Model, d.Serial))
		}
	case "usb":
		if d.Serial != "" {
			ids = append(ids, "usb-"+ms(d.Vendor, d.Model, d.Serial)+"-0:0")
		}
	case "mmc":
		if n := readString(filepath.Join(dev, "name")); n != "" {
			ids = append(ids, "mmc-"+ms(n, readString(filepath.Join(dev, "serial"))))
		}
	}
	if d.WWN != "" && d.Transport != "nvme" {
		ids = append(ids, "wwn-"+d.WWN)
	}
	d.ByID = ids
}

// transport classifies the disk by its kernel name and sysfs device path.
func transport(name, vendor, devPath string) string {
	switch {
	case strings.HasPrefix(name, "loop"):
		return "loop"
	case strings.HasPrefix(name, "nvme"):
		return "nvme"
	case strings.HasPrefix(name, "mmcblk"):
		return "mmc"
	case strings.HasPrefix(name, "vd"):
		return "virtio"
	case strings.Contains(devPath, "/usb"):
		return "usb"
	case strings.TrimSpace(vendor) == "ATA" || regexp.MustCompile(`/ata[0-9]+/`).MatchString(devPath):
		return "ata"
	case strings.Contains(devPath, "/host"):
		return "scsi"
	}
	return ""
}

// vpdSerial reads the unit serial number page (0x80): a 4-byte header, then
// the serial in ASCII, often padded with spaces.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(strings.Trim(string(b[4:4+n]), "\x00"))
}

// wwn turns a sysfs wwid ("naa.5000c500a1b2c3d4", "eui.0025...") into the
// 0x form udev and lsblk show; other wwids (t10.ATA ...) carry no WWN.
func wwn(wwid string) string {
	for _, pre := range []string{"naa.", "eui."} {
		if strings.HasPrefix(wwid, pre) {
			return "0x" + strings.ToLower(strings.TrimPrefix(wwid, pre))
		}
	}
	return ""
}

// udevSafe mirrors udev's treatment of symlink names: trimmed, white space
// runs become one '_', and characters outside its safe set become '_'.
func udevSafe(s string) string {
	s = strings.Join(strings.Fields(s), "_")
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("#+-.:=@_", r) {
			return r
		}
		return '_'
	}, s)
}

var (
	pciRE  = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	hctlRE = regexp.MustCompile(`^([0-9]+):([0-9]+):([0-9]+):([0-9]+)$`)
	ataRE  = regexp.MustCompile(`^ata([0-9]+)$`)
	nvmeRE = regexp.MustCompile(`^nvme[0-9]+n([0-9]+)$`)
	hostRE = regexp.MustCompile(`^host([0-9]+)$`)
)

// derivedByPath gives the by-path names udev's path_id would: pci-ADDR for
// virtio-blk, pci-ADDR-ata-N, pci-ADDR-scsi-H:C:T:L (host numbered from the
// controller's first host), pci-ADDR-nvme-NSID.
func derivedByPath(d *Disk, devPath string) []string {
	parts := strings.Split(devPath, "/")
	pci, pciAt := "", -1
	for i, s := range parts {
		if pciRE.MatchString(s) {
			pci, pciAt = s, i
		}
	}
	if pci == "" || d.Transport == "usb" {
		return nil
	}
	base := "pci-" + pci
	switch d.Transport {
	case "nvme":
		if m := nvmeRE.FindStringSubmatch(d.Name); m != nil {
			return []string{base + "-nvme-" + m[1]}
		}
	case "virtio":
		return []string{base, "virtio-" + base}
	}
	for _, s := range parts[pciAt:] {
		if m := ataRE.FindStringSubmatch(s); m != nil {
			return []string{base + "-ata-" + m[1], base + "-ata-" + m[1] + ".0"}
		}
	}
	for i := len(parts) - 1; i > pciAt; i-- {
		m := hctlRE.FindStringSubmatch(parts[i])
		if m == nil {
			continue
		}
		host, _ := strconv.Atoi(m[1])
		// path_id numbers hosts relative to the lowest host of the controller.
		for j := pciAt; j < len(parts); j++ {
			if hostRE.MatchString(parts[j]) {
				host -= lowestHost(strings.Join(parts[:j], "/"))
				break
			}
		}
		return []string{fmt.Sprintf("%s-scsi-%d:%s:%s:%s", base, host, m[2], m[3], m[4])}
	}
	return nil
}

func lowestHost(dir string) int {
	ents, _ := os.ReadDir(dir)
	low := -1
	for _, e := range ents {
		if m := hostRE.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			if low < 0 || n < low {
				low = n
			}
		}
	}
	return max(low, 0)
}

// udevLinks adds the names udev made, when it runs, to the derived ones.
func (p *prober) udevLinks(d *Disk) {
	for _, kind := range []string{"by-id", "by-path"} {
		dir := filepath.Join(p.o.DevRoot, "disk", kind)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			target, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil || filepath.Base(target) != d.Name {
				continue
			}
			if kind == "by-id" {
				d.ByID = append(d.ByID, e.Name())
			} else {
				d.ByPath = append(d.ByPath, e.Name())
			}
		}
	}
	d.ByID, d.ByPath = uniq(d.ByID), uniq(d.ByPath)
}

func uniq(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	sort.Strings(s)
	out := s[:1]
	for _, x := range s[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// devNumber is a block device node's major:minor.
func devNumber(fi os.FileInfo) (string, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode()&os.ModeDevice == 0 {
		return "", false
	}
	rdev := uint64(st.Rdev)
	major := (rdev >> 8 & 0xfff) | (rdev >> 32 & ^uint64(0xfff))
	minor := (rdev & 0xff) | (rdev >> 12 & ^uint64(0xff))
	return fmt.Sprintf("%d:%d", major, minor), true
}
