package parse

import (
	"fmt"
	"strings"
)

// ExtSuper is the part of an ext2/3/4 superblock `dumpe2fs -h` prints that a
// faithful re-creation needs.
type ExtSuper struct {
	VolumeName      string // "" for <none>
	UUID            string
	Revision        string
	Features        []string // as printed, in order
	Flags           []string
	MountDefaults   []string // "Default mount options"; empty for (none)
	State           string
	Errors          string // continue, remount-ro or panic
	InodeCount      int64
	BlockCount      int64
	ReservedBlocks  int64
	BlockSize       int64
	ClusterSize     int64
	InodeSize       int64
	InodesPerGroup  int64
	BlocksPerGroup  int64
	RAIDStride      int64
	RAIDStripeWidth int64
	JournalDevice   string // external journal, when there is one
	JournalSize     string // "Total journal size", as printed
	Checksum        string
	OSType          string
}

var extErrors = map[string]string{"Continue": "continue", "Remount read-only": "remount-ro", "Panic": "panic"}

// Dumpe2fs parses `dumpe2fs -h DEVICE`.
func Dumpe2fs(data []byte) (*ExtSuper, error) {
	s := &ExtSuper{}
	seen := false
	for _, l := range lines(data) {
		k, v, ok := keyValue(l, ":")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "Filesystem volume name":
			if v != "<none>" {
				s.VolumeName = v
			}
		case "Filesystem UUID":
			s.UUID, seen = v, true
		case "Filesystem revision #":
			s.Revision = v
		case "Filesystem features":
			if v != "(none)" {
				s.Features = strings.Fields(v)
			}
		case "Filesystem flags":
			s.Flags = strings.Fields(v)
		case "Default mount options":
			if v != "(none)" {
				s.MountDefaults = strings.Fields(v)
			}
		case "Filesystem state":
			s.State = v
		case "Errors behavior":
			e, ok := extErrors[v]
			if !ok {
				return nil, fmt.Errorf("dumpe2fs: unknown errors behaviour %q", v)
			}
			s.Errors = e
		case "Filesystem OS type":
			s.OSType = v
		case "Inode count":
			s.InodeCount, err = atoi64(v)
		case "Block count":
			s.BlockCount, err = atoi64(v)
		case "Reserved block count":
			s.ReservedBlocks, err = atoi64(v)
		case "Block size":
			s.BlockSize, err = atoi64(v)
		case "Cluster size":
			s.ClusterSize, err = atoi64(v)
		case "Inode size":
			s.InodeSize, err = atoi64(v)
		case "Inodes per group":
			s.InodesPerGroup, err = atoi64(v)
		case "Blocks per group":
			s.BlocksPerGroup, err = atoi64(v)
		case "RAID stride":
			s.RAIDStride, err = atoi64(v)
		case "RAID stripe width":
			s.RAIDStripeWidth, err = atoi64(v)
		case "Journal device":
			s.JournalDevice = v
		case "Total journal size":
			s.JournalSize = v
		case "Checksum type":
			s.Checksum = v
		}
		if err != nil {
			return nil, fmt.Errorf("dumpe2fs: %s: %q: %w", k, v, err)
		}
	}
	if !seen || s.BlockSize == 0 || s.BlockCount == 0 {
		return nil, fmt.Errorf("dumpe2fs: no superblock in the output")
	}
	return s, nil
}

// HasFeature reports whether the superblock lists feature f.
func (s *ExtSuper) HasFeature(f string) bool {
	for _, x := range s.Features {
		if x == f {
			return true
		}
	}
	return false
}
