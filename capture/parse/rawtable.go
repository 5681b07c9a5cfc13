package parse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// ReadAtFunc reads n bytes at offset off of the disk.
type ReadAtFunc func(off int64, n int) ([]byte, error)

// ErrNoTable is returned by RawTable for a disk without a partition table.
var ErrNoTable = errors.New("no partition table")

// RawTable reads a disk's GPT or msdos partition table directly, for systems
// without sfdisk (the live image), and reports it as Sfdisk would: the same
// Table, so the rest of capture cannot tell the difference. dev is the
// disk's device path (partition nodes are named after it); sectorSize its
// logical sector size.
func RawTable(dev string, sectorSize int64, read ReadAtFunc) (*Table, error) {
	if sectorSize <= 0 {
		sectorSize = 512
	}
	mbr, err := read(0, 512)
	if err != nil {
		return nil, err
	}
	if len(mbr) < 512 || mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, ErrNoTable
	}
	protective := false
	for i := 0; i < 4; i++ {
		if mbr[446+16*i+4] == 0xee {
			protective = true
		}
	}
	if protective {
		return rawGPT(dev, sectorSize, read)
	}
	return rawMBR(dev, sectorSize, mbr, read)
}

// PartitionNode names partition n of disk dev as the kernel does.
func PartitionNode(dev string, n int) string {
	if dev != "" && dev[len(dev)-1] >= '0' && dev[len(dev)-1] <= '9' {
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

func guid(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16]))
}

func rawGPT(dev string, ss int64, read ReadAtFunc) (*Table, error) {
	h, err := read(ss, 512)
	if err != nil {
		return nil, err
	}
	if len(h) < 92 || string(h[0:8]) != "EFI PART" {
		return nil, fmt.Errorf("%s: protective MBR but no GPT header at LBA 1", dev)
	}
	le := binary.LittleEndian
	t := &Table{Label: "gpt", ID: guid(h[56:72]), Device: dev, Unit: "sectors", SectorSize: ss,
		FirstLBA: int64(le.Uint64(h[40:48])), LastLBA: int64(le.Uint64(h[48:56]))}
	entryLBA, count, size := int64(le.Uint64(h[72:80])), int(le.Uint32(h[80:84])), int(le.Uint32(h[84:88]))
	if size < 128 || count > 4096 {
		return nil, fmt.Errorf("%s: GPT header with %d entries of %d bytes", dev, count, size)
	}
	ents, err := read(entryLBA*ss, count*size)
	if err != nil {
		return nil, err
	}
	for i := 0; i < count && (i+1)*size <= len(ents); i++ {
		e := ents[i*size : (i+1)*size]
		typ := guid(e[0:16])
		if typ == "00000000-0000-0000-0000-000000000000" {
			continue
		}
		first, last := int64(le.Uint64(e[32:40])), int64(le.Uint64(e[40:48]))
		attrs := le.Uint64(e[48:56])
		u := make([]uint16, 36)
		for k := range u {
			u[k] = le.Uint16(e[56+2*k:])
		}
		name := string(utf16.Decode(u))
		if z := strings.IndexRune(name, 0); z >= 0 {
			name = name[:z]
		}
		t.Partitions = append(t.Partitions, Partition{Node: PartitionNode(dev, i+1), Number: i + 1, Start: first,
			Size: last - first + 1, Type: typ, UUID: guid(e[16:32]), Name: name, Attrs: sfdiskAttrString(attrs)})
	}
	return t, nil
}

// sfdiskAttrString writes GPT attribute bits as sfdisk does.
func sfdiskAttrString(bits uint64) string {
	var parts, guidBits []string
	for _, n := range []struct {
		bit  int
		name string
	}{{0, "RequiredPartition"}, {1, "NoBlockIOProtocol"}, {2, "LegacyBIOSBootable"}} {
		if bits&(1<<n.bit) != 0 {
			parts = append(parts, n.name)
		}
	}
	for b := 3; b < 64; b++ {
		if bits&(1<<b) != 0 {
			guidBits = append(guidBits, fmt.Sprint(b))
		}
	}
	if len(guidBits) > 0 {
		parts = append(parts, "GUID:"+strings.Join(guidBits, ","))
	}
	return strings.Join(parts, " ")
}

func rawMBR(dev string, ss int64, mbr []byte, read ReadAtFunc) (*Table, error) {
	le := binary.LittleEndian
	t := &Table{Label: "dos", ID: fmt.Sprintf("0x%08x", le.Uint32(mbr[440:444])), Device: dev, Unit: "sectors", SectorSize: ss}
	var ext int64 = -1
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ := e[4]
		if typ == 0 {
			continue
		}
		start, size := int64(le.Uint32(e[8:12])), int64(le.Uint32(e[12:16]))
		t.Partitions = append(t.Partitions, Partition{Node: PartitionNode(dev, i+1), Number: i + 1, Start: start, Size: size,
			Type: fmt.Sprintf("%X", typ), Bootable: e[0] == 0x80})
		if typ == 0x05 || typ == 0x0f || typ == 0x85 {
			ext = start
		}
	}
	// Logical partitions: a chain of EBRs inside the extended partition.
	n := 5
	for next, hops := int64(0), 0; ext >= 0 && hops < 128; hops++ {
		ebrLBA := ext + next
		b, err := read(ebrLBA*ss, 512)
		if err != nil {
			return nil, err
		}
		if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa {
			break
		}
		e1, e2 := b[446:462], b[462:478]
		if e1[4] != 0 {
			t.Partitions = append(t.Partitions, Partition{Node: PartitionNode(dev, n), Number: n,
				Start: ebrLBA + int64(le.Uint32(e1[8:12])), Size: int64(le.Uint32(e1[12:16])),
				Type: fmt.Sprintf("%X", e1[4]), Bootable: e1[0] == 0x80})
			n++
		}
		if e2[4] == 0 {
			break
		}
		next = int64(le.Uint32(e2[8:12]))
	}
	return t, nil
}
