// Package table writes and reads partition tables for restore: GPT with
// go-diskfs (type GUIDs, names, PARTUUIDs, attribute bits, disk GUID) and
// msdos (types, boot flag, disk identifier; logical partitions through an
// sfdisk script, because go-diskfs has no extended partitions).
//
// A Layout is plain data in bytes, so plans can print it and tests can
// compare it. Read gives back the same Layout from a disk, which is how a
// resumed restore decides that the table is already in place.
package table

import (
	"errors"
	"fmt"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
)

// Layout is a whole partition table.
type Layout struct {
	Type               string      `json:"type"` // gpt or msdos
	DiskSize           int64       `json:"disk_size"`
	SectorSize         int         `json:"sector_size"` // logical sector size in bytes
	PhysicalSectorSize int         `json:"physical_sector_size,omitempty"`
	GUID               string      `json:"guid,omitempty"`    // GPT disk GUID, upper case
	DiskID             string      `json:"disk_id,omitempty"` // msdos identifier, 0x%08x
	Partitions         []Partition `json:"partitions"`
}

// Partition is one entry. Start and Size are bytes and sector-aligned.
type Partition struct {
	Number     int    `json:"number"`
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	Type       string `json:"type"`            // GPT type GUID (upper case), or msdos "0x83"
	Label      string `json:"label,omitempty"` // GPT partition name
	UUID       string `json:"uuid,omitempty"`  // GPT PARTUUID, upper case
	Attributes uint64 `json:"attributes,omitempty"`
	Boot       bool   `json:"boot,omitempty"`
	Logical    bool   `json:"logical,omitempty"`
}

// End is the first byte after the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// File is what a table is written to: a block device or an image file
// (*os.File is one).
type File = backend.WritableFile

// ErrNeedsSfdisk is returned by Write for msdos tables with logical
// partitions: go-diskfs cannot write extended partitions, so the plan hands
// SfdiskScript to sfdisk instead.
var ErrNeedsSfdisk = errors.New("msdos logical partitions are written by sfdisk, not go-diskfs")

// NeedsSfdisk reports whether Write cannot write l itself.
func NeedsSfdisk(l *Layout) bool {
	if l.Type != "msdos" {
		return false
	}
	for _, p := range l.Partitions {
		if p.Logical {
			return true
		}
	}
	return false
}

// Extended is the msdos extended partition that holds the logical ones:
// from the first logical partition's EBR (one MiB before its data, where the
// plan leaves room) to the end of the last one. ok is false without logicals.
func Extended(l *Layout, ebrGap int64) (start, size int64, ok bool) {
	for _, p := range l.Partitions {
		if !p.Logical {
			continue
		}
		if !ok {
			start, ok = p.Start-ebrGap, true
		}
		size = p.End() - start
	}
	return start, size, ok
}

// SfdiskScript is the sfdisk input that writes an msdos table with logical
// partitions. The extended partition starts at the first logical partition's
// EBR, ebrGap bytes before its data, as sfdisk places EBRs at the start of the
// space it is given.
func SfdiskScript(l *Layout, ebrGap int64) string {
	ss := int64(l.SectorSize)
	var b strings.Builder
	b.WriteString("label: dos\n")
	if l.DiskID != "" {
		fmt.Fprintf(&b, "label-id: %s\n", l.DiskID)
	}
	fmt.Fprintf(&b, "unit: sectors\nsector-size: %d\n\n", l.SectorSize)
	line := func(start, size int64, typ string, boot bool) {
		fmt.Fprintf(&b, "start=%d, size=%d, type=%s", start/ss, size/ss, strings.TrimPrefix(typ, "0x"))
		if boot {
			b.WriteString(", bootable")
		}
		b.WriteByte('\n')
	}
	extDone := false
	for _, p := range l.Partitions {
		if p.Logical && !extDone {
			s, n, _ := Extended(l, ebrGap)
			line(s, n, "0x5", false)
			extDone = true
		}
		line(p.Start, p.Size, p.Type, p.Boot)
	}
	return b.String()
}

// Diff lists how got differs from want, in words; empty means equal.
// Sizes of the disk are not compared: only the table.
func Diff(want, got *Layout) []string {
	if got == nil {
		return []string{"no partition table"}
	}
	var d []string
	if want.Type != got.Type {
		return []string{fmt.Sprintf("table is %s, want %s", got.Type, want.Type)}
	}
	if want.GUID != "" && !strings.EqualFold(want.GUID, got.GUID) {
		d = append(d, fmt.Sprintf("disk GUID is %s, want %s", got.GUID, want.GUID))
	}
	if want.DiskID != "" && !strings.EqualFold(want.DiskID, got.DiskID) {
		d = append(d, fmt.Sprintf("disk identifier is %s, want %s", got.DiskID, want.DiskID))
	}
	byNum := map[int]Partition{}
	for _, p := range got.Partitions {
		byNum[p.Number] = p
	}
	for _, w := range want.Partitions {
		g, ok := byNum[w.Number]
		if !ok {
			d = append(d, fmt.Sprintf("partition %d is missing", w.Number))
			continue
		}
		delete(byNum, w.Number)
		d = append(d, PartitionDiff(w, g)...)
	}
	for n := range byNum {
		d = append(d, fmt.Sprintf("partition %d is not in the plan", n))
	}
	return d
}

// PartitionDiff compares one partition entry.
func PartitionDiff(w, g Partition) []string {
	var d []string
	f := func(what string, got, want any) {
		d = append(d, fmt.Sprintf("partition %d: %s is %v, want %v", w.Number, what, got, want))
	}
	if g.Start != w.Start {
		f("start", g.Start, w.Start)
	}
	if g.Size != w.Size {
		f("size", g.Size, w.Size)
	}
	if !strings.EqualFold(g.Type, w.Type) {
		f("type", g.Type, w.Type)
	}
	if w.UUID != "" && !strings.EqualFold(g.UUID, w.UUID) {
		f("PARTUUID", g.UUID, w.UUID)
	}
	if g.Label != w.Label {
		f("name", fmt.Sprintf("%q", g.Label), fmt.Sprintf("%q", w.Label))
	}
	if g.Attributes != w.Attributes {
		f("attributes", fmt.Sprintf("%#x", g.Attributes), fmt.Sprintf("%#x", w.Attributes))
	}
	if g.Boot != w.Boot {
		f("boot flag", g.Boot, w.Boot)
	}
	if g.Logical != w.Logical {
		f("logical", g.Logical, w.Logical)
	}
	return d
}
