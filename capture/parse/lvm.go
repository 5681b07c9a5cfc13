package parse

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The -o field lists capture asks pvs, vgs and lvs for (lvmreport(7)).
const (
	PVFields = "pv_name,pv_uuid,vg_name,pv_size,dev_size,pe_start"
	VGFields = "vg_name,vg_uuid,vg_extent_size,vg_size,vg_free,pv_count,lv_count"
	LVFields = "vg_name,lv_name,lv_uuid,lv_size,lv_attr,segtype,stripes,stripe_size,pool_lv,origin,lv_layout,lv_role,lv_dm_path,seg_count,devices"
)

// PV is a physical volume.
type PV struct {
	Name    string // device path
	UUID    string
	VG      string
	Size    int64
	DevSize int64
	PEStart int64
}

// VG is a volume group.
type VG struct {
	Name       string
	UUID       string
	ExtentSize int64
	Size       int64
	Free       int64
	PVCount    int
	LVCount    int
}

// LV is a logical volume, hidden ones ([pool_tdata]) included.
type LV struct {
	VG         string
	Name       string // without the brackets of hidden LVs
	Hidden     bool
	UUID       string
	Size       int64
	Attr       string
	SegType    string // linear, striped, raid1, thin-pool, thin, mirror, ...
	Stripes    int
	StripeSize int64
	Pool       string
	Origin     string
	Layout     string
	Role       string
	DMPath     string
	Segments   int
	Devices    string
}

// Snapshot reports whether the LV is an old-style (COW) snapshot.
func (l LV) Snapshot() bool {
	return strings.Contains(","+l.Role+",", ",snapshot,") || len(l.Attr) > 0 && (l.Attr[0] == 's' || l.Attr[0] == 'S')
}

type lvmReport struct {
	Report []map[string][]map[string]flexString `json:"report"`
}

func lvmRows(data []byte, kind string) ([]map[string]flexString, error) {
	var r lvmReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("lvm %ss --reportformat json: %w", kind, err)
	}
	var rows []map[string]flexString
	found := false
	for _, sub := range r.Report {
		if v, ok := sub[kind]; ok {
			found = true
			rows = append(rows, v...)
		}
	}
	if !found {
		return nil, fmt.Errorf("lvm %ss --reportformat json: no %q report", kind, kind)
	}
	return rows, nil
}

func num(s flexString) int64 {
	n, _ := atoi64(strings.TrimSuffix(strings.TrimSuffix(string(s), "B"), "b"))
	return n
}

// PVs parses `pvs --reportformat json --units b --nosuffix -o PVFields`.
func PVs(data []byte) ([]PV, error) {
	rows, err := lvmRows(data, "pv")
	if err != nil {
		return nil, err
	}
	var out []PV
	for _, r := range rows {
		out = append(out, PV{Name: string(r["pv_name"]), UUID: string(r["pv_uuid"]), VG: string(r["vg_name"]),
			Size: num(r["pv_size"]), DevSize: num(r["dev_size"]), PEStart: num(r["pe_start"])})
	}
	return out, nil
}

// VGs parses `vgs --reportformat json --units b --nosuffix -o VGFields`.
func VGs(data []byte) ([]VG, error) {
	rows, err := lvmRows(data, "vg")
	if err != nil {
		return nil, err
	}
	var out []VG
	for _, r := range rows {
		out = append(out, VG{Name: string(r["vg_name"]), UUID: string(r["vg_uuid"]), ExtentSize: num(r["vg_extent_size"]),
			Size: num(r["vg_size"]), Free: num(r["vg_free"]), PVCount: int(num(r["pv_count"])), LVCount: int(num(r["lv_count"]))})
	}
	return out, nil
}

// LVs parses `lvs -a --reportformat json --units b --nosuffix -o LVFields`.
func LVs(data []byte) ([]LV, error) {
	rows, err := lvmRows(data, "lv")
	if err != nil {
		return nil, err
	}
	var out []LV
	for _, r := range rows {
		name := string(r["lv_name"])
		hidden := strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]")
		out = append(out, LV{VG: string(r["vg_name"]), Name: strings.Trim(name, "[]"), Hidden: hidden,
			UUID: string(r["lv_uuid"]), Size: num(r["lv_size"]), Attr: string(r["lv_attr"]), SegType: string(r["segtype"]),
			Stripes: int(num(r["stripes"])), StripeSize: num(r["stripe_size"]), Pool: strings.Trim(string(r["pool_lv"]), "[]"),
			Origin: string(r["origin"]), Layout: string(r["lv_layout"]), Role: string(r["lv_role"]), DMPath: string(r["lv_dm_path"]),
			Segments: int(num(r["seg_count"])), Devices: string(r["devices"])})
	}
	return out, nil
}
