package live

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The live medium: the filesystem labelled MediumLabel (the stick's FAT32
// ESP, or the ISO9660 of a CD or of an ISO written to a stick) is mounted
// read-only at MediumMount, and its MediumDataDir, laid out like a `strata
// serve` directory, is a profile source (package source). There is no udev:
// the label is read from the superblocks of the block devices in sysfs.
const (
	MediumLabel   = "STRATA"            // image.Label
	MediumMount   = "/run/strata/stick" // where the medium is mounted, read-only
	MediumDataDir = "strata"            // image.DataDir: profiles/, images/, datasets/
)

// Medium is the live medium found by its label.
type Medium struct {
	Device string // e.g. /dev/sda1, /dev/sr0
	FSType string // vfat, iso9660 or ext4
	Label  string
	Mount  string // mount point, "" when not mounted
	Dir    string // Mount/MediumDataDir when it exists, else ""
}

// Labelled is a block device whose filesystem has a given label.
type Labelled struct {
	Name   string // kernel name, e.g. sda1
	FSType string
	Label  string
}

// FindLabelled lists the block devices under sysRoot/class/block whose
// filesystem label is label (case-insensitively, as FAT labels are upper
// case), reading the superblocks from devRoot. A partition whose whole disk
// matches too is left out: an ISO written to a stick is an ISO9660 on the
// whole disk and again on its first partition.
func FindLabelled(sysRoot, devRoot, label string) ([]Labelled, error) {
	dir := filepath.Join(sysRoot, "class", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("find the medium labelled %s: %w", label, err)
	}
	var hits []Labelled
	parentOf := map[string]string{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") || strings.HasPrefix(name, "loop") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name, "partition")); err == nil {
			if real, err := filepath.EvalSymlinks(filepath.Join(dir, name)); err == nil {
				parentOf[name] = filepath.Base(filepath.Dir(real))
			}
		}
		f, err := os.Open(filepath.Join(devRoot, name))
		if err != nil {
			continue // no node, no medium (an empty CD drive: ENOMEDIUM)
		}
		fstype, l := ReadLabel(f)
		f.Close()
		if fstype != "" && strings.EqualFold(l, label) {
			hits = append(hits, Labelled{Name: name, FSType: fstype, Label: l})
		}
	}
	whole := map[string]bool{}
	for _, h := range hits {
		whole[h.Name] = true
	}
	out := hits[:0]
	for _, h := range hits {
		if p := parentOf[h.Name]; p != "" && whole[p] {
			continue
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ReadLabel recognises ISO9660, FAT12/16/32 and ext2/3/4 and returns the
// type (as mount(2) names it) and the label; "" for anything else. A FAT
// label comes from the root directory's volume entry, else the boot sector
// (as blkid does).
func ReadLabel(r io.ReaderAt) (fstype, label string) {
	buf := make([]byte, 2048)
	if n, _ := r.ReadAt(buf, 0x8000); n >= 72 && buf[0] == 1 && string(buf[1:6]) == "CD001" {
		return "iso9660", strings.TrimRight(string(buf[40:72]), " \x00")
	}
	if n, _ := r.ReadAt(buf[:1024], 1024); n == 1024 && binary.LittleEndian.Uint16(buf[0x38:]) == 0xEF53 {
		return "ext4", cstring(buf[0x78 : 0x78+16])
	}
	if n, _ := r.ReadAt(buf[:512], 0); n == 512 {
		return fatLabel(r, buf[:512])
	}
	return "", ""
}

func fatLabel(r io.ReaderAt, bs []byte) (string, string) {
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bs[o:])) }
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return "", ""
	}
	bps, spc, reserved, nfats := le16(0x0B), int64(bs[0x0D]), le16(0x0E), int64(bs[0x10])
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 || reserved == 0 || nfats == 0 {
		return "", ""
	}
	var bootLabel string
	var rootOff, rootLen int64
	if fatSz := le16(0x16); fatSz == 0 { // FAT32
		if !bytes.HasPrefix(bs[0x52:], []byte("FAT32")) {
			return "", ""
		}
		bootLabel = string(bs[0x47 : 0x47+11])
		rootClus := le32(0x2C)
		if rootClus < 2 {
			return "", ""
		}
		rootOff = (reserved + nfats*le32(0x24) + (rootClus-2)*spc) * bps
		rootLen = spc * bps
	} else {
		if !bytes.HasPrefix(bs[0x36:], []byte("FAT1")) {
			return "", ""
		}
		bootLabel = string(bs[0x2B : 0x2B+11])
		rootOff = (reserved + nfats*fatSz) * bps
		rootLen = le16(0x11) * 32
	}
	label := strings.TrimRight(bootLabel, " \x00")
	if label == "NO NAME" {
		label = ""
	}
	root := make([]byte, min(rootLen, 64<<10))
	n, _ := r.ReadAt(root, rootOff)
	for o := 0; o+32 <= n; o += 32 {
		e := root[o : o+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 || e[11] == 0x0F || e[11]&0x08 == 0 {
			continue
		}
		label = strings.TrimRight(string(e[:11]), " \x00")
		break
	}
	return "vfat", label
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// mountMedium finds the medium labelled MediumLabel, waiting up to wait for
// it to appear (USB disks show up a few seconds after their driver loads),
// and mounts it read-only at MediumMount. It returns nil and no error when
// there is none; more than one is an error, and none is mounted: which one
// holds the profiles meant for this machine cannot be told.
func mountMedium(sysRoot string, wait time.Duration, logf func(string, ...any)) (*Medium, error) {
	deadline := time.Now().Add(wait)
	var found []Labelled
	for {
		var err error
		found, err = FindLabelled(sysRoot, "/dev", MediumLabel)
		if err != nil {
			return nil, err
		}
		if len(found) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
	default:
		var names []string
		for _, f := range found {
			names = append(names, "/dev/"+f.Name)
		}
		return nil, fmt.Errorf("medium: %d filesystems labelled %s (%s): none is used; remove all but one", len(found), MediumLabel, strings.Join(names, ", "))
	}
	f := found[0]
	m := &Medium{Device: "/dev/" + f.Name, FSType: f.FSType, Label: f.Label}
	if err := os.MkdirAll(MediumMount, 0o755); err != nil {
		return m, fmt.Errorf("medium %s: %w", m.Device, err)
	}
	if !isMountPoint(MediumMount) {
		t0 := time.Now()
		if err := unix.Mount(m.Device, MediumMount, f.FSType, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return m, fmt.Errorf("medium: mount %s (%s) read-only at %s: %w", m.Device, f.FSType, MediumMount, err)
		}
		logf("live: medium %s (%s, label %s) mounted read-only at %s in %s", m.Device, f.FSType, f.Label, MediumMount, time.Since(t0).Round(time.Millisecond))
	}
	m.Mount = MediumMount
	if st, err := os.Stat(filepath.Join(MediumMount, MediumDataDir)); err == nil && st.IsDir() {
		m.Dir = filepath.Join(MediumMount, MediumDataDir)
	}
	return m, nil
}

// WriteMedium prints the report line about the medium.
func WriteMedium(w io.Writer, m *Medium, err error) {
	switch {
	case m == nil && err == nil:
		fmt.Fprintf(w, "medium none (no filesystem labelled %s)\n", MediumLabel)
		return
	case m == nil || m.Mount == "":
		return // the error is reported as a warning
	}
	profiles := "no " + MediumDataDir + "/ directory"
	if m.Dir != "" {
		names, _ := filepath.Glob(filepath.Join(m.Dir, "profiles", "*.yaml"))
		for i, n := range names {
			names[i] = strings.TrimSuffix(filepath.Base(n), ".yaml")
		}
		profiles = fmt.Sprintf("%d profiles", len(names))
		if len(names) > 0 {
			profiles += ": " + strings.Join(names, " ")
		}
	}
	fmt.Fprintf(w, "medium %s %s %s at %s (read-only), %s\n", m.Device, m.FSType, m.Label, m.Mount, profiles)
}
