package parse

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Table is a partition table as `sfdisk --json` reports it. Start and Size
// are in sectors of SectorSize bytes.
type Table struct {
	Label      string // gpt or dos
	ID         string // GPT disk GUID, or the msdos disk identifier 0x........
	Device     string
	Unit       string
	FirstLBA   int64
	LastLBA    int64
	SectorSize int64
	Partitions []Partition
}

// Partition is one table entry.
type Partition struct {
	Node     string
	Number   int // from the node name (sda3 → 3, nvme0n1p2 → 2)
	Start    int64
	Size     int64
	Type     string // GPT type GUID (upper case) or msdos type in hex ("83")
	UUID     string // GPT partition GUID (PARTUUID)
	Name     string // GPT partition name (PARTLABEL)
	Attrs    string // GPT attributes as sfdisk writes them
	Bootable bool   // msdos active flag
}

type sfdiskJSON struct {
	PartitionTable struct {
		Label      string  `json:"label"`
		ID         string  `json:"id"`
		Device     string  `json:"device"`
		Unit       string  `json:"unit"`
		FirstLBA   flexInt `json:"firstlba"`
		LastLBA    flexInt `json:"lastlba"`
		SectorSize flexInt `json:"sectorsize"`
		Partitions []struct {
			Node     string  `json:"node"`
			Start    flexInt `json:"start"`
			Size     flexInt `json:"size"`
			Type     string  `json:"type"`
			UUID     string  `json:"uuid"`
			Name     string  `json:"name"`
			Attrs    string  `json:"attrs"`
			Bootable bool    `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// Sfdisk parses `sfdisk --json DEVICE`.
func Sfdisk(data []byte) (*Table, error) {
	var j sfdiskJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("sfdisk --json: %w", err)
	}
	pt := j.PartitionTable
	if pt.Label == "" {
		return nil, fmt.Errorf("sfdisk --json: no partition table label")
	}
	t := &Table{Label: pt.Label, ID: pt.ID, Device: pt.Device, Unit: pt.Unit,
		FirstLBA: int64(pt.FirstLBA), LastLBA: int64(pt.LastLBA), SectorSize: int64(pt.SectorSize)}
	if t.SectorSize == 0 {
		t.SectorSize = 512 // sfdisk before 2.36 did not print it
	}
	if t.Unit != "" && t.Unit != "sectors" {
		return nil, fmt.Errorf("sfdisk --json: unit %q, want sectors", t.Unit)
	}
	for _, p := range pt.Partitions {
		t.Partitions = append(t.Partitions, Partition{
			Node: p.Node, Number: PartitionNumber(p.Node), Start: int64(p.Start), Size: int64(p.Size),
			Type: strings.ToUpper(p.Type), UUID: strings.ToUpper(p.UUID), Name: p.Name, Attrs: p.Attrs, Bootable: p.Bootable,
		})
	}
	return t, nil
}

// PartitionNumber is the trailing number of a partition device name.
func PartitionNumber(node string) int {
	i := len(node)
	for i > 0 && node[i-1] >= '0' && node[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(node[i:])
	return n
}

// IsExtended reports whether an msdos type is an extended partition container.
func IsExtended(msdosType string) bool {
	switch strings.ToLower(strings.TrimPrefix(strings.ToLower(msdosType), "0x")) {
	case "5", "05", "f", "0f", "85":
		return true
	}
	return false
}

// sfdiskAttrs are the names sfdisk uses for the defined GPT attribute bits.
var sfdiskAttrs = map[string]int{"RequiredPartition": 0, "NoBlockIOProtocol": 1, "LegacyBIOSBootable": 2}

// AttrBits reads sfdisk's attribute string ("RequiredPartition
// LegacyBIOSBootable GUID:60,62") into bit numbers, in ascending order.
func AttrBits(attrs string) ([]int, error) {
	set := map[int]bool{}
	for _, f := range strings.Fields(attrs) {
		if n, ok := sfdiskAttrs[f]; ok {
			set[n] = true
			continue
		}
		rest, ok := strings.CutPrefix(f, "GUID:")
		if !ok {
			return nil, fmt.Errorf("unknown GPT attribute %q", f)
		}
		for _, s := range strings.Split(rest, ",") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 63 {
				return nil, fmt.Errorf("bad GPT attribute bit %q", s)
			}
			set[n] = true
		}
	}
	var out []int
	for b := 0; b < 64; b++ {
		if set[b] {
			out = append(out, b)
		}
	}
	return out, nil
}
