package restore

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/stratahq/strata/restore/plan"
)

var (
	lvmSection = regexp.MustCompile(`^\s*([A-Za-z0-9_.+-]+)\s*\{\s*(#.*)?$`)
	lvmID      = regexp.MustCompile(`^(\s*id\s*=\s*)"[^"]*"(.*)$`)
)

// PatchLVMIDs sets identities in LVM text metadata (a vgcfgbackup file):
// the group's id when vgUUID is set, and each named LV's. lvcreate and
// vgcreate cannot take UUIDs; vgcfgrestore of the patched file gives them.
// Sub-LVs (thin pool data, raid images) keep the ids LVM chose.
func PatchLVMIDs(text, vg, vgUUID string, lvs map[string]string) (string, error) {
	lines := strings.Split(text, "\n")
	var stack []string
	found := map[string]bool{}
	vgSeen := false
	for i, line := range lines {
		trim := strings.TrimSpace(line)
		if m := lvmSection.FindStringSubmatch(line); m != nil {
			stack = append(stack, m[1])
			continue
		}
		if strings.HasPrefix(trim, "}") {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		m := lvmID.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch {
		case len(stack) == 1 && stack[0] == vg:
			vgSeen = true
			if vgUUID != "" {
				lines[i] = m[1] + `"` + vgUUID + `"` + m[2]
			}
		case len(stack) == 3 && stack[0] == vg && stack[1] == "logical_volumes":
			if u, ok := lvs[stack[2]]; ok {
				lines[i] = m[1] + `"` + u + `"` + m[2]
				found[stack[2]] = true
			}
		}
	}
	if !vgSeen {
		return "", fmt.Errorf("no volume group %s in the metadata", vg)
	}
	var missing []string
	for name := range lvs {
		if !found[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("no LV %s in the metadata of %s", strings.Join(missing, ", "), vg)
	}
	return strings.Join(lines, "\n"), nil
}

func (a *applier) patchLVMIDs(s *plan.Step, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read LVM metadata backup: %w", err)
	}
	out, err := PatchLVMIDs(string(b), s.Check.Name, s.Check.UUID, s.Check.LVUUIDs)
	if err != nil {
		return err
	}
	a.log("set the profile's UUIDs in %s", file)
	return os.WriteFile(file, []byte(out), 0o600)
}
