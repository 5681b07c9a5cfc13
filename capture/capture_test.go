package capture_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/capture/diff"
	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./capture -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./capture -update if intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// replay captures a recorded machine.
func replay(t testing.TB, name string) *capture.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hosts", name+".txt"))
	if err != nil {
		t.Skipf("skipping: no recording %s (testdata/regen.sh makes it): %v", name, err)
	}
	rec, err := capture.ParseRecording(data)
	if err != nil {
		t.Fatal(err)
	}
	o := rec.Options
	res, err := capture.Capture(context.Background(), capture.Options{Root: o.Root, Disks: o.Disks, Storage: o.Storage, Runner: rec, FS: rec})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func recordings(t *testing.T) []string {
	files, _ := filepath.Glob("testdata/hosts/*.txt")
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".txt"))
	}
	if len(names) < 3 {
		t.Fatalf("only %d recordings in testdata/hosts (testdata/regen.sh)", len(names))
	}
	return names
}

// Every recorded machine gives a profile that loads and validates, and the
// same YAML as last time.
func TestBuildGolden(t *testing.T) {
	for _, name := range recordings(t) {
		t.Run(name, func(t *testing.T) {
			res := replay(t, name)
			if err := res.Profile.Validate(); err != nil {
				t.Errorf("captured profile does not validate: %v", err)
			}
			for _, n := range res.Notes {
				if strings.Contains(n.Msg, "INVALID") || strings.Contains(n.Msg, "not in the recording") {
					t.Errorf("note: %s", n)
				}
			}
			out, err := res.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := profile.Parse(name, out); err != nil {
				t.Errorf("the written profile does not load: %v\n%s", err, out)
			}
			golden(t, filepath.Join("testdata", "hosts", name+".yaml"), out)
		})
	}
}

func TestRecordingRoundTrip(t *testing.T) {
	for _, name := range recordings(t) {
		data, _ := os.ReadFile(filepath.Join("testdata", "hosts", name+".txt"))
		r, err := capture.ParseRecording(data)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		r.WriteTo(&b)
		r2, err := capture.ParseRecording(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var b2 bytes.Buffer
		r2.WriteTo(&b2)
		if !bytes.Equal(b.Bytes(), b2.Bytes()) || strings.Join(r.Keys(), "\n") != strings.Join(r2.Keys(), "\n") {
			t.Errorf("%s: recording changes when written and read back", name)
		}
	}
}

// merges are the --into cases: an existing profile and a recorded machine.
var merges = []struct{ name, profile, host string }{
	{"laptop-example", "../examples/laptop-uefi.yaml", "laptop"},
	{"laptop-intents", "testdata/profiles/laptop-intents.yaml", "laptop"},
	{"server-example", "../examples/server-raid1.yaml", "server"},
	{"loop-gpt-hand", "testdata/profiles/loop-gpt-hand.yaml", "loop-gpt"},
	{"loop-msdos-example", "../examples/bios-msdos.yaml", "loop-msdos"},
}

// merge folds a recorded machine into a profile file, as capture --into does.
func merge(t *testing.T, file, host string) (before, after *profile.Profile, out []byte, cs []diff.Change) {
	t.Helper()
	var err error
	if before, err = profile.Load(file); err != nil {
		t.Fatal(err)
	}
	if after, err = profile.Load(file); err != nil {
		t.Fatal(err)
	}
	res := replay(t, host)
	notes := capture.Merge(after, res)
	if err := after.Validate(); err != nil {
		t.Fatalf("merged profile does not validate: %v", err)
	}
	if out, err = capture.Marshal(after, notes); err != nil {
		t.Fatal(err)
	}
	return before, after, out, diff.Profiles(before, after)
}

func TestMergeGolden(t *testing.T) {
	for _, m := range merges {
		t.Run(m.name, func(t *testing.T) {
			before, after, out, cs := merge(t, m.profile, m.host)
			golden(t, filepath.Join("testdata", "merges", m.name+".yaml"), out)
			var b bytes.Buffer
			diff.Write(&b, cs)
			golden(t, filepath.Join("testdata", "merges", m.name+".diff"), b.Bytes())
			// What the user wrote by hand survives: comments, repos, datasets.
			src, _ := os.ReadFile(m.profile)
			for _, l := range strings.Split(string(src), "\n") {
				if i := strings.Index(l, "# "); i >= 0 && !strings.Contains(l[:i], `"`) {
					if c := strings.TrimSpace(l[i:]); !strings.Contains(string(out), c) {
						t.Errorf("comment lost: %q", c)
					}
				}
			}
			if len(diff.Profiles(
				&profile.Profile{Repos: before.Repos, Datasets: before.Datasets},
				&profile.Profile{Repos: after.Repos[:min(len(before.Repos), len(after.Repos))], Datasets: after.Datasets})) != 0 {
				t.Errorf("repos or datasets changed")
			}
			if before.System != nil && (after.System == nil || after.System.Image != before.System.Image) {
				t.Errorf("system image changed")
			}
			// Merging the same machine again changes nothing.
			again, err := profile.Parse(m.name, out)
			if err != nil {
				t.Fatalf("merged output does not load: %v", err)
			}
			snapshot, _ := profile.Parse(m.name, out)
			notes := capture.Merge(again, replay(t, m.host))
			if out2, err := capture.Marshal(again, notes); err != nil || !bytes.Equal(out, out2) {
				t.Errorf("a second -into of the same machine rewrites the file (capture comments must replace, not pile up):\n%s", out2)
			}
			if cs := diff.Profiles(snapshot, again); len(cs) > 0 {
				var b bytes.Buffer
				diff.Write(&b, cs)
				t.Errorf("a second merge of the same machine changes:\n%s", b.String())
			}
		})
	}
}

// Size intents that still hold are kept, those that do not are replaced.
func TestMergeIntents(t *testing.T) {
	_, after, _, _ := merge(t, "testdata/profiles/laptop-intents.yaml", "laptop")
	sizes := map[string]string{}
	for _, d := range after.Disks {
		for _, p := range d.Partitions {
			sizes[d.Name+"/"+p.Name] = p.Size.String()
		}
	}
	for _, vg := range after.VolumeGroups {
		for _, lv := range vg.LVs {
			sizes[vg.Name+"/"+lv.Name] = lv.Size.String()
		}
	}
	for ref, want := range map[string]string{"main/esp": "256MiB", "main/boot": "512MiB", "main/root": "rest",
		"vg0/root": "60%", "vg0/swap": "512MiB", "vg0/home": "50%free"} {
		if sizes[ref] != want {
			t.Errorf("%s: size %q, want %q kept", ref, sizes[ref], want)
		}
	}
	_, after, _, _ = merge(t, "../examples/laptop-uefi.yaml", "laptop")
	for _, vg := range after.VolumeGroups {
		for _, lv := range vg.LVs {
			if lv.Name == "root" && (lv.Size.Percent != 0 || !lv.MinSize.IsZero()) {
				t.Errorf("vg0/root: 60%% with min_size 3GiB does not give the captured size on this group, yet it was kept: %s", lv.Size)
			}
		}
	}
}

// A volume group the user named differently (matched by its PVs) keeps
// the user's name, its references and its size intents.
func TestMergeRenamedVG(t *testing.T) {
	src, err := os.ReadFile("testdata/profiles/laptop-intents.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(strings.ReplaceAll(string(src), "vg0:", "system:"), "vg0/", "system/")
	p, err := profile.Parse("renamed.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	capture.Merge(p, replay(t, "laptop"))
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.VolumeGroups) != 1 || p.VolumeGroups[0].Name != "system" {
		t.Fatalf("volume groups: %+v", p.VolumeGroups)
	}
	for _, lv := range p.VolumeGroups[0].LVs {
		if lv.Name == "root" && lv.Size.String() != "60%" || lv.Name == "home" && lv.Size.String() != "50%free" {
			t.Errorf("%s: size %s, the intent was not kept", lv.Name, lv.Size)
		}
	}
	for _, f := range p.Filesystems {
		if strings.HasPrefix(f.Device, "vg0/") {
			t.Errorf("filesystem on %s: the captured name leaked", f.Device)
		}
	}
}

// drifts are machines recorded twice: the diff of the second against the
// profile captured from the first.
var drifts = []struct{ name, base, now string }{
	{"loop-gpt", "loop-gpt", "loop-gpt-drift"},
	{"laptop", "laptop", "laptop-drift"},
	{"none", "laptop", "laptop"},
}

func TestDiffGolden(t *testing.T) {
	for _, d := range drifts {
		t.Run(d.name, func(t *testing.T) {
			base := replay(t, d.base)
			yml, err := base.YAML()
			if err != nil {
				t.Fatal(err)
			}
			old, err := profile.Parse("host.yaml", yml)
			if err != nil {
				t.Fatal(err)
			}
			cur, _ := profile.Parse("host.yaml", yml)
			capture.Merge(cur, replay(t, d.now))
			cs := diff.Profiles(old, cur)
			var b bytes.Buffer
			diff.Write(&b, cs)
			b.WriteString("summary: " + diff.Summary(cs) + "\n")
			golden(t, filepath.Join("testdata", "drift", d.name+".txt"), b.Bytes())
			if d.base == d.now && len(cs) > 0 {
				t.Errorf("a machine drifts from its own capture:\n%s", b.String())
			}
		})
	}
}

// BenchmarkCapture is capture without the tools' own run time: parsing a
// recorded machine's outputs and building its profile and YAML.
func BenchmarkCapture(b *testing.B) {
	for _, name := range []string{"laptop", "loop-gpt"} {
		data, err := os.ReadFile(filepath.Join("testdata", "hosts", name+".txt"))
		if err != nil {
			b.Skip("no recording")
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				rec, _ := capture.ParseRecording(data)
				o := rec.Options
				res, err := capture.Capture(context.Background(), capture.Options{Root: o.Root, Disks: o.Disks, Storage: o.Storage, Runner: rec, FS: rec})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := res.YAML(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The stick the live image runs from is not a disk of the machine.
func TestBuildSkipsLiveMedium(t *testing.T) {
	f := &capture.Facts{
		Root: "/",
		Blocks: []parse.BlockDevice{
			{Name: "sda", Path: "/dev/sda", Type: "disk", Size: 8 << 30, Children: []parse.BlockDevice{{Name: "sda1", Path: "/dev/sda1", Type: "part", Size: 1 << 30}}},
			{Name: "vda", Path: "/dev/vda", Type: "disk", Size: 4 << 30},
		},
		Probe: map[string]map[string]string{
			"/dev/sda":  {"PTTYPE": "dos"},
			"/dev/sda1": {"TYPE": "iso9660", "LABEL": "STRATA", "PART_ENTRY_NUMBER": "1"},
			"/dev/vda":  {"TYPE": "ext4", "UUID": "c2516f7a-8e9d-4acb-9e0f-a1b2c3d4e5f6"},
		},
		Tables: map[string]*parse.Table{"/dev/sda": {Label: "dos", ID: "0x1234abcd", SectorSize: 512,
			Partitions: []parse.Partition{{Node: "/dev/sda1", Number: 1, Start: 2048, Size: 2097152, Type: "0"}}}},
	}
	res := capture.Build(f)
	if len(res.Profile.Disks) != 1 || res.Profile.Disks[0].Name != "main" || res.Profile.Disks[0].Table != "none" {
		t.Fatalf("disks: %+v", res.Profile.Disks)
	}
	found := false
	for _, n := range res.Notes {
		found = found || strings.Contains(n.Msg, "/dev/sda is the strata live medium")
	}
	if !found {
		t.Errorf("no note about the live medium: %v", res.Notes)
	}
}
