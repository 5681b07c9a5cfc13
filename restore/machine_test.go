package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/table"
)

// machine is a fake of the storage tools: it answers the commands restore
// runs as a Linux machine with those tools would, and keeps the state they
// create (filesystems, LUKS headers, md superblocks, LVM objects, mounts),
// so checks see what earlier steps made. Partition tables are real: disks
// are sparse image files and go-diskfs and sfdisk write them.
type machine struct {
	t         *testing.T
	dir       string
	images    map[string]string // disk device -> image file
	fs        map[string][2]string
	luks      map[string]string
	open      map[string]string
	mdMember  map[string][2]string // member -> uuid, level
	mdActive  map[string]string    // array device -> uuid
	mdMembers map[string][]string
	pvs       map[string]string // device -> uuid
	pvVG      map[string]string
	vgs       map[string]*fakeVG
	mounts    []fakeMount
	fail      func(c run.Cmd) error // inject a failure
	rec       *run.Recorder
}

type fakeVG struct {
	uuid   string
	extent int64
	lvs    []*fakeLV
}

type fakeLV struct {
	name, uuid string
	size       int64
	active     bool
}

type fakeMount struct{ point, dev, root, fstype string }

func newMachine(t *testing.T, p *plan.Plan) *machine {
	m := &machine{t: t, dir: t.TempDir(), images: map[string]string{}, fs: map[string][2]string{}, luks: map[string]string{},
		open: map[string]string{}, mdMember: map[string][2]string{}, mdActive: map[string]string{}, mdMembers: map[string][]string{},
		pvs: map[string]string{}, pvVG: map[string]string{}, vgs: map[string]*fakeVG{}}
	for _, d := range p.Disks {
		img := filepath.Join(m.dir, filepath.Base(d.Device)+".img")
		f, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(d.Size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		m.images[d.Device] = img
	}
	m.writeMounts()
	return m
}

func (m *machine) mountInfo() string { return filepath.Join(m.dir, "mountinfo") }

func (m *machine) writeMounts() {
	var b strings.Builder
	b.WriteString("22 1 0:21 / /proc rw - proc proc rw\n")
	for i, mt := range m.mounts {
		fmt.Fprintf(&b, "%d 1 0:%d %s %s rw - %s %s rw\n", 100+i, 50+i, mt.root, mt.point, mt.fstype, mt.dev)
	}
	if err := os.WriteFile(m.mountInfo(), []byte(b.String()), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *machine) openImage(path string, write bool) (table.File, error) {
	img, ok := m.images[path]
	if !ok {
		return nil, fmt.Errorf("fake machine: no disk %s", path)
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	return os.OpenFile(img, flag, 0)
}

func (m *machine) options() Options {
	return Options{Open: m.openImage, Wait: func(context.Context, []string) error { return nil }, MountInfo: m.mountInfo(),
		Journal: filepath.Join(m.dir, "journal.json"), Keys: literalKeys{}}
}

// literalKeys answers every volume with a fixed test passphrase.
type literalKeys struct{}

func (literalKeys) Passphrase(_ context.Context, name string, _ bool) ([]byte, error) {
	return []byte("pw-" + name), nil
}

func flagValue(args []string, names ...string) string {
	for i, a := range args {
		for _, n := range names {
			if a == n && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(a, n+"=") {
				return strings.TrimPrefix(a, n+"=")
			}
		}
	}
	return ""
}

func firstDev(args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "/dev/") {
			return a
		}
	}
	return ""
}

func devArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "/dev/") {
			out = append(out, a)
		}
	}
	return out
}

func fail(code int, stderr string) (run.Result, error) {
	return run.Result{ExitCode: code, Stderr: []byte(stderr)}, &run.ExitError{Cmd: "fake", Code: code, Stderr: stderr}
}

func ok(out string) (run.Result, error) { return run.Result{Stdout: []byte(out)}, nil }

// Respond is the run.Recorder hook.
func (m *machine) Respond(c run.Cmd) (run.Result, error) {
	if m.fail != nil {
		if err := m.fail(c); err != nil {
			return run.Result{ExitCode: 5}, err
		}
	}
	a := c.Args
	switch c.Name {
	case "mke2fs", "mkfs.xfs", "mkfs.fat", "mkfs.btrfs", "mkswap", "wipefs":
		// Like the real tools: never on a mounted filesystem.
		for _, mt := range m.mounts {
			if mt.dev == firstDev(a) {
				return fail(1, firstDev(a)+" is mounted; will not make a filesystem here!")
			}
		}
	}
	switch c.Name {
	case "wipefs", "partx", "tune2fs", "btrfs":
		if c.Name == "partx" && a[0] == "--delete" {
			return fail(1, "partx: "+a[1]+": error deleting partitions 1-4")
		}
		if c.Name == "btrfs" && len(a) >= 3 && a[1] == "create" {
			_ = os.MkdirAll(a[2], 0o755)
		}
		return ok("")
	case "sfdisk":
		img := m.images[a[len(a)-1]]
		cmd := exec.Command("sfdisk", append(a[:len(a)-1:len(a)-1], img)...)
		cmd.Stdin = strings.NewReader(m.rec.Stdins[len(m.rec.Stdins)-1]) // the Recorder has read c.Stdin
		if out, err := cmd.CombinedOutput(); err != nil {
			m.t.Fatalf("sfdisk on the image: %v\n%s", err, out)
		}
		return ok("")
	case "blkid":
		dev := a[len(a)-1]
		f, ok2 := m.fs[dev]
		if !ok2 {
			return fail(2, "")
		}
		return ok(fmt.Sprintf("DEVNAME=%s\nUUID=%s\nTYPE=%s\n", dev, f[1], f[0]))
	case "mke2fs":
		m.fs[firstDev(a)] = [2]string{flagValue(a, "-t"), flagValue(a, "-U")}
		return ok("")
	case "mkfs.xfs":
		u := ""
		for _, kv := range strings.Split(flagValue(a, "-m"), ",") {
			if strings.HasPrefix(kv, "uuid=") {
				u = strings.TrimPrefix(kv, "uuid=")
			}
		}
		m.fs[firstDev(a)] = [2]string{"xfs", u}
		return ok("")
	case "mkfs.fat":
		id := flagValue(a, "-i")
		m.fs[firstDev(a)] = [2]string{"vfat", strings.ToUpper(id[:4] + "-" + id[4:])}
		return ok("")
	case "mkfs.btrfs":
		m.fs[firstDev(a)] = [2]string{"btrfs", flagValue(a, "--uuid")}
		return ok("")
	case "mkswap":
		m.fs[firstDev(a)] = [2]string{"swap", flagValue(a, "--uuid")}
		return ok("")
	case "cryptsetup":
		return m.cryptsetup(a)
	case "mdadm":
		return m.mdadm(a)
	case "lvm":
		return m.lvm(a)
	case "mount":
		dev, dir := a[len(a)-2], a[len(a)-1]
		root := "/"
		for _, o := range strings.Split(flagValue(a, "-o"), ",") {
			if strings.HasPrefix(o, "subvol=") {
				root = "/" + strings.TrimPrefix(o, "subvol=")
			}
		}
		for _, mt := range m.mounts {
			if mt.point == dir {
				return fail(32, "mount: "+dir+": already mounted")
			}
		}
		m.mounts = append(m.mounts, fakeMount{point: dir, dev: dev, root: root, fstype: flagValue(a, "-t")})
		m.writeMounts()
		return ok("")
	case "umount":
		for i, mt := range m.mounts {
			if mt.point == a[0] {
				m.mounts = append(m.mounts[:i], m.mounts[i+1:]...)
				m.writeMounts()
				return ok("")
			}
		}
		return fail(32, "umount: "+a[0]+": not mounted.")
	}
	m.t.Fatalf("fake machine: unexpected command %s", c)
	return ok("")
}

func (m *machine) cryptsetup(a []string) (run.Result, error) {
	switch a[0] {
	case "luksFormat":
		m.luks[a[len(a)-1]] = flagValue(a, "--uuid")
		return ok("")
	case "luksUUID":
		if u, ok2 := m.luks[a[1]]; ok2 {
			return ok(u + "\n")
		}
		return fail(1, "Device "+a[1]+" is not a valid LUKS device.")
	case "open":
		dev, name := a[len(a)-2], a[len(a)-1]
		if _, ok2 := m.luks[dev]; !ok2 {
			return fail(1, "Device "+dev+" is not a valid LUKS device.")
		}
		m.open[name] = dev
		return ok("")
	case "status":
		if dev, ok2 := m.open[a[1]]; ok2 {
			return ok(fmt.Sprintf("/dev/mapper/%s is active.\n  type:    LUKS2\n  device:  %s\n", a[1], dev))
		}
		return fail(4, "")
	case "close":
		delete(m.open, a[1])
		return ok("")
	}
	m.t.Fatalf("fake cryptsetup %v", a)
	return ok("")
}

func (m *machine) mdadm(a []string) (run.Result, error) {
	switch a[0] {
	case "--create":
		dev := a[1]
		u, level := flagValue(a, "--uuid"), flagValue(a, "--level")
		members := devArgs(a[2:])
		for _, mem := range members {
			m.mdMember[mem] = [2]string{u, level}
		}
		m.mdMembers[dev] = members
		m.mdActive[dev] = u
		return ok("")
	case "--examine":
		if s, ok2 := m.mdMember[a[2]]; ok2 {
			return ok(fmt.Sprintf("MD_LEVEL=%s\nMD_DEVICES=3\nMD_UUID=%s\n", s[1], s[0]))
		}
		return fail(1, "mdadm: No md superblock detected on "+a[2]+".")
	case "--detail":
		if u, ok2 := m.mdActive[a[2]]; ok2 {
			return ok("MD_LEVEL=raid1\nMD_UUID=" + u + "\n")
		}
		return fail(1, "mdadm: cannot open "+a[2]+": No such file or directory")
	case "--assemble":
		members := devArgs(a[2:])
		m.mdActive[a[1]] = m.mdMember[members[0]][0]
		return ok("")
	case "--stop":
		delete(m.mdActive, a[1])
		return ok("")
	}
	m.t.Fatalf("fake mdadm %v", a)
	return ok("")
}

func (m *machine) lvm(a []string) (run.Result, error) {
	sub, rest := a[0], a[1:]
	if len(rest) >= 2 && rest[0] == "--config" {
		rest = rest[2:]
	}
	last := rest[len(rest)-1]
	switch sub {
	case "pvcreate":
		m.pvs[last] = flagValue(rest, "--uuid")
		return ok("")
	case "vgcreate":
		var name string
		var pvs []string
		for i, x := range rest {
			if !strings.HasPrefix(x, "-") && (i == 0 || rest[i-1] != "--physicalextentsize") {
				if name == "" {
					name = x
				} else {
					pvs = append(pvs, x)
				}
			}
		}
		ext, _ := strconv.ParseInt(strings.TrimSuffix(flagValue(rest, "--physicalextentsize"), "k"), 10, 64)
		m.vgs[name] = &fakeVG{uuid: "FAKEVG-" + name, extent: ext * 1024}
		for _, pv := range pvs {
			m.pvVG[pv] = name
		}
		return ok("")
	case "lvcreate":
		vg := m.vgs[last]
		lv := &fakeLV{name: flagValue(rest, "--name"), uuid: "FAKELV-" + flagValue(rest, "--name"), active: true}
		ext := flagValue(rest, "--extents")
		if n, err := strconv.ParseInt(ext, 10, 64); err == nil {
			lv.size = n * vg.extent
		} else if ext == "100%FREE" {
			lv.size = 123 * vg.extent // whatever is left: not what the plan estimated
		} else if v := flagValue(rest, "--virtualsize"); v != "" {
			n, _ := strconv.ParseInt(strings.TrimSuffix(v, "b"), 10, 64)
			lv.size = (n + vg.extent - 1) / vg.extent * vg.extent
		}
		vg.lvs = append(vg.lvs, lv)
		return ok("")
	case "vgchange":
		for _, lv := range m.vgs[last].lvs {
			lv.active = flagValue(rest, "--activate") == "y"
		}
		return ok("")
	case "pvs":
		var rows []string
		for _, dev := range sortedKeys(m.pvs) {
			rows = append(rows, fmt.Sprintf(`{"pv_name":%q, "pv_uuid":%q, "vg_name":%q}`, dev, m.pvs[dev], m.pvVG[dev]))
		}
		return ok(`{"report": [{"pv": [` + strings.Join(rows, ",") + `]}]}`)
	case "vgs":
		var rows []string
		for _, name := range sortedKeys(m.vgs) {
			rows = append(rows, fmt.Sprintf(`{"vg_name":%q, "vg_uuid":%q, "vg_extent_size":"%d", "vg_extent_count":"100", "pv_count":"1"}`, name, m.vgs[name].uuid, m.vgs[name].extent))
		}
		return ok(`{"report": [{"vg": [` + strings.Join(rows, ",") + `]}]}`)
	case "lvs":
		vg, okv := m.vgs[last]
		if !okv {
			return fail(5, "Volume group \""+last+"\" not found")
		}
		var rows []string
		for _, lv := range vg.lvs {
			attr := "-wi-------"
			if lv.active {
				attr = "-wi-a-----"
			}
			rows = append(rows, fmt.Sprintf(`{"lv_name":%q, "vg_name":%q, "lv_uuid":%q, "lv_size":"%d", "lv_attr":%q, "segtype":"linear"}`, lv.name, last, lv.uuid, lv.size, attr))
		}
		return ok(`{"report": [{"lv": [` + strings.Join(rows, ",") + `]}]}`)
	case "vgcfgbackup":
		vg := m.vgs[last]
		var b strings.Builder
		fmt.Fprintf(&b, "%s {\n\tid = %q\n\tlogical_volumes {\n", last, vg.uuid)
		for _, lv := range vg.lvs {
			fmt.Fprintf(&b, "\t\t%s {\n\t\t\tid = %q\n\t\t}\n", lv.name, lv.uuid)
		}
		b.WriteString("\t}\n}\n")
		return run.Result{}, os.WriteFile(flagValue(rest, "--file"), []byte(b.String()), 0o600)
	case "vgcfgrestore":
		text, err := os.ReadFile(flagValue(rest, "--file"))
		if err != nil {
			return fail(1, err.Error())
		}
		vg := m.vgs[last]
		var cur string
		for _, line := range strings.Split(string(text), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasSuffix(line, "{") {
				cur = strings.TrimSpace(strings.TrimSuffix(line, "{"))
			}
			if id, found := strings.CutPrefix(line, "id = "); found {
				id, _ = strconv.Unquote(id)
				if cur == last {
					vg.uuid = id
				}
				for _, lv := range vg.lvs {
					if lv.name == cur {
						lv.uuid = id
					}
				}
			}
		}
		return ok("")
	}
	m.t.Fatalf("fake lvm %v", a)
	return ok("")
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// events collects what Apply reports.
type events struct{ list []Event }

func (e *events) handle(ev Event) { e.list = append(e.list, ev) }

func (e *events) kinds(k EventKind) []string {
	var out []string
	for _, ev := range e.list {
		if ev.Kind == k {
			out = append(out, ev.Step)
		}
	}
	return out
}

func (e *events) json(t *testing.T) string {
	var b strings.Builder
	for _, ev := range e.list {
		ev.Time = ev.Time.UTC()
		j, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}
