package parse

import (
	"fmt"
	"strconv"
	"strings"
)

// FstabEntry is one line of /etc/fstab.
type FstabEntry struct {
	Spec    string // UUID=..., LABEL=..., PARTUUID=..., /dev/...
	File    string // mount point, or "none"/"swap" for swap
	VfsType string
	Options string
	Freq    int
	Passno  int
	Line    int
}

// Fstab parses /etc/fstab (fstab(5)): comments and blank lines are skipped,
// octal escapes (\040) are decoded, missing fields take their defaults.
func Fstab(data []byte) ([]FstabEntry, error) {
	var out []FstabEntry
	for i, l := range lines(data) {
		f := fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return out, fmt.Errorf("fstab line %d: want at least 3 fields, got %d", i+1, len(f))
		}
		e := FstabEntry{Spec: f[0], File: f[1], VfsType: f[2], Options: "defaults", Line: i + 1}
		if len(f) > 3 {
			e.Options = f[3]
		}
		if len(f) > 4 {
			e.Freq, _ = strconv.Atoi(f[4])
		}
		if len(f) > 5 {
			e.Passno, _ = strconv.Atoi(f[5])
		}
		out = append(out, e)
	}
	return out, nil
}

// CrypttabEntry is one line of /etc/crypttab.
type CrypttabEntry struct {
	Name    string
	Device  string
	KeyFile string // "none" or "-" mean ask
	Options string
	Line    int
}

// Crypttab parses /etc/crypttab (crypttab(5)).
func Crypttab(data []byte) ([]CrypttabEntry, error) {
	var out []CrypttabEntry
	for i, l := range lines(data) {
		f := fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return out, fmt.Errorf("crypttab line %d: want at least 2 fields", i+1)
		}
		e := CrypttabEntry{Name: f[0], Device: f[1], Line: i + 1}
		if len(f) > 2 {
			e.KeyFile = f[2]
		}
		if len(f) > 3 {
			e.Options = f[3]
		}
		out = append(out, e)
	}
	return out, nil
}

// fields splits a table line into fields, dropping comments and decoding
// octal escapes.
func fields(l string) []string {
	if i := strings.IndexByte(l, '#'); i >= 0 {
		l = l[:i]
	}
	f := strings.Fields(l)
	for i := range f {
		f[i] = unoctal(f[i])
	}
	return f
}

func unoctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	ID, Parent   int
	MajMin       string
	Root         string // path inside the filesystem (a bind mount or btrfs subvolume)
	MountPoint   string
	Options      string // per-mount options
	FSType       string
	Source       string
	SuperOptions string
}

// Mountinfo parses /proc/self/mountinfo (proc(5)).
func Mountinfo(data []byte) ([]MountInfo, error) {
	var out []MountInfo
	for i, l := range lines(data) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			return out, fmt.Errorf("mountinfo line %d: malformed", i+1)
		}
		m := MountInfo{MajMin: f[2], Root: unoctal(f[3]), MountPoint: unoctal(f[4]), Options: f[5]}
		m.ID, _ = strconv.Atoi(f[0])
		m.Parent, _ = strconv.Atoi(f[1])
		m.FSType = f[sep+1]
		if sep+2 < len(f) {
			m.Source = unoctal(f[sep+2])
		}
		if sep+3 < len(f) {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	return out, nil
}

// Swap is one active swap area from /proc/swaps.
type Swap struct {
	Filename string
	Type     string // partition or file
	SizeKiB  int64
	Priority int
}

// Swaps parses /proc/swaps.
func Swaps(data []byte) []Swap {
	var out []Swap
	for i, l := range lines(data) {
		f := strings.Fields(l)
		if i == 0 || len(f) < 5 {
			continue
		}
		s := Swap{Filename: unoctal(f[0]), Type: f[1]}
		s.SizeKiB, _ = strconv.ParseInt(f[2], 10, 64)
		s.Priority, _ = strconv.Atoi(f[4])
		out = append(out, s)
	}
	return out
}

// OSRelease parses os-release(5): KEY=value with shell quoting.
func OSRelease(data []byte) map[string]string {
	out := map[string]string{}
	for _, l := range lines(data) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		out[k] = shellUnquote(v)
	}
	return out
}

// shellUnquote reads a value as a shell assignment would: "..." or '...'.
func shellUnquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && strings.IndexByte("\"\\$`", in[i+1]) >= 0 {
				i++
			}
			b.WriteByte(in[i])
		}
		return b.String()
	}
	return v
}

// ShellVars parses KEY=value assignments of a shell fragment such as
// /etc/default/grub (no expansion; later assignments win).
func ShellVars(data []byte) map[string]string { return OSRelease(data) }

// PasswdEntry is one /etc/passwd or /etc/group line: name and numeric id.
type PasswdEntry struct {
	Name string
	ID   int
	Home string // passwd only
}

// Passwd parses /etc/passwd or /etc/group into entries by id.
func Passwd(data []byte) map[int]PasswdEntry {
	out := map[int]PasswdEntry{}
	for _, l := range lines(data) {
		f := strings.Split(l, ":")
		if len(f) < 3 || strings.HasPrefix(l, "#") {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		e := PasswdEntry{Name: f[0], ID: id}
		if len(f) >= 6 {
			e.Home = f[5]
		}
		if _, dup := out[id]; !dup {
			out[id] = e
		}
	}
	return out
}

// Cmdline splits a kernel command line into words, keeping quoted values
// ("a b" in param="a b") together.
func Cmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
			have = true
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
