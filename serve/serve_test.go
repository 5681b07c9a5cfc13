package serve

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
)

func served(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "profiles"), 0o755)
	os.MkdirAll(filepath.Join(root, "images"), 0o755)
	for _, f := range []string{"laptop-uefi.yaml", "server-raid1.yaml", "bios-msdos.yaml"} {
		b, _ := os.ReadFile(filepath.Join("../examples", f))
		os.WriteFile(filepath.Join(root, "profiles", f), b, 0o644)
	}
	os.WriteFile(filepath.Join(root, "profiles", "broken.yaml"), []byte("version: 1\nhost: {name: broken, match: {mac: [\"52:54:00:12:34:56\"]}}\n"), 0o644)
	os.WriteFile(filepath.Join(root, "images", "base.tar"), []byte(strings.Repeat("0123456789", 1000)), 0o644)
	return root
}

func TestRangeRequestsResume(t *testing.T) {
	srv := httptest.NewServer(Handler(served(t), t.Logf))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/images/base.tar", nil)
	req.Header.Set("Range", "bytes=9995-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(b) != "56789" {
		t.Fatalf("range request: %s %q", resp.Status, b)
	}
}

func TestNoEscapeFromRoot(t *testing.T) {
	srv := httptest.NewServer(Handler(served(t), nil))
	defer srv.Close()
	for _, p := range []string{"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "root:") {
			t.Errorf("%s served a file outside the root", p)
		}
	}
}

func TestIndexAndSelect(t *testing.T) {
	srv := httptest.NewServer(Handler(served(t), nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + IndexPath)
	if err != nil {
		t.Fatal(err)
	}
	var idx Index
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(idx.Profiles) != 4 {
		t.Fatalf("index has %d profiles: %+v", len(idx.Profiles), idx)
	}
	broken, _ := idx.Find("broken")
	if broken.Error == "" || !strings.Contains(broken.Error, "broken.yaml") {
		t.Errorf("invalid profile not flagged: %+v", broken)
	}
	// The broken profile matches the same MAC but is never selected.
	e, err := idx.Select(profile.Facts{MACs: []string{"52:54:00:AA:BB:CC", "52:54:00:12:34:56"}})
	if err != nil || e.Name != "laptop" {
		t.Errorf("select by MAC: %+v, %v", e, err)
	}
	e, err = idx.Select(profile.Facts{DMI: profile.DMIMatch{Vendor: "Supermicro", Product: "X11", Serial: "S1234567"}})
	if err != nil || e.Name != "fileserver" {
		t.Errorf("select by DMI: %+v, %v", e, err)
	}
	if _, err := idx.Select(profile.Facts{MACs: []string{"00:11:22:33:44:55"}}); !errors.Is(err, ErrNoMatch) {
		t.Errorf("want ErrNoMatch, got %v", err)
	}
	idx.Profiles = append(idx.Profiles, Entry{Name: "twin", File: "profiles/twin.yaml", Match: &profile.HostMatch{MAC: []string{"52:54:00:12:34:56"}}})
	if _, err := idx.Select(profile.Facts{MACs: []string{"52:54:00:12:34:56"}}); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "twin.yaml") {
		t.Errorf("want ErrAmbiguous naming both, got %v", err)
	}
	if _, err := idx.Find("nosuch"); err == nil {
		t.Error("Find of a missing profile must fail")
	}
}

func TestWriteIndex(t *testing.T) {
	root := served(t)
	if err := WriteIndex(root); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "strata", "profiles.json"))
	if err != nil || !strings.Contains(string(b), `"file": "profiles/laptop-uefi.yaml"`) {
		t.Fatalf("static index: %v\n%s", err, b)
	}
}
