package drill

import (
	"os"
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
)

func laptop(t *testing.T) (*profile.Profile, Inventory) {
	p, err := profile.Load("../examples/laptop-uefi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/laptop-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ParseInventory(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p, inv
}

func TestVerifyPasses(t *testing.T) {
	p, inv := laptop(t)
	checks := Verify(p, inv)
	if len(checks) != 10 {
		t.Errorf("%d checks, want 10 (4 mounts, swap, luks, 3 LVs, boot path): %+v", len(checks), checks)
	}
	for _, c := range checks {
		if !c.Pass {
			t.Errorf("%s failed: %s", c.Name, c.Detail)
		}
	}
}

func TestVerifyCatchesDrift(t *testing.T) {
	for name, mutate := range map[string]func(*Inventory){
		"home not mounted": func(inv *Inventory) {
			for i := range inv.Mounts {
				if inv.Mounts[i].Target == "/home" {
					inv.Mounts[i].Target = "/srv"
				}
			}
		},
		"root UUID regenerated": func(inv *Inventory) { inv.Mounts[0].UUID = "00000000-0000-0000-0000-000000000000" },
		"booted through BIOS":   func(inv *Inventory) { inv.Firmware = "bios" },
		"swap off": func(inv *Inventory) {
			for i := range inv.Devices {
				if inv.Devices[i].FSType == "swap" {
					inv.Devices[i].Mountpoints = []string{""}
				}
			}
		},
		"LUKS not open": func(inv *Inventory) {
			for i := range inv.Devices {
				if inv.Devices[i].Type == "crypt" {
					inv.Devices[i].Type = "part"
				}
			}
		},
		"LV missing": func(inv *Inventory) {
			for i := range inv.Devices {
				if inv.Devices[i].Name == "vg0-home" {
					inv.Devices[i].Name = "vg0-house"
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			p, inv := laptop(t)
			mutate(&inv)
			failed := 0
			for _, c := range Verify(p, inv) {
				if !c.Pass {
					failed++
					if c.Detail == "" {
						t.Errorf("%s failed without saying why", c.Name)
					}
				}
			}
			if failed == 0 {
				t.Error("drift not caught")
			}
		})
	}
}

func TestParseInventoryErrors(t *testing.T) {
	if _, err := ParseInventory("login: "); err == nil || !strings.Contains(err.Error(), "no inventory") {
		t.Errorf("got %v", err)
	}
	if _, err := ParseInventory(InventoryBegin + "\n{\n---\n{}\n---\nbios\n" + InventoryEnd); err == nil {
		t.Error("broken JSON accepted")
	}
}

func TestReportFormats(t *testing.T) {
	rep := &Report{Profile: "examples/laptop-uefi.yaml", Host: "laptop", Firmware: "uefi", Seconds: 300,
		Phases: []Phase{{Name: "prepare", Pass: true}, {Name: "boot restored disks", Error: "no LUKS passphrase prompt", Tail: "GRUB loading.\r\nerror: no such device", Log: "/tmp/x.log"}},
		Checks: []Check{{Name: "mount /", Pass: true, Detail: "ext4"}}}
	var b strings.Builder
	rep.Text(&b)
	for _, want := range []string{"FAIL in 300 s", "FAIL  boot restored disks", "no LUKS passphrase prompt", "| error: no such device", "log /tmp/x.log", "PASS  check mount /"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
	dir := t.TempDir()
	if err := rep.WriteJUnit(dir + "/r.xml"); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(dir + "/r.xml")
	if !strings.Contains(string(x), `tests="3" failures="1"`) || !strings.Contains(string(x), `message="no LUKS passphrase prompt"`) {
		t.Errorf("junit:\n%s", x)
	}
	if err := rep.WriteJSON(dir + "/r.json"); err != nil {
		t.Fatal(err)
	}
}

// A real inventory, recorded from a drill of the BIOS example, passes.
func TestVerifyRecordedBIOSDrill(t *testing.T) {
	p, err := profile.Load("../examples/bios-msdos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/bios-msdos-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ParseInventory(string(b))
	if err != nil {
		t.Fatal(err)
	}
	checks := Verify(p, inv)
	if len(checks) != 3 {
		t.Errorf("%d checks, want 3 (mount /, swap, boot path): %+v", len(checks), checks)
	}
	for _, c := range checks {
		if !c.Pass {
			t.Errorf("%s failed: %s", c.Name, c.Detail)
		}
	}
}

// A real inventory from a drill of the two-disk BIOS mirror (md RAID1 for
// /boot and under LUKS1, LVM thin, btrfs subvolumes) passes; each array is
// told apart by what it holds, and a wrong member count fails.
func TestVerifyRecordedMirrorDrill(t *testing.T) {
	p, err := profile.Load("../qemu-tests/testdata/drill/mirror-bios.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/mirror-bios-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ParseInventory(string(b))
	if err != nil {
		t.Fatal(err)
	}
	details := map[string]string{}
	for _, c := range Verify(p, inv) {
		if !c.Pass {
			t.Errorf("%s failed: %s", c.Name, c.Detail)
		}
		details[c.Name] = c.Detail
	}
	if !strings.Contains(details["raid md-boot"], "holds /boot") || !strings.Contains(details["raid md-data"], "holds LUKS cryptdata") ||
		details["raid md-boot"][:11] == details["raid md-data"][:11] {
		t.Errorf("arrays not told apart: md-boot %q, md-data %q", details["raid md-boot"], details["raid md-data"])
	}
	for _, want := range []string{"mount /srv/data", "mount /srv/backup", "lv vg0/srv", "luks cryptdata", "boot path"} {
		if _, ok := details[want]; !ok {
			t.Errorf("no check %q", want)
		}
	}
	p.RAID[1].Devices = append(p.RAID[1].Devices, "a/boot")
	for _, c := range Verify(p, inv) {
		if c.Name == "raid md-data" && (c.Pass || !strings.Contains(c.Detail, "has 2 members, the profile says 3")) {
			t.Errorf("a missing member passed: %+v", c)
		}
	}
}
