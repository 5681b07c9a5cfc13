package live

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stratahq/strata/initramfs/manifest"
	"github.com/stratahq/strata/internal/run"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeSys builds a sysfs tree with the files ReadDisks and ReadNICs read.
func fakeSys(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"block/vda/size":                   "2097152\n",
		"block/vda/serial":                 "STRATA-1\n",
		"block/vda/removable":              "0\n",
		"block/sda/size":                   "1000\n",
		"block/sda/device/model":           "QEMU HARDDISK   \n",
		"block/sda/removable":              "1\n",
		"block/sda/ro":                     "1\n",
		"block/nvme0n1/size":               "20\n",
		"block/nvme0n1/device/serial":      "nvme-serial \n",
		"block/loop0/size":                 "100\n",
		"block/sr0/size":                   "100\n",
		"block/sdb/size":                   "0\n", // empty card reader
		"class/net/lo/type":                "772\n",
		"class/net/eth0/address":           "52:54:00:12:34:56\n",
		"class/net/eth0/operstate":         "up\n",
		"class/net/eth0/type":              "1\n",
		"class/net/enp1s0/address":         "aa:bb:cc:dd:ee:ff\n",
		"class/net/enp1s0/operstate":       "down\n",
		"class/tty/console/active":         "tty0 ttyS0\n",
		"block/sdc/size":                   "8\n",
		"block/sdc/device/vpd_pg80":        "\x00\x80\x00\x08  ABC123",
		"block/md127/size":                 "100\n",
		"block/dm-0/size":                  "100\n",
		"block/zram0/size":                 "100\n",
		"block/nvme0n1/device/model":       "NVMe disk\n",
		"block/nvme0n1/ro":                 "0\n",
		"class/net/enp1s0/type":            "1\n",
		"block/vda/device/model_not_there": "",
	}
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c)
	}
	return root
}

func TestReadDisksAndNICs(t *testing.T) {
	root := fakeSys(t)
	disks, err := ReadDisks(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Disk{
		{Name: "nvme0n1", Size: 20 * 512, Model: "NVMe disk", Serial: "nvme-serial"},
		{Name: "sda", Size: 1000 * 512, Model: "QEMU HARDDISK", Removable: true, ReadOnly: true},
		{Name: "sdc", Size: 8 * 512, Serial: "ABC123"},
		{Name: "vda", Size: 1 << 30, Serial: "STRATA-1"},
	}
	if !reflect.DeepEqual(disks, want) {
		t.Errorf("ReadDisks =\n%+v\nwant\n%+v", disks, want)
	}
	nics, err := ReadNICs(root, func(n string) []string {
		if n == "eth0" {
			return []string{"10.0.2.15/24"}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantN := []NIC{
		{Name: "enp1s0", MAC: "aa:bb:cc:dd:ee:ff", State: "down"},
		{Name: "eth0", MAC: "52:54:00:12:34:56", State: "up", Addrs: []string{"10.0.2.15/24"}},
	}
	if !reflect.DeepEqual(nics, wantN) {
		t.Errorf("ReadNICs = %+v, want %+v", nics, wantN)
	}
	var b bytes.Buffer
	WriteInventory(&b, Inventory{Disks: disks[3:], NICs: nics})
	wantOut := `disk vda 1.0 GiB (1073741824 bytes) model="" serial="STRATA-1"
nic enp1s0 aa:bb:cc:dd:ee:ff down no-address
nic eth0 52:54:00:12:34:56 up 10.0.2.15/24
`
	if b.String() != wantOut {
		t.Errorf("WriteInventory:\n%s\nwant\n%s", b.String(), wantOut)
	}
	if c := conversationConsole("", root); c != "ttyS0" {
		t.Errorf("console = %q, want ttyS0 (the last active console)", c)
	}
}

func TestActiveConsole(t *testing.T) {
	for in, want := range map[string]string{"tty0": "tty1", "tty0 ttyS0": "ttyS0", "ttyS0 tty0": "tty1", "": "console", "hvc0": "hvc0"} {
		if got := activeConsole(in); got != want {
			t.Errorf("activeConsole(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlanNetwork(t *testing.T) {
	nics := []string{"eth0", "eth1"}
	p, err := PlanNetwork(NetConfig{Mode: "dhcp"}, nics)
	if err != nil || !reflect.DeepEqual(p.DHCP, nics) || p.Static != nil {
		t.Errorf("dhcp: %+v %v", p, err)
	}
	p, err = PlanNetwork(NetConfig{Mode: "none"}, nics)
	if err != nil || p.DHCP != nil || p.Static != nil {
		t.Errorf("none: %+v %v", p, err)
	}
	p, err = PlanNetwork(NetConfig{Mode: "custom", Ifaces: []IfaceConf{
		{Name: "eth1", Addr: netip.MustParsePrefix("10.0.2.20/24"), Gateway: netip.MustParseAddr("10.0.2.2"), DNS: netip.MustParseAddr("10.0.2.3")},
		{Name: "eth0", DHCP: true},
	}}, nics)
	if err != nil {
		t.Fatal(err)
	}
	want := NetPlan{
		DHCP: []string{"eth0"},
		Static: [][]string{
			{"link", "set", "dev", "eth1", "up"},
			{"addr", "add", "10.0.2.20/24", "dev", "eth1"},
			{"route", "add", "default", "via", "10.0.2.2", "dev", "eth1"},
		},
		DNS: []string{"10.0.2.3"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("custom plan = %+v, want %+v", p, want)
	}
	if _, err := PlanNetwork(NetConfig{Mode: "custom", Ifaces: []IfaceConf{{Name: "wlan0", DHCP: true}}}, nics); err == nil || !strings.Contains(err.Error(), "no interface wlan0 (found: eth0, eth1)") {
		t.Errorf("unknown interface: %v", err)
	}
	if got := strings.Join(dhclientArgs([]string{"eth0", "en.p1"}), " "); got != `-ipv6=false -timeout 5 -retry 3 ^(eth0|en\.p1)$` {
		t.Errorf("dhclient args: %s", got)
	}
}

func TestApplyNetworkRunsCommands(t *testing.T) {
	rec := &run.Recorder{}
	err := ApplyNetwork(context.Background(), rec, NetPlan{DHCP: []string{"eth0"}, Static: [][]string{{"addr", "add", "10.0.0.2/8", "dev", "eth1"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ip addr add 10.0.0.2/8 dev eth1\ndhclient -ipv6=false -timeout 5 -retry 3 '^(eth0)$'\n"
	if rec.Argv() != want {
		t.Errorf("argv:\n%s\nwant\n%s", rec.Argv(), want)
	}
}

func TestJudgeProbe(t *testing.T) {
	tool := manifest.Tool{Name: "x", Path: "/usr/sbin/x"}
	any := manifest.Tool{Name: "y", Path: "/usr/sbin/y", AnyExit: true}
	exit := func(code int) error { return &run.ExitError{Cmd: "x", Code: code} }
	for _, c := range []struct {
		name string
		tool manifest.Tool
		res  run.Result
		err  error
		ok   bool
		det  string
	}{
		{"version", tool, run.Result{Stdout: []byte("x 1.0\nmore\n")}, nil, true, "x 1.0"},
		{"stderr version", tool, run.Result{Stderr: []byte("mdadm - v4.2\n")}, nil, true, "mdadm - v4.2"},
		{"exit 1", tool, run.Result{Stderr: []byte("usage")}, exit(1), false, "exit status 1"},
		{"usage allowed", any, run.Result{Stderr: []byte("usage: y\n")}, exit(1), true, "usage: y"},
		{"any exit but not found", any, run.Result{}, exit(127), false, "exit status 127"},
		{"missing library", any, run.Result{Stderr: []byte("/usr/sbin/y: error while loading shared libraries: libfoo.so.1: cannot open shared object file\n")}, exit(127), false, "libfoo.so.1"},
		{"missing library, exit 0", tool, run.Result{Stderr: []byte("x: symbol lookup error: x: undefined symbol: f\n")}, nil, false, "symbol lookup error"},
		{"not found", tool, run.Result{ExitCode: -1}, run.ErrNotFound, false, "program not found"},
		{"exec failure", tool, run.Result{}, errors.New("fork/exec /usr/sbin/x: no such file or directory"), false, "no such file"},
	} {
		r := judgeProbe(c.tool, c.res, c.err)
		if r.OK != c.ok || !strings.Contains(r.Detail, c.det) {
			t.Errorf("%s: ok=%v detail=%q, want ok=%v detail containing %q", c.name, r.OK, r.Detail, c.ok, c.det)
		}
	}
	var b bytes.Buffer
	n := WriteToolResults(&b, []ToolResult{{Tool: tool, OK: true, Detail: "x 1.0"}, {Tool: any, Detail: "broken"}})
	if n != 1 || b.String() != "tool x ok: x 1.0\ntool y FAIL: broken\n" {
		t.Errorf("WriteToolResults = %d\n%s", n, b.String())
	}
}

// The probes in the image must work on a host with the same tools: a wrong
// flag would make every boot report FAIL.
func TestProbesOnHost(t *testing.T) {
	m := hostManifest(t)
	for _, r := range CheckTools(context.Background(), run.Exec{}, m.Tools) {
		if !r.OK {
			t.Errorf("%s %v: %s", r.Tool.Path, r.Tool.Probe, r.Detail)
		}
	}
}

// hostManifest lists the host's copies of the image's tools, skipping those
// the host lacks.
func hostManifest(t *testing.T) *manifest.Manifest {
	t.Helper()
	probes := map[string][]string{
		"cryptsetup": {"--version"}, "lvm": {"version"}, "mdadm": {"--version"}, "mke2fs": {"-V"},
		"mkfs.xfs": {"-V"}, "mkfs.btrfs": {"--version"}, "mkswap": {"--version"}, "efibootmgr": {"--version"},
	}
	var m manifest.Manifest
	for name, args := range probes {
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				m.Tools = append(m.Tools, manifest.Tool{Name: name, Path: filepath.Join(d, name), Probe: args})
				break
			}
		}
	}
	if len(m.Tools) == 0 {
		t.Skip("skipping: none of the storage tools is installed (make deps)")
	}
	return &m
}

func TestWritePlan(t *testing.T) {
	p, err := ParseCmdline("strata.server=http://10.0.2.2:8080 strata.disk=main=vda,data=vdb strata.done=reboot")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WritePlan(&b, p, ProfileSources(p, &Medium{Dir: "/run/strata/stick/strata"}))
	want := `plan: unattended restore
  server:  http://10.0.2.2:8080
  stick:   /run/strata/stick/strata
  lookup:  the profile from the first of these that has it
  profile: auto (match this machine's MAC addresses and DMI data)
  disk:    data = /dev/vdb
  disk:    main = /dev/vda
  confirm: missing: nothing is written without strata.yes
  then:    reboot
`
	if b.String() != want {
		t.Errorf("WritePlan:\n%s\nwant\n%s", b.String(), want)
	}
}

// Run without System only reports; it must work on any machine, print the
// marker and the tools' results, and hand unattended runs to the seam.
func TestRunReportAndSeam(t *testing.T) {
	root := fakeSys(t)
	dir := t.TempDir()
	mp := filepath.Join(dir, "manifest.json")
	writeFile(t, mp, `{"kernel_version":"6.1.0-test","tools":[{"name":"cryptsetup","path":"/usr/sbin/cryptsetup","probe":["--version"]}]}`)
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		return run.Result{Stdout: []byte("cryptsetup 2.6.1\n")}, nil
	}}
	var called *Session
	Unattended = func(ctx context.Context, s *Session) error { called = s; return nil }
	defer func() { Unattended = nil }()

	var out bytes.Buffer
	err := Run(context.Background(), Config{
		Cmdline:  "console=ttyS0 strata.server=http://10.0.2.2:8080 strata.profile=laptop strata.yes",
		Manifest: mp, Out: &out, Runner: rec, SysRoot: root,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{ReadyMarker + "\n", "disk vda 1.0 GiB", "nic eth0 52:54:00:12:34:56 up", "tool cryptsetup ok: cryptsetup 2.6.1",
		"summary: 4 disks, 2 nics, 1/1 tools ok, 0 modules", "plan: unattended restore", "profile: laptop", "restore: done"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if called == nil || called.Params.Profile != "laptop" || len(called.Inventory.Disks) != 4 {
		t.Errorf("Unattended got %+v", called)
	}
	if rec.Argv() != "/usr/sbin/cryptsetup --version\n" {
		t.Errorf("commands run: %q", rec.Argv())
	}

	// Kernel parameter errors: reported, no unattended run, Run fails.
	called = nil
	out.Reset()
	err = Run(context.Background(), Config{Cmdline: "strata.server=http://h strata.bogus=1", Manifest: mp, Out: &out, Runner: rec, SysRoot: root})
	if err == nil || called != nil || !strings.Contains(out.String(), "unknown parameter strata.bogus") || strings.Contains(out.String(), "plan:") {
		t.Errorf("bad params: err %v, called %v, output:\n%s", err, called != nil, out.String())
	}

	// The restore seam is optional: without it the plan is printed and nothing happens.
	Unattended = nil
	out.Reset()
	if err := Run(context.Background(), Config{Cmdline: "strata.server=http://h", Manifest: mp, Out: &out, Runner: rec, SysRoot: root}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "restore: not available in this build yet; nothing was written") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 1 << 30: "1.0 GiB", 500107862016: "465.8 GiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
