package parse

import (
	"encoding/json"
	"fmt"
)

// LsblkColumns are the columns capture asks lsblk for; Lsblk reads them.
const LsblkColumns = "NAME,KNAME,PATH,PKNAME,TYPE,SIZE,RO,RM,MAJ:MIN,LOG-SEC,PHY-SEC,MOUNTPOINTS,SERIAL,MODEL,WWN,TRAN"

// BlockDevice is one node of `lsblk --json --bytes --output LsblkColumns`.
// A device with several parents (an md array, a multi-PV LV) appears under
// each of them.
type BlockDevice struct {
	Name        string
	KName       string
	Path        string
	PKName      string
	Type        string // disk, part, loop, crypt, lvm, raid1, md, rom, ...
	Size        int64
	ReadOnly    bool
	Removable   bool
	MajMin      string
	LogicalSec  int64
	PhysicalSec int64
	Mountpoints []string
	Serial      string
	Model       string
	WWN         string
	Transport   string
	Children    []BlockDevice
}

type lsblkNode struct {
	Name        flexString   `json:"name"`
	KName       flexString   `json:"kname"`
	Path        flexString   `json:"path"`
	PKName      flexString   `json:"pkname"`
	Type        flexString   `json:"type"`
	Size        flexInt      `json:"size"`
	RO          flexString   `json:"ro"`
	RM          flexString   `json:"rm"`
	MajMin      flexString   `json:"maj:min"`
	LogSec      flexInt      `json:"log-sec"`
	PhySec      flexInt      `json:"phy-sec"`
	Mountpoints []flexString `json:"mountpoints"`
	Serial      flexString   `json:"serial"`
	Model       flexString   `json:"model"`
	WWN         flexString   `json:"wwn"`
	Tran        flexString   `json:"tran"`
	Children    []lsblkNode  `json:"children"`
}

func truthy(s flexString) bool { return s == "1" || s == "true" }

func (n lsblkNode) device() BlockDevice {
	d := BlockDevice{Name: string(n.Name), KName: string(n.KName), Path: string(n.Path), PKName: string(n.PKName),
		Type: string(n.Type), Size: int64(n.Size), ReadOnly: truthy(n.RO), Removable: truthy(n.RM), MajMin: string(n.MajMin),
		LogicalSec: int64(n.LogSec), PhysicalSec: int64(n.PhySec), Serial: string(n.Serial), Model: string(n.Model),
		WWN: string(n.WWN), Transport: string(n.Tran)}
	for _, m := range n.Mountpoints {
		if m != "" {
			d.Mountpoints = append(d.Mountpoints, string(m))
		}
	}
	for _, c := range n.Children {
		d.Children = append(d.Children, c.device())
	}
	return d
}

// Lsblk parses `lsblk --json --bytes --output LsblkColumns [DEVICE...]`.
func Lsblk(data []byte) ([]BlockDevice, error) {
	var j struct {
		BlockDevices []lsblkNode `json:"blockdevices"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("lsblk --json: %w", err)
	}
	var out []BlockDevice
	for _, n := range j.BlockDevices {
		out = append(out, n.device())
	}
	return out, nil
}

// Walk calls fn for every device of the tree, parents before children, with
// the device's parent (nil at the top).
func Walk(devs []BlockDevice, fn func(d, parent *BlockDevice)) {
	var walk func(ds []BlockDevice, parent *BlockDevice)
	walk = func(ds []BlockDevice, parent *BlockDevice) {
		for i := range ds {
			fn(&ds[i], parent)
			walk(ds[i].Children, &ds[i])
		}
	}
	walk(devs, nil)
}
