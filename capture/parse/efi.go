package parse

import (
	"regexp"
	"strings"
)

// EFIBoot is `efibootmgr -v`: the firmware's boot entries.
type EFIBoot struct {
	BootCurrent string
	BootOrder   []string
	Timeout     string
	Entries     []EFIEntry
}

// EFIEntry is one Boot#### variable.
type EFIEntry struct {
	Num      string // 0001
	Active   bool
	Label    string
	Path     string // the device path as printed
	PartUUID string // HD(n,GPT,<uuid>,...) when the entry points at a partition
	PartNum  string
	Loader   string // File(\EFI\debian\shimx64.efi)
}

var (
	efiEntry = regexp.MustCompile(`^Boot([0-9A-Fa-f]{4})(\*?) (.*)$`)
	efiHD    = regexp.MustCompile(`HD\((\d+),GPT,([0-9A-Fa-f-]{36})`)
	efiFile  = regexp.MustCompile(`(?:^|/)File\(([^)]*)\)`) // not FvFile(GUID): a firmware application
)

// EfibootmgrV parses `efibootmgr -v` (versions 16 to 18: label and path are
// separated by a tab).
func EfibootmgrV(data []byte) *EFIBoot {
	b := &EFIBoot{}
	for _, l := range lines(data) {
		if k, v, ok := keyValue(l, ":"); ok && !strings.HasPrefix(l, "Boot0") && !efiEntry.MatchString(l) {
			switch k {
			case "BootCurrent":
				b.BootCurrent = v
			case "BootOrder":
				if v != "" {
					b.BootOrder = strings.Split(v, ",")
				}
			case "Timeout":
				b.Timeout = v
			}
			continue
		}
		m := efiEntry.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		e := EFIEntry{Num: strings.ToUpper(m[1]), Active: m[2] == "*"}
		rest := m[3]
		if i := strings.IndexByte(rest, '\t'); i >= 0 {
			e.Label, e.Path = strings.TrimSpace(rest[:i]), strings.TrimSpace(rest[i+1:])
		} else {
			e.Label = strings.TrimSpace(rest)
		}
		if h := efiHD.FindStringSubmatch(e.Path); h != nil {
			e.PartNum, e.PartUUID = h[1], strings.ToUpper(h[2])
		}
		if f := efiFile.FindStringSubmatch(e.Path); f != nil {
			e.Loader = f[1]
		}
		b.Entries = append(b.Entries, e)
	}
	return b
}
