package parse

import "strings"

// Blkid parses `blkid --probe --output export DEVICE...`: one block of
// KEY=value lines per device, blank-line separated, keyed by DEVNAME.
func Blkid(data []byte) map[string]map[string]string {
	out := map[string]map[string]string{}
	var cur map[string]string
	for _, l := range lines(data) {
		if strings.TrimSpace(l) == "" {
			cur = nil
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		v = unescapeExport(v)
		if k == "DEVNAME" || cur == nil {
			cur = map[string]string{}
			if k == "DEVNAME" {
				out[v] = cur
			} else {
				out[""] = cur
			}
		}
		cur[k] = v
	}
	return out
}

// unescapeExport undoes blkid's shell quoting of export values (a backslash
// before spaces and other special characters).
func unescapeExport(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
