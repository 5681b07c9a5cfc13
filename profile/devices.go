package profile

import "fmt"

// DeviceKind says what makes a block device.
type DeviceKind string

const (
	KindDisk      DeviceKind = "disk"      // a whole disk with table: none
	KindPartition DeviceKind = "partition" // DISK/PART
	KindRAID      DeviceKind = "raid"      // NAME
	KindLUKS      DeviceKind = "luks"      // NAME
	KindLV        DeviceKind = "lv"        // VG/LV
)

// Device is a block device the profile creates, under the name other entries
// use to refer to it.
type Device struct {
	Ref       string
	Kind      DeviceKind
	Path      string // profile path of the entry that creates it
	Disk      *Disk
	Partition *Partition
	RAID      *RAID
	LUKS      *LUKS
	VG        *VolumeGroup
	LV        *LogicalVolume
}

// Devices lists every block device the profile creates, by reference. Thin
// pools are left out: they hold thin volumes but carry no filesystem.
func (p *Profile) Devices() map[string]*Device {
	out := map[string]*Device{}
	for i := range p.Disks {
		d := &p.Disks[i]
		if d.Table == "none" {
			out[d.Name] = &Device{Ref: d.Name, Kind: KindDisk, Path: "disks." + d.Name, Disk: d}
		}
		for j := range d.Partitions {
			pt := &d.Partitions[j]
			ref := d.Name + "/" + pt.Name
			out[ref] = &Device{Ref: ref, Kind: KindPartition, Path: fmt.Sprintf("disks.%s.partitions[%d]", d.Name, j), Disk: d, Partition: pt}
		}
	}
	for i := range p.RAID {
		r := &p.RAID[i]
		out[r.Name] = &Device{Ref: r.Name, Kind: KindRAID, Path: "raid." + r.Name, RAID: r}
	}
	for i := range p.LUKS {
		l := &p.LUKS[i]
		out[l.Name] = &Device{Ref: l.Name, Kind: KindLUKS, Path: "luks." + l.Name, LUKS: l}
	}
	for i := range p.VolumeGroups {
		vg := &p.VolumeGroups[i]
		for j := range vg.LVs {
			lv := &vg.LVs[j]
			if lv.Type == "thin-pool" {
				continue
			}
			ref := vg.Name + "/" + lv.Name
			out[ref] = &Device{Ref: ref, Kind: KindLV, Path: "volume_groups." + vg.Name + ".lvs." + lv.Name, VG: vg, LV: lv}
		}
	}
	return out
}

// Use is one place where the profile consumes a block device.
type Use struct {
	Ref  string // the device referred to
	Path string // profile path of the reference
	By   string // what consumes it, e.g. "luks.cryptroot" (its profile path)
}

// Uses lists every reference to a block device, in document order.
func (p *Profile) Uses() []Use {
	var out []Use
	for _, r := range p.RAID {
		for i, d := range r.Devices {
			out = append(out, Use{d, fmt.Sprintf("raid.%s.devices[%d]", r.Name, i), "raid." + r.Name})
		}
		for i, d := range r.Spares {
			out = append(out, Use{d, fmt.Sprintf("raid.%s.spares[%d]", r.Name, i), "raid." + r.Name})
		}
	}
	for _, l := range p.LUKS {
		out = append(out, Use{l.Device, "luks." + l.Name + ".device", "luks." + l.Name})
	}
	for _, vg := range p.VolumeGroups {
		for i, d := range vg.PVs {
			out = append(out, Use{d, fmt.Sprintf("volume_groups.%s.pvs[%d]", vg.Name, i), "volume_groups." + vg.Name})
		}
	}
	for i, f := range p.Filesystems {
		by := fmt.Sprintf("filesystems[%d]", i)
		out = append(out, Use{f.Device, by + ".device", by})
		if f.Btrfs != nil {
			for j, d := range f.Btrfs.Devices {
				out = append(out, Use{d, fmt.Sprintf("%s.btrfs.devices[%d]", by, j), by})
			}
		}
	}
	return out
}
