package parse

import (
	"fmt"
	"strings"
)

// FATInfo is a FAT boot sector as `fsck.fat -n -v DEVICE` describes it.
type FATInfo struct {
	SystemID        string
	SectorSize      int64 // bytes per logical sector
	ClusterSize     int64 // bytes per cluster
	ReservedSectors int64
	FATs            int64
	FATBits         int64 // 12, 16 or 32
	Sectors         int64
	HiddenSectors   int64
}

// SectorsPerCluster is the mkfs.fat -s value.
func (f *FATInfo) SectorsPerCluster() int64 {
	if f.SectorSize == 0 {
		return 0
	}
	return f.ClusterSize / f.SectorSize
}

// FsckFat parses the boot sector report of `fsck.fat -n -v DEVICE`.
func FsckFat(data []byte) (*FATInfo, error) {
	f := &FATInfo{}
	for _, l := range lines(data) {
		t := strings.TrimSpace(l)
		if id, ok := strings.CutPrefix(t, "System ID "); ok {
			f.SystemID = strings.Trim(id, `"`)
			continue
		}
		n, err := atoi64(t)
		if err != nil {
			continue
		}
		rest := strings.TrimSpace(t[len(fmt.Sprint(n)):])
		switch {
		case rest == "bytes per logical sector":
			f.SectorSize = n
		case rest == "bytes per cluster":
			f.ClusterSize = n
		case rest == "reserved sectors" || rest == "reserved sector":
			f.ReservedSectors = n
		case strings.HasPrefix(rest, "FATs, ") || strings.HasPrefix(rest, "FAT, "):
			f.FATs = n
			var bits int64
			if _, err := fmt.Sscanf(rest[strings.Index(rest, ",")+1:], " %d bit entries", &bits); err == nil {
				f.FATBits = bits
			}
		case rest == "sectors total":
			f.Sectors = n
		case rest == "hidden sectors":
			f.HiddenSectors = n
		}
	}
	if f.SectorSize == 0 || f.ClusterSize == 0 || f.FATBits == 0 {
		return nil, fmt.Errorf("fsck.fat: no boot sector report in the output")
	}
	return f, nil
}
