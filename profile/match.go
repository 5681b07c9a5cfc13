package profile

import (
	"path"
	"strings"
)

// Facts is what the live system knows about the machine it runs on.
type Facts struct {
	MACs []string
	DMI  DMIMatch
}

// Matches reports whether the machine described by f is this host: any one of
// the MAC addresses, or every DMI field the profile gives (shell patterns allowed).
func (m *HostMatch) Matches(f Facts) bool {
	if m == nil {
		return false
	}
	for _, want := range m.MAC {
		for _, have := range f.MACs {
			if strings.EqualFold(want, have) {
				return true
			}
		}
	}
	d := m.DMI
	if d == nil || *d == (DMIMatch{}) {
		return false
	}
	for _, pair := range [][2]string{{d.Vendor, f.DMI.Vendor}, {d.Product, f.DMI.Product}, {d.Serial, f.DMI.Serial}} {
		if pair[0] == "" {
			continue
		}
		if ok, _ := path.Match(pair[0], strings.TrimSpace(pair[1])); !ok {
			return false
		}
	}
	return true
}
