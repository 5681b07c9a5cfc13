package parse

import (
	"sort"
	"strings"
)

// DpkgPackage is one stanza of /var/lib/dpkg/status.
type DpkgPackage struct {
	Name   string
	Arch   string
	Status string // "install ok installed", ...
}

// Installed reports whether dpkg considers the package installed.
func (p DpkgPackage) Installed() bool {
	f := strings.Fields(p.Status)
	return len(f) == 3 && f[2] == "installed"
}

// stanzas splits a Debian control file (deb822) into field maps; continuation
// lines are dropped (capture needs none of the multi-line fields).
func stanzas(data []byte, want ...string) []map[string]string {
	keep := map[string]bool{}
	for _, w := range want {
		keep[w] = true
	}
	var out []map[string]string
	cur := map[string]string{}
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur = map[string]string{}
		}
	}
	for _, l := range lines(data) {
		if strings.TrimSpace(l) == "" {
			flush()
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if ok && keep[k] {
			cur[k] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

// DpkgStatus parses /var/lib/dpkg/status.
func DpkgStatus(data []byte) []DpkgPackage {
	var out []DpkgPackage
	for _, s := range stanzas(data, "Package", "Architecture", "Status") {
		if s["Package"] != "" {
			out = append(out, DpkgPackage{Name: s["Package"], Arch: s["Architecture"], Status: s["Status"]})
		}
	}
	return out
}

// AptAuto parses /var/lib/apt/extended_states: the set of packages marked
// automatically installed, as "name:arch".
func AptAuto(data []byte) map[string]bool {
	out := map[string]bool{}
	for _, s := range stanzas(data, "Package", "Architecture", "Auto-Installed") {
		if s["Auto-Installed"] == "1" {
			out[s["Package"]+":"+s["Architecture"]] = true
		}
	}
	return out
}

// ManualPackages is what `apt-mark showmanual` prints, computed from dpkg's
// status and apt's extended_states: installed packages not marked
// automatically installed, sorted; packages of a foreign architecture carry
// ":arch". The native architecture is dpkg's own.
func ManualPackages(status []DpkgPackage, auto map[string]bool) []string {
	native := ""
	for _, p := range status {
		if p.Name == "dpkg" && p.Installed() {
			native = p.Arch
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range status {
		if !p.Installed() {
			continue
		}
		arch := p.Arch
		if arch == "all" || arch == "" {
			arch = native
		}
		if auto[p.Name+":"+arch] || auto[p.Name+":"+p.Arch] {
			continue
		}
		name := p.Name
		if native != "" && arch != native {
			name += ":" + arch
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
