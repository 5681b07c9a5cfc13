package parse

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MDExport is `mdadm --detail --export ARRAY` (or --examine --export MEMBER):
// KEY=VALUE lines.
type MDExport struct {
	Values  map[string]string
	Members []MDMember // from MD_DEVICE_*_ROLE / _DEV, by role
}

// MDMember is one member device of an array.
type MDMember struct {
	Dev   string
	Role  string // a number (active slot), "spare", "faulty", "journal"
	State string // from the text --detail: "active sync", "spare", ...
}

// MdadmExport parses the KEY=VALUE output of mdadm's --export option.
func MdadmExport(data []byte) (*MDExport, error) {
	e := &MDExport{Values: map[string]string{}}
	roles := map[string]*MDMember{}
	for _, l := range lines(data) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok {
			continue
		}
		e.Values[k] = v
		if rest, ok := strings.CutPrefix(k, "MD_DEVICE_"); ok {
			switch {
			case strings.HasSuffix(rest, "_ROLE"):
				id := strings.TrimSuffix(rest, "_ROLE")
				if roles[id] == nil {
					roles[id] = &MDMember{}
				}
				roles[id].Role = v
			case strings.HasSuffix(rest, "_DEV"):
				id := strings.TrimSuffix(rest, "_DEV")
				if roles[id] == nil {
					roles[id] = &MDMember{}
				}
				roles[id].Dev = v
			}
		}
	}
	if e.Values["MD_LEVEL"] == "" || e.Values["MD_UUID"] == "" {
		return nil, fmt.Errorf("mdadm --export: no MD_LEVEL/MD_UUID in the output")
	}
	for _, m := range roles {
		e.Members = append(e.Members, *m)
	}
	sortMembers(e.Members)
	return e, nil
}

func sortMembers(ms []MDMember) {
	sort.Slice(ms, func(i, j int) bool {
		a, ea := strconv.Atoi(ms[i].Role)
		b, eb := strconv.Atoi(ms[j].Role)
		switch {
		case ea == nil && eb == nil:
			return a < b
		case ea == nil:
			return true
		case eb == nil:
			return false
		}
		return ms[i].Dev < ms[j].Dev
	})
}

// MDDetail is the text `mdadm --detail ARRAY`.
type MDDetail struct {
	Device       string
	Version      string // superblock format: 1.2, 1.0, 0.90, ...
	Level        string
	ArraySizeKiB int64
	RaidDevices  int
	Layout       string // as printed: left-symmetric, near=2, far=2, offset=2
	ChunkKiB     int64
	Bitmap       string // "Internal" or a file, from "Intent Bitmap"
	Consistency  string
	Name         string // host:name
	UUID         string
	Members      []MDMember
}

// MdadmDetail parses `mdadm --detail ARRAY`.
func MdadmDetail(data []byte) (*MDDetail, error) {
	d := &MDDetail{}
	inTable := false
	for _, l := range lines(data) {
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "Number") && strings.Contains(t, "RaidDevice") {
			inTable = true
			continue
		}
		if inTable {
			f := strings.Fields(t)
			if len(f) < 6 || !strings.HasPrefix(f[len(f)-1], "/") {
				continue
			}
			role := f[3]
			state := strings.Join(f[4:len(f)-1], " ")
			switch {
			case role == "-" && strings.Contains(state, "spare"):
				role = "spare"
			case role == "-" && strings.Contains(state, "faulty"):
				role = "faulty"
			case role == "-" && strings.Contains(state, "journal"):
				role = "journal"
			}
			d.Members = append(d.Members, MDMember{Dev: f[len(f)-1], Role: role, State: state})
			continue
		}
		if strings.HasSuffix(t, ":") && d.Device == "" && strings.HasPrefix(t, "/") {
			d.Device = strings.TrimSuffix(t, ":")
			continue
		}
		k, v, ok := keyValue(t, " : ")
		if !ok {
			continue
		}
		switch k {
		case "Version":
			d.Version = v
		case "Raid Level":
			d.Level = v
		case "Array Size":
			d.ArraySizeKiB, _ = atoi64(v)
		case "Raid Devices":
			n, _ := atoi64(v)
			d.RaidDevices = int(n)
		case "Layout":
			d.Layout = v
		case "Chunk Size":
			n, err := atoi64(strings.TrimSuffix(v, "K"))
			if err == nil {
				d.ChunkKiB = n
			}
		case "Intent Bitmap":
			d.Bitmap = v
		case "Consistency Policy":
			d.Consistency = v
		case "Name":
			d.Name, _, _ = strings.Cut(v, " ") // "host:name  (local to host host)"
		case "UUID":
			d.UUID = v
		}
	}
	if d.Level == "" || d.UUID == "" {
		return nil, fmt.Errorf("mdadm --detail: no Raid Level/UUID in the output")
	}
	return d, nil
}

// MDLayout turns --detail's layout into mdadm's --layout value: near=2 → n2,
// far=2 → f2, offset=2 → o2; RAID5/6 names stay as they are.
func MDLayout(level, layout string) string {
	if layout == "" {
		return ""
	}
	if level == "raid10" {
		var parts []string
		for _, p := range strings.Split(layout, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok {
				return layout
			}
			parts = append(parts, k[:1]+v)
		}
		return strings.Join(parts, "")
	}
	return layout
}
