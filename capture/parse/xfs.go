package parse

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// XFSInfo is an xfs superblock's geometry as `xfs_db -r -c info -c version
// -c uuid -c label DEVICE` prints it (the info part is xfs_info's format).
type XFSInfo struct {
	// Values by section and key, e.g. "meta-data.agcount", "data.bsize",
	// "log.blocks", "naming.ftype", and the section heads themselves
	// ("log" → "internal log", "realtime" → "none").
	Values   map[string]string
	Version  []string // the version command's flag names: V5, CRC, FINOBT, ...
	UUID     string
	Label    string
	Device   string // the meta-data= head
	External bool   // external log device
}

var (
	xfsHead = regexp.MustCompile(`^([a-z-]+)\s*=\s*(.*?)(?:\s{2,}|$)(.*)$`)
	xfsKV   = regexp.MustCompile(`([a-z0-9-]+)=([^\s,]+)`)
)

// XFSDB parses xfs_db's info, version, uuid and label output.
func XFSDB(data []byte) (*XFSInfo, error) {
	x := &XFSInfo{Values: map[string]string{}}
	section := ""
	for _, l := range lines(data) {
		switch {
		case strings.HasPrefix(l, "versionnum "):
			if _, v, ok := strings.Cut(l, "= "); ok {
				x.Version = strings.Split(strings.TrimSpace(v), ",")
			}
			continue
		case strings.HasPrefix(l, "UUID = "):
			x.UUID = strings.TrimSpace(strings.TrimPrefix(l, "UUID = "))
			continue
		case strings.HasPrefix(l, "label = "):
			v := strings.TrimSpace(strings.TrimPrefix(l, "label = "))
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			x.Label = v
			continue
		}
		var rest string
		if !strings.HasPrefix(l, " ") {
			m := xfsHead.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			var head string
			section, head, rest = m[1], m[2], m[3]
			if strings.Contains(head, "=") { // "data     =      bsize=4096": no head value
				head, rest = "", head+" "+rest
			}
			x.Values[section] = head
		} else if t := strings.TrimSpace(l); strings.HasPrefix(t, "=") {
			rest = strings.TrimPrefix(t, "=")
		}
		if section == "" {
			continue
		}
		for _, kv := range xfsKV.FindAllStringSubmatch(rest, -1) {
			x.Values[section+"."+kv[1]] = kv[2]
		}
	}
	if x.Values["meta-data.agcount"] == "" || x.Values["data.bsize"] == "" {
		return nil, fmt.Errorf("xfs_db: no geometry (info) in the output")
	}
	x.Device = x.Values["meta-data"]
	x.External = x.Values["log"] != "" && x.Values["log"] != "internal log" && x.Values["log"] != "internal"
	return x, nil
}

// Int returns a numeric value by key ("meta-data.agcount"), 0 when absent.
func (x *XFSInfo) Int(key string) int64 {
	n, _ := strconv.ParseInt(x.Values[key], 10, 64)
	return n
}

// Flag reports a 0/1 setting by key; ok is false when the key is absent
// (older xfsprogs do not print newer features).
func (x *XFSInfo) Flag(key string) (on, ok bool) {
	v, ok := x.Values[key]
	return v == "1", ok
}
