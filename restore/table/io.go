package table

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Write writes l to f with go-diskfs. msdos tables with logical partitions
// return ErrNeedsSfdisk. f must be at least l.DiskSize bytes long.
func Write(f File, l *Layout) error {
	if err := l.check(); err != nil {
		return err
	}
	switch l.Type {
	case "gpt":
		return writeGPT(f, l)
	case "msdos":
		if NeedsSfdisk(l) {
			return ErrNeedsSfdisk
		}
		return writeMBR(f, l)
	}
	return fmt.Errorf("unknown table type %q", l.Type)
}

func (l *Layout) check() error {
	ss := int64(l.SectorSize)
	if ss < 512 || ss&(ss-1) != 0 {
		return fmt.Errorf("invalid sector size %d", l.SectorSize)
	}
	for _, p := range l.Partitions {
		if p.Start%ss != 0 || p.Size%ss != 0 || p.Size <= 0 {
			return fmt.Errorf("partition %d: start %d and size %d must be positive multiples of the %d-byte sector", p.Number, p.Start, p.Size, ss)
		}
		if p.End() > l.DiskSize {
			return fmt.Errorf("partition %d ends at byte %d, past the end of the disk (%d)", p.Number, p.End(), l.DiskSize)
		}
	}
	return nil
}

func writeGPT(f File, l *Layout) error {
	ss := int64(l.SectorSize)
	t := &gpt.Table{
		LogicalSectorSize:  l.SectorSize,
		PhysicalSectorSize: max(l.PhysicalSectorSize, l.SectorSize),
		GUID:               l.GUID,
		ProtectiveMBR:      true,
	}
	for _, p := range l.Partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index:      p.Number,
			Start:      uint64(p.Start / ss),
			End:        uint64(p.End()/ss - 1),
			Size:       uint64(p.Size),
			Type:       gpt.Type(strings.ToUpper(p.Type)),
			Name:       p.Label,
			GUID:       p.UUID,
			Attributes: p.Attributes,
		})
	}
	if err := t.Write(f, l.DiskSize); err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	// go-diskfs writes the protective MBR's entries only: clear a stale msdos
	// disk identifier, and cap the protective entry at 2^32-1 sectors, which
	// go-diskfs would truncate on disks over 2 TiB.
	var head [6]byte
	if n := l.DiskSize/ss - 1; n > 0xffffffff {
		var sz [4]byte
		binary.LittleEndian.PutUint32(sz[:], 0xffffffff)
		if _, err := f.WriteAt(sz[:], 446+12); err != nil {
			return fmt.Errorf("write protective MBR: %w", err)
		}
	}
	if _, err := f.WriteAt(head[:], 440); err != nil {
		return fmt.Errorf("write protective MBR: %w", err)
	}
	return nil
}

func writeMBR(f File, l *Layout) error {
	ss := int64(l.SectorSize)
	t := &mbr.Table{LogicalSectorSize: l.SectorSize, PhysicalSectorSize: max(l.PhysicalSectorSize, l.SectorSize)}
	// go-diskfs writes Partitions[i] into slot i, whatever its Index.
	slots := make([]*mbr.Partition, 4)
	for _, p := range l.Partitions {
		if p.Number < 1 || p.Number > 4 {
			return fmt.Errorf("msdos primary partition number %d out of 1-4", p.Number)
		}
		b, err := parseMBRType(p.Type)
		if err != nil {
			return err
		}
		start, size := p.Start/ss, p.Size/ss
		if start+size > 0xffffffff {
			return fmt.Errorf("partition %d ends past 2^32 sectors: an msdos table cannot address it (use gpt)", p.Number)
		}
		mp := &mbr.Partition{Index: p.Number, Bootable: p.Boot, Type: mbr.Type(b), Start: uint32(start), Size: uint32(size)}
		mp.StartCylinder, mp.StartHead, mp.StartSector = chs(start)
		mp.EndCylinder, mp.EndHead, mp.EndSector = chs(start + size - 1)
		slots[p.Number-1] = mp
	}
	last := 0
	for i, s := range slots {
		if s != nil {
			last = i + 1
		}
	}
	for i := 0; i < last; i++ {
		if slots[i] == nil {
			slots[i] = &mbr.Partition{Index: i + 1}
		}
		t.Partitions = append(t.Partitions, slots[i])
	}
	if err := t.Write(f, l.DiskSize); err != nil {
		return fmt.Errorf("write MBR: %w", err)
	}
	// go-diskfs does not write the disk identifier (bytes 440-443).
	id, err := parseDiskID(l.DiskID)
	if err != nil {
		return err
	}
	var b [6]byte
	binary.LittleEndian.PutUint32(b[:4], id)
	if _, err := f.WriteAt(b[:], 440); err != nil {
		return fmt.Errorf("write MBR disk identifier: %w", err)
	}
	if s, ok := f.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// chs is the cylinder/head/sector address of an LBA in the 255-head,
// 63-sector geometry fdisk uses; LBAs beyond 1023 cylinders get the usual
// 1023/254/63 marker. Only old BIOSes read it.
func chs(lba int64) (cyl, head, sec byte) {
	const heads, secs = 255, 63
	c := lba / (heads * secs)
	if c > 1023 {
		return 0xff, 0xfe, 0xff
	}
	h := (lba / secs) % heads
	s := lba%secs + 1
	return byte(c), byte(h), byte(s) | byte((c>>8)<<6)
}

func parseMBRType(t string) (byte, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(t), "0x"), 16, 8)
	if err != nil {
		return 0, fmt.Errorf("invalid msdos partition type %q", t)
	}
	return byte(v), nil
}

func parseDiskID(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid msdos disk identifier %q", s)
	}
	return uint32(v), nil
}

// Read reads the partition table on f; (nil, nil) when there is none.
// sectorSize is the disk's logical sector size.
func Read(f File, sectorSize int) (*Layout, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("read table: size: %w", err)
	}
	var mbrSec [512]byte
	if _, err := f.ReadAt(mbrSec[:], 0); err != nil {
		return nil, fmt.Errorf("read table: %w", err)
	}
	signed := mbrSec[510] == 0x55 && mbrSec[511] == 0xaa
	protective := false
	for i := 0; i < 4; i++ {
		protective = protective || mbrSec[446+16*i+4] == 0xee
	}
	if protective || !signed {
		t, err := gpt.Read(f, sectorSize, sectorSize)
		if err != nil {
			if protective {
				return nil, fmt.Errorf("read GPT: %w", err)
			}
			return nil, nil // neither table
		}
		if t.RecoveredFromBackup {
			return nil, errors.New("the primary GPT is damaged (only the backup is valid)")
		}
		l := &Layout{Type: "gpt", DiskSize: size, SectorSize: sectorSize, GUID: strings.ToUpper(t.GUID)}
		ss := int64(sectorSize)
		for _, p := range t.Partitions {
			if p == nil || p.Type == gpt.Unused {
				continue
			}
			l.Partitions = append(l.Partitions, Partition{
				Number: p.Index, Start: int64(p.Start) * ss, Size: int64(p.End-p.Start+1) * ss,
				Type: strings.ToUpper(string(p.Type)), Label: p.Name, UUID: strings.ToUpper(p.GUID), Attributes: p.Attributes,
			})
		}
		return l, nil
	}
	return readMBR(f, mbrSec[:], size, sectorSize)
}

func readMBR(f File, sec []byte, size int64, sectorSize int) (*Layout, error) {
	ss := int64(sectorSize)
	l := &Layout{Type: "msdos", DiskSize: size, SectorSize: sectorSize,
		DiskID: fmt.Sprintf("0x%08x", binary.LittleEndian.Uint32(sec[440:444]))}
	var ext int64 = -1
	for i := 0; i < 4; i++ {
		e := sec[446+16*i : 462+16*i]
		typ := e[4]
		start, n := int64(binary.LittleEndian.Uint32(e[8:12])), int64(binary.LittleEndian.Uint32(e[12:16]))
		switch {
		case typ == 0:
			continue
		case typ == 0x05 || typ == 0x0f || typ == 0x85:
			ext = start
			continue
		}
		l.Partitions = append(l.Partitions, Partition{Number: i + 1, Start: start * ss, Size: n * ss,
			Type: fmt.Sprintf("0x%02x", typ), Boot: e[0] == 0x80})
	}
	// Logical partitions: a chain of EBRs, each with the partition relative to
	// itself and the next EBR relative to the extended partition's start.
	num, ebr := 5, ext
	for ebr > 0 && num < 5+128 {
		var b [512]byte
		if _, err := f.ReadAt(b[:], ebr*ss); err != nil {
			return nil, fmt.Errorf("read EBR at sector %d: %w", ebr, err)
		}
		if b[510] != 0x55 || b[511] != 0xaa {
			return nil, fmt.Errorf("EBR at sector %d has no signature", ebr)
		}
		e, next := b[446:462], b[462:478]
		if e[4] != 0 {
			rel, n := int64(binary.LittleEndian.Uint32(e[8:12])), int64(binary.LittleEndian.Uint32(e[12:16]))
			l.Partitions = append(l.Partitions, Partition{Number: num, Start: (ebr + rel) * ss, Size: n * ss,
				Type: fmt.Sprintf("0x%02x", e[4]), Boot: e[0] == 0x80, Logical: true})
			num++
		}
		if next[4] == 0 {
			break
		}
		ebr = ext + int64(binary.LittleEndian.Uint32(next[8:12]))
	}
	return l, nil
}
