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
