package live

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Disk is a block device as sysfs describes it.
type Disk struct {
	Name      string // vda, sda, nvme0n1
	Size      int64  // bytes
	Model     string
	Serial    string
	Removable bool
	ReadOnly  bool
}

// NIC is a network interface.
type NIC struct {
	Name  string
	MAC   string
	State string   // operstate: up, down, unknown
	Addrs []string // IPv4/IPv6 with prefix, e.g. 10.0.2.15/24
}

// Inventory is what the live system found.
type Inventory struct {
	Disks []Disk
	NICs  []NIC
}

// virtualDisk matches block devices that are not disks to restore onto.
func virtualDisk(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ReadDisks lists disks under sysRoot (normally "/sys"): real block devices
// with a non-zero size, sorted by name.
func ReadDisks(sysRoot string) ([]Disk, error) {
	dir := filepath.Join(sysRoot, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	var out []Disk
	for _, e := range ents {
		n := e.Name()
		if virtualDisk(n) {
			continue
		}
		base := filepath.Join(dir, n)
		sectors, _ := strconv.ParseInt(readTrim(filepath.Join(base, "size")), 10, 64)
		if sectors == 0 {
			continue // empty card readers, ejected media
		}
		d := Disk{
			Name:      n,
			Size:      sectors * 512, // sysfs counts 512-byte sectors whatever the logical block size
			Model:     readTrim(filepath.Join(base, "device", "model")),
			Removable: readTrim(filepath.Join(base, "removable")) == "1",
			ReadOnly:  readTrim(filepath.Join(base, "ro")) == "1",
		}
		// virtio-blk has "serial" on the disk, SCSI/SATA/NVMe on the device.
		for _, p := range []string{filepath.Join(base, "serial"), filepath.Join(base, "device", "serial")} {
			if s := readTrim(p); s != "" {
				d.Serial = s
				break
			}
		}
		if d.Serial == "" {
			d.Serial = scsiSerial(filepath.Join(base, "device", "vpd_pg80"))
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// scsiSerial decodes the unit serial number VPD page (0x80) that SCSI and
// SATA disks expose: 4 header bytes, then the serial, space padded.
func scsiSerial(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(string(b[4 : 4+n]))
}

// ReadNICs lists network interfaces under sysRoot except loopback; addrs
// looks up addresses by interface name (net.InterfaceByName in the image).
func ReadNICs(sysRoot string, addrs func(name string) []string) ([]NIC, error) {
	dir := filepath.Join(sysRoot, "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("nics: %w", err)
	}
	var out []NIC
	for _, e := range ents {
		n := e.Name()
		base := filepath.Join(dir, n)
		if n == "lo" || readTrim(filepath.Join(base, "type")) == "772" { // ARPHRD_LOOPBACK
			continue
		}
		nic := NIC{Name: n, MAC: readTrim(filepath.Join(base, "address")), State: readTrim(filepath.Join(base, "operstate"))}
		if addrs != nil {
			nic.Addrs = addrs(n)
		}
		out = append(out, nic)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// HostAddrs returns an interface's addresses from the running kernel.
func HostAddrs(name string) []string {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	as, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// HumanSize prints bytes in binary units with one decimal.
func HumanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// WriteInventory prints one line per disk and NIC, in a stable format that
// tests and people can read: `disk NAME SIZE (BYTES bytes) model="…" serial="…"`
// and `nic NAME MAC STATE ADDR...`.
func WriteInventory(w io.Writer, inv Inventory) {
	if len(inv.Disks) == 0 {
		fmt.Fprintln(w, "disk (none found)")
	}
	for _, d := range inv.Disks {
		var flags []string
		if d.Removable {
			flags = append(flags, "removable")
		}
		if d.ReadOnly {
			flags = append(flags, "read-only")
		}
		extra := ""
		if len(flags) > 0 {
			extra = " " + strings.Join(flags, " ")
		}
		fmt.Fprintf(w, "disk %s %s (%d bytes) model=%q serial=%q%s\n", d.Name, HumanSize(d.Size), d.Size, d.Model, d.Serial, extra)
	}
	if len(inv.NICs) == 0 {
		fmt.Fprintln(w, "nic (none found)")
	}
	for _, n := range inv.NICs {
		addrs := "no-address"
		if len(n.Addrs) > 0 {
			addrs = strings.Join(n.Addrs, " ")
		}
		fmt.Fprintf(w, "nic %s %s %s %s\n", n.Name, n.MAC, n.State, addrs)
	}
}
