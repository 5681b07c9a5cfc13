package table

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const mib = 1 << 20

func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed (apt-get install gdisk fdisk): this test reads tables back with it", n)
		}
	}
}

func image(t *testing.T, size int64) (*os.File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, p
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

type sfdiskJSON struct {
	PT struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdisk(t *testing.T, path string) sfdiskJSON {
	t.Helper()
	var j sfdiskJSON
	if err := json.Unmarshal([]byte(tool(t, "sfdisk", "--json", path)), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func gptLayout(size int64, ss int) *Layout {
	return &Layout{
		Type: "gpt", DiskSize: size, SectorSize: ss, GUID: "5B2F1E3A-9D4C-4E8B-A6F1-2C3D4E5F6071",
		Partitions: []Partition{
			{Number: 1, Start: 1 * mib, Size: 256 * mib, Type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", Label: "EFI System Partition", UUID: "1F0C2A3B-4D5E-4F60-8172-93A4B5C6D7E8", Attributes: 1<<0 | 1<<63},
			{Number: 2, Start: 257 * mib, Size: 512 * mib, Type: "BC13C2FF-59E6-4262-A352-B275FD6F7172", Label: "boot", UUID: "2A1B3C4D-5E6F-4071-8293-A4B5C6D7E8F9", Attributes: 1 << 2},
			{Number: 3, Start: 769 * mib, Size: size - 770*mib, Type: "CA7D7CCB-63ED-4C53-861C-1742536059CC", Label: "root", UUID: "3B2C4D5E-6F70-4182-93A4-B5C6D7E8F90A"},
		},
	}
}

// TestGPTReadBackWithSfdiskAndSgdisk writes a GPT with go-diskfs and reads it
// back with the real tools: types, names, PARTUUIDs, attributes, disk GUID.
func TestGPTReadBackWithSfdiskAndSgdisk(t *testing.T) {
	needTool(t, "sfdisk", "sgdisk")
	const size = 2 << 30
	f, path := image(t, size)
	want := gptLayout(size, 512)
	if err := Write(f, want); err != nil {
		t.Fatal(err)
	}
	j := sfdisk(t, path)
	if j.PT.Label != "gpt" || j.PT.ID != want.GUID || len(j.PT.Partitions) != 3 {
		t.Fatalf("sfdisk sees %+v", j.PT)
	}
	for i, p := range j.PT.Partitions {
		w := want.Partitions[i]
		if p.Start*512 != w.Start || p.Size*512 != w.Size || p.Type != w.Type || p.UUID != w.UUID || p.Name != w.Label {
			t.Errorf("partition %d: sfdisk %+v, want %+v", i+1, p, w)
		}
	}
	if a := j.PT.Partitions[0].Attrs; a != "RequiredPartition GUID:63" {
		t.Errorf("attrs of 1 = %q", a)
	}
	if a := j.PT.Partitions[1].Attrs; a != "LegacyBIOSBootable" {
		t.Errorf("attrs of 2 = %q", a)
	}
	out := tool(t, "sgdisk", "-i", "1", path)
	for _, s := range []string{"Partition GUID code: C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "Partition unique GUID: 1F0C2A3B-4D5E-4F60-8172-93A4B5C6D7E8", "Attribute flags: 8000000000000001", "Partition name: 'EFI System Partition'"} {
		if !strings.Contains(out, s) {
			t.Errorf("sgdisk -i 1 lacks %q:\n%s", s, out)
		}
	}
	out = tool(t, "sgdisk", "-v", path)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v: %s", out)
	}
	if !strings.Contains(tool(t, "sgdisk", "-p", path), "Disk identifier (GUID): 5B2F1E3A-9D4C-4E8B-A6F1-2C3D4E5F6071") {
		t.Error("sgdisk -p does not show the disk GUID")
	}
	got, err := Read(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("Read differs: %v", d)
	}
}

func TestGPT4KSectors(t *testing.T) {
	needTool(t, "sfdisk")
	const size = 1 << 30
	f, _ := image(t, size)
	want := gptLayout(size, 4096)
	if err := Write(f, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(f, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("Read differs: %v", d)
	}
}

func TestMBRPrimaryReadBack(t *testing.T) {
	needTool(t, "sfdisk")
	const size = 1 << 30
	f, path := image(t, size)
	want := &Layout{Type: "msdos", DiskSize: size, SectorSize: 512, DiskID: "0x5eed1234", Partitions: []Partition{
		{Number: 1, Start: mib, Size: 512 * mib, Type: "0x83", Boot: true},
		{Number: 2, Start: 513 * mib, Size: 510 * mib, Type: "0x82"},
	}}
	if err := Write(f, want); err != nil {
		t.Fatal(err)
	}
	j := sfdisk(t, path)
	if j.PT.Label != "dos" || j.PT.ID != "0x5eed1234" || len(j.PT.Partitions) != 2 {
		t.Fatalf("sfdisk sees %+v", j.PT)
	}
	if p := j.PT.Partitions[0]; !p.Bootable || p.Type != "83" || p.Start != 2048 || p.Size != 512*2048 {
		t.Errorf("partition 1: %+v", p)
	}
	if p := j.PT.Partitions[1]; p.Bootable || p.Type != "82" {
		t.Errorf("partition 2: %+v", p)
	}
	got, err := Read(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("Read differs: %v", d)
	}
}

// TestMBRLogicalViaSfdisk: the script the plan hands to sfdisk gives the
// layout Read understands, extended partition and all.
func TestMBRLogicalViaSfdisk(t *testing.T) {
	needTool(t, "sfdisk")
	const size = 4 << 30
	f, path := image(t, size)
	want := &Layout{Type: "msdos", DiskSize: size, SectorSize: 512, DiskID: "0x5eed1234", Partitions: []Partition{
		{Number: 1, Start: mib, Size: 3000 * mib, Type: "0x83", Boot: true},
		{Number: 5, Start: 3002 * mib, Size: 1000 * mib, Type: "0x82", Logical: true},
		{Number: 6, Start: 4003 * mib, Size: 90 * mib, Type: "0x83", Logical: true},
	}}
	if err := Write(f, want); err != ErrNeedsSfdisk {
		t.Fatalf("Write = %v, want ErrNeedsSfdisk", err)
	}
	script := SfdiskScript(want, mib)
	golden := "label: dos\nlabel-id: 0x5eed1234\nunit: sectors\nsector-size: 512\n\n" +
		"start=2048, size=6144000, type=83, bootable\n" +
		"start=6146048, size=2236416, type=5\n" +
		"start=6148096, size=2048000, type=82\n" +
		"start=8198144, size=184320, type=83\n"
	if script != golden {
		t.Fatalf("script:\n%s\nwant:\n%s", script, golden)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	j := sfdisk(t, path)
	if len(j.PT.Partitions) != 4 || j.PT.Partitions[1].Type != "5" || !strings.HasSuffix(j.PT.Partitions[2].Node, "5") {
		t.Fatalf("sfdisk sees %+v", j.PT.Partitions)
	}
	got, err := Read(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("Read differs: %v", d)
	}
}

func TestReadBlankAndDiff(t *testing.T) {
	f, _ := image(t, 64*mib)
	got, err := Read(f, 512)
	if err != nil || got != nil {
		t.Fatalf("blank disk: %v %v", got, err)
	}
	want := gptLayout(2<<30, 512)
	if d := Diff(want, nil); !reflect.DeepEqual(d, []string{"no partition table"}) {
		t.Fatal(d)
	}
	other := gptLayout(2<<30, 512)
	other.Partitions[1].UUID = "00000000-0000-4000-8000-000000000000"
	other.Partitions[2].Size -= mib
	d := Diff(want, other)
	if len(d) != 2 || !strings.Contains(d[0], "PARTUUID") || !strings.Contains(d[1], "partition 3: size") {
		t.Fatalf("diff: %q", d)
	}
}
