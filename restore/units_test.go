package restore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/plan"
)

// vgcfgbackup output shape of LVM 2.03 (see TestHostLVMGroupAndIDs for the
// real thing): a thin pool with hidden sub-LVs and a thin volume.
const metadata = `contents = "Text Format Volume Group"
version = 1

vg0 {
	id = "dxYSYD-uo7w-3O67-KaZL-iQGf-1d0f-w0mWWf"
	seqno = 5
	physical_volumes {

		pv0 {
			id = "0f9yQA-7UmV-53xc-P61Y-vEVH-8374-Cvj3YN"
			device = "/dev/vda3"	# Hint only
		}
	}

	logical_volumes {

		pool {
			id = "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa"
			segment1 {
				type = "thin-pool"
				metadata = "pool_tmeta"
			}
		}

		home {
			id = "bbbbbb-bbbb-bbbb-bbbb-bbbb-bbbb-bbbbbb"	# a comment
			segment1 {
				type = "thin"
				thin_pool = "pool"
			}
		}

		pool_tmeta {
			id = "cccccc-cccc-cccc-cccc-cccc-cccc-cccccc"
		}
	}
}
`

func TestPatchLVMIDs(t *testing.T) {
	out, err := PatchLVMIDs(metadata, "vg0", "VGVGVG-AAAA-BBBB-CCCC-DDDD-EEEE-FFFFFF", map[string]string{"home": "HOMEHO-AAAA-BBBB-CCCC-DDDD-EEEE-111111"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\tid = \"VGVGVG-AAAA-BBBB-CCCC-DDDD-EEEE-FFFFFF\"\n\tseqno",
		"\t\t\tid = \"HOMEHO-AAAA-BBBB-CCCC-DDDD-EEEE-111111\"\t# a comment",
		"id = \"0f9yQA-7UmV-53xc-P61Y-vEVH-8374-Cvj3YN\"", // the PV's is pvcreate's business
		"id = \"aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa\"", // not asked for
		"id = \"cccccc-cccc-cccc-cccc-cccc-cccc-cccccc\"", // hidden sub-LV
	} {
		if !strings.Contains(out, want) {
			t.Errorf("patched metadata lacks %q:\n%s", want, out)
		}
	}
	if _, err := PatchLVMIDs(metadata, "vg1", "x", nil); err == nil {
		t.Error("another VG's metadata accepted")
	}
	if _, err := PatchLVMIDs(metadata, "vg0", "", map[string]string{"nope": "x"}); err == nil || !strings.Contains(err.Error(), "no LV nope") {
		t.Errorf("missing LV: %v", err)
	}
}

func TestProfileKeys(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k")
	if err := os.WriteFile(keyFile, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/keys/laptop" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("from the server"))
	}))
	defer srv.Close()
	asked := 0
	answers := []string{"typed", "typo", "typed", "typed"}
	k := &ProfileKeys{Keys: map[string]profile.Key{
		"lit": {Literal: "literal"}, "file": {File: keyFile}, "url": {URL: srv.URL + "/keys/laptop"},
		"gone": {URL: srv.URL + "/keys/other"}, "prompt": {Prompt: true}, "default": {},
	}, Prompt: func(string) ([]byte, error) {
		asked++
		return []byte(answers[asked-1]), nil
	}}
	ctx := context.Background()
	for name, want := range map[string]string{"lit": "literal", "file": "from a file\n", "url": "from the server"} {
		got, err := k.Passphrase(ctx, name, true)
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	if _, err := k.Passphrase(ctx, "gone", false); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing key URL: %v", err)
	}
	// A new volume's passphrase is asked twice, again when they differ.
	got, err := k.Passphrase(ctx, "prompt", true)
	if err != nil || string(got) != "typed" || asked != 4 {
		t.Errorf("prompt: %q %v after %d questions", got, err, asked)
	}
	if got, _ := k.Passphrase(ctx, "prompt", false); string(got) != "typed" || asked != 4 {
		t.Error("the passphrase was asked for again")
	}
	k.Prompt = func(string) ([]byte, error) { return nil, errors.New("no terminal") }
	if _, err := k.Passphrase(ctx, "default", false); err == nil {
		t.Error("the default (prompt) source did not prompt")
	}
	if _, err := k.Passphrase(ctx, "other", false); err == nil {
		t.Error("a volume the profile does not have got a key")
	}
}

func TestJournalBelongsToOnePlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.json")
	p1 := &plan.Plan{Host: "a", Steps: []plan.Step{{ID: "x"}}}
	j, err := loadJournal(path, p1)
	if err != nil {
		t.Fatal(err)
	}
	j.done("x")
	if err := j.save(); err != nil {
		t.Fatal(err)
	}
	if j, _ := loadJournal(path, p1); !j.has("x") {
		t.Error("the same plan lost its journal")
	}
	p2 := &plan.Plan{Host: "a", Steps: []plan.Step{{ID: "x", Summary: "changed"}}}
	if j, _ := loadJournal(path, p2); j.has("x") {
		t.Error("another plan inherited the journal")
	}
	if err := os.WriteFile(path, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if j, err := loadJournal(path, p1); err != nil || j.has("x") {
		t.Errorf("a damaged journal: %v", err)
	}
}
