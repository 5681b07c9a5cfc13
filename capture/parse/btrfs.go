package parse

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// BtrfsSuper is what `btrfs inspect-internal dump-super DEVICE` says about a
// filesystem.
type BtrfsSuper struct {
	FSID         string
	MetadataUUID string
	Label        string
	TotalBytes   int64
	BytesUsed    int64
	SectorSize   int64
	NodeSize     int64
	NumDevices   int64
	DevID        int64
	DevUUID      string
	CompatRO     []string // FREE_SPACE_TREE, FREE_SPACE_TREE_VALID, BLOCK_GROUP_TREE, ...
	Incompat     []string // MIXED_BACKREF, EXTENDED_IREF, SKINNY_METADATA, NO_HOLES, ...
	CsumType     string
}

// DumpSuper parses `btrfs inspect-internal dump-super DEVICE`.
func DumpSuper(data []byte) (*BtrfsSuper, error) {
	s := &BtrfsSuper{}
	var flags *[]string
	for _, l := range lines(data) {
		if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, " ") {
			if flags != nil {
				for _, f := range strings.FieldsFunc(l, func(r rune) bool { return r == '(' || r == ')' || r == '|' || r == ' ' || r == '\t' }) {
					*flags = append(*flags, f)
				}
			}
			continue
		}
		flags = nil
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		k, v := f[0], f[len(f)-1]
		num := func() int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
		switch k {
		case "fsid":
			s.FSID = f[1]
		case "metadata_uuid":
			s.MetadataUUID = f[1]
		case "label":
			s.Label = strings.TrimSpace(strings.TrimPrefix(strings.TrimLeft(l, " \t"), "label"))
		case "total_bytes":
			s.TotalBytes = num()
		case "bytes_used":
			s.BytesUsed = num()
		case "sectorsize":
			s.SectorSize = num()
		case "nodesize":
			s.NodeSize = num()
		case "num_devices":
			s.NumDevices = num()
		case "dev_item.devid":
			s.DevID = num()
		case "dev_item.uuid":
			s.DevUUID = f[1]
		case "csum_type":
			s.CsumType = v
			if len(f) >= 3 {
				s.CsumType = strings.Trim(f[2], "()")
			}
		case "compat_ro_flags":
			flags = &s.CompatRO
		case "incompat_flags":
			flags = &s.Incompat
		}
	}
	if s.FSID == "" || s.NodeSize == 0 {
		return nil, fmt.Errorf("dump-super: no btrfs superblock in the output")
	}
	// the label line is "label\t\t\tNAME" (or nothing after it)
	s.Label = strings.TrimSpace(s.Label)
	return s, nil
}

// Has reports whether flag (e.g. "NO_HOLES") is in the compat_ro or incompat flags.
func (s *BtrfsSuper) Has(flag string) bool {
	for _, l := range [][]string{s.CompatRO, s.Incompat} {
		for _, f := range l {
			if f == flag {
				return true
			}
		}
	}
	return false
}

// BtrfsRoot is a subvolume (or snapshot) from the root tree.
type BtrfsRoot struct {
	ID         int64
	Parent     int64 // the subvolume it is in (5 = the top level)
	DirID      int64 // the directory inode in Parent that holds it (256 = Parent's top directory)
	Name       string
	UUID       string
	ParentUUID string // set for snapshots
	ReadOnly   bool
}

// BtrfsRootTree is the part of `btrfs inspect-internal dump-tree -t root`
// that describes subvolumes.
type BtrfsRootTree struct {
	Roots     []BtrfsRoot // subvolumes (id >= 256), by id
	DefaultID int64       // the default subvolume (5 when never set)
	Quota     bool        // a quota tree exists
}

var (
	treeItem = regexp.MustCompile(`^\s*item \d+ key \((\S+) (\S+) (\S+)\)`)
	refLine  = regexp.MustCompile(`^\s*root ref key dirid (\d+) sequence \d+ name (.*)$`)
	locLine  = regexp.MustCompile(`^\s*location key \((\S+) ROOT_ITEM`)
	flagLine = regexp.MustCompile(`flags 0x([0-9a-f]+)\(`)
)

var treeIDs = map[string]int64{"ROOT_TREE": 1, "EXTENT_TREE": 2, "CHUNK_TREE": 3, "DEV_TREE": 4, "FS_TREE": 5,
	"ROOT_TREE_DIR": 6, "CSUM_TREE": 7, "QUOTA_TREE": 8, "UUID_TREE": 9, "FREE_SPACE_TREE": 10, "BLOCK_GROUP_TREE": 11,
	"DATA_RELOC_TREE": -9}

func treeID(s string) int64 {
	if n, ok := treeIDs[s]; ok {
		return n
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// DumpTreeRoot parses `btrfs inspect-internal dump-tree -t root DEVICE`.
func DumpTreeRoot(data []byte) (*BtrfsRootTree, error) {
	t := &BtrfsRootTree{DefaultID: 5}
	roots := map[int64]*BtrfsRoot{}
	get := func(id int64) *BtrfsRoot {
		if roots[id] == nil {
			roots[id] = &BtrfsRoot{ID: id}
		}
		return roots[id]
	}
	var objID int64
	var itemType, offset string
	seenTree := false
	var dirLoc int64
	for _, l := range lines(data) {
		if m := treeItem.FindStringSubmatch(l); m != nil {
			objID, itemType, offset = treeID(m[1]), m[2], m[3]
			dirLoc = 0
			seenTree = true
			if m[1] == "QUOTA_TREE" && itemType == "ROOT_ITEM" {
				t.Quota = true
			}
			continue
		}
		switch {
		case itemType == "ROOT_ITEM" && objID >= 256:
			r := get(objID)
			tl := strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(tl, "uuid "):
				r.UUID = strings.TrimPrefix(tl, "uuid ")
			case strings.HasPrefix(tl, "parent_uuid "):
				if u := strings.TrimPrefix(tl, "parent_uuid "); strings.Trim(u, "0-") != "" {
					r.ParentUUID = u
				}
			case strings.Contains(tl, "last_snapshot"):
				if m := flagLine.FindStringSubmatch(tl); m != nil {
					fl, _ := strconv.ParseUint(m[1], 16, 64)
					r.ReadOnly = fl&1 != 0
				}
			}
		case itemType == "ROOT_REF":
			if m := refLine.FindStringSubmatch(l); m != nil {
				child := treeID(offset)
				r := get(child)
				r.Parent = objID
				r.DirID, _ = strconv.ParseInt(m[1], 10, 64)
				r.Name = m[2]
			}
		case itemType == "DIR_ITEM" && objID == 6:
			if m := locLine.FindStringSubmatch(l); m != nil {
				dirLoc = treeID(m[1])
			} else if strings.TrimSpace(l) == "name: default" && dirLoc != 0 {
				t.DefaultID = dirLoc
			}
		}
	}
	if !seenTree {
		return nil, fmt.Errorf("dump-tree -t root: no items in the output")
	}
	for _, r := range roots {
		if r.Name != "" {
			t.Roots = append(t.Roots, *r)
		}
	}
	sort.Slice(t.Roots, func(i, j int) bool { return t.Roots[i].ID < t.Roots[j].ID })
	return t, nil
}

// Paths resolves subvolume paths relative to the top level where the root
// tree alone allows it: a subvolume directly in its parent's top directory.
// Others (inside an ordinary directory of their parent) are left out; a
// mounted filesystem's `btrfs subvolume list` has their full paths.
func (t *BtrfsRootTree) Paths() map[int64]string {
	byID := map[int64]BtrfsRoot{}
	for _, r := range t.Roots {
		byID[r.ID] = r
	}
	out := map[int64]string{5: ""}
	var resolve func(id int64, depth int) (string, bool)
	resolve = func(id int64, depth int) (string, bool) {
		if p, ok := out[id]; ok {
			return p, true
		}
		r, ok := byID[id]
		if !ok || r.DirID != 256 || depth > 64 {
			return "", false
		}
		pp, ok := resolve(r.Parent, depth+1)
		if !ok {
			return "", false
		}
		p := r.Name
		if pp != "" {
			p = pp + "/" + r.Name
		}
		out[id] = p
		return p, true
	}
	for _, r := range t.Roots {
		resolve(r.ID, 0)
	}
	delete(out, 5)
	return out
}

// BtrfsSubvol is one line of `btrfs subvolume list MOUNTPOINT`.
type BtrfsSubvol struct {
	ID       int64
	Gen      int64
	TopLevel int64
	Path     string
}

var subvolLine = regexp.MustCompile(`^ID (\d+) gen (\d+) (?:cgen \d+ )?(?:parent \d+ )?top level (\d+) (?:parent_uuid \S+ )?(?:uuid \S+ )?path (.*)$`)

// SubvolumeList parses `btrfs subvolume list MOUNTPOINT`.
func SubvolumeList(data []byte) ([]BtrfsSubvol, error) {
	var out []BtrfsSubvol
	for _, l := range lines(data) {
		if strings.TrimSpace(l) == "" {
			continue
		}
		m := subvolLine.FindStringSubmatch(l)
		if m == nil {
			return nil, fmt.Errorf("btrfs subvolume list: unexpected line %q", l)
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		gen, _ := strconv.ParseInt(m[2], 10, 64)
		top, _ := strconv.ParseInt(m[3], 10, 64)
		out = append(out, BtrfsSubvol{ID: id, Gen: gen, TopLevel: top, Path: strings.TrimPrefix(m[4], "<FS_TREE>/")})
	}
	return out, nil
}

// BtrfsProfiles are the block group profiles in use, from the chunk tree.
type BtrfsProfiles struct {
	Data, Metadata, System string // single, dup, raid0, raid1, raid1c3, raid1c4, raid10, raid5, raid6
	Mixed                  bool   // data and metadata share block groups
}

var chunkType = regexp.MustCompile(`\stype ((?:DATA|METADATA|SYSTEM)(?:\|[A-Za-z0-9]+)*)`)

// DumpTreeChunk parses `btrfs inspect-internal dump-tree -t chunk DEVICE`.
// When a kind has chunks of several profiles (a conversion in progress), the
// one with the most chunks wins.
func DumpTreeChunk(data []byte) (*BtrfsProfiles, error) {
	count := map[string]map[string]int{"DATA": {}, "METADATA": {}, "SYSTEM": {}}
	found := false
	p := &BtrfsProfiles{}
	for _, l := range lines(data) {
		m := chunkType.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		found = true
		parts := strings.Split(m[1], "|")
		prof := "single"
		var kinds []string
		for _, x := range parts {
			switch x {
			case "DATA", "METADATA", "SYSTEM":
				kinds = append(kinds, x)
			default:
				prof = strings.ToLower(x)
			}
		}
		if len(kinds) == 2 {
			p.Mixed = true
		}
		for _, k := range kinds {
			count[k][prof]++
		}
	}
	if !found {
		return nil, fmt.Errorf("dump-tree -t chunk: no chunk items in the output")
	}
	best := func(m map[string]int) string {
		b, n := "", -1
		for k, v := range m {
			if v > n || v == n && k < b {
				b, n = k, v
			}
		}
		return b
	}
	p.Data, p.Metadata, p.System = best(count["DATA"]), best(count["METADATA"]), best(count["SYSTEM"])
	return p, nil
}
