package source

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
	"github.com/stratahq/strata/serve"
)

// root makes a `strata serve`-style directory with the named examples as
// profiles and any extra files (relative path → content).
func root(t *testing.T, examples []string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range examples {
		b, err := os.ReadFile(filepath.Join("..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "profiles", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for rel, s := range extra {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func server(t *testing.T, dir string) Source {
	srv := httptest.NewServer(serve.Handler(dir, nil))
	t.Cleanup(srv.Close)
	return FromServer(srv.URL)
}

const stickOnly = "version: 1\nhost: {name: kiosk, match: {mac: [\"52:54:00:00:00:07\"]}}\n" +
	"disks:\n  main:\n    table: gpt\n    partitions:\n      - {name: root, size: rest}\n" +
	"filesystems:\n  - {device: main/root, type: ext4, mount: {path: /}}\n"

func TestDirAlone(t *testing.T) {
	ctx := context.Background()
	stick := FromDir("stick", root(t, []string{"laptop-uefi.yaml"}, map[string]string{"profiles/kiosk.yaml": stickOnly}))
	if !strings.HasPrefix(stick.Base, "file:///") || !strings.HasSuffix(stick.Base, "/") {
		t.Errorf("Base = %q, want a file:// directory URL", stick.Base)
	}
	c := List(ctx, stick)
	if len(c.Errors) > 0 || len(c.Entries) != 2 {
		t.Fatalf("List: %+v", c)
	}
	for _, name := range []string{"laptop", "laptop-uefi"} { // host name or file name
		e, err := c.Find(name)
		if err != nil || e.File != "profiles/laptop-uefi.yaml" || e.Source != stick {
			t.Errorf("Find(%s) = %+v, %v", name, e, err)
		}
	}
	e, err := c.Select(profile.Facts{MACs: []string{"52:54:00:00:00:07"}})
	if err != nil || e.Name != "kiosk" {
		t.Fatalf("Select = %+v, %v", e, err)
	}
	p, err := Load(ctx, e)
	if err != nil || p.Host.Name != "kiosk" {
		t.Fatalf("Load = %v, %v", p, err)
	}
	if _, err := c.Find("nosuch"); err == nil || !strings.Contains(err.Error(), `no profile named "nosuch" in the stick (`) {
		t.Errorf("Find(nosuch): %v", err)
	}
}

// The server comes first: its copy of a profile wins, and the stick's
// same-named file is hidden rather than making auto-selection ambiguous;
// a profile only the stick has is still found.
func TestServerThenStick(t *testing.T) {
	ctx := context.Background()
	srvDir := root(t, []string{"laptop-uefi.yaml", "server-raid1.yaml"}, nil)
	stickDir := root(t, []string{"laptop-uefi.yaml"}, map[string]string{"profiles/kiosk.yaml": stickOnly})
	srv := server(t, srvDir)
	stick := FromDir("stick", stickDir)
	c := List(ctx, srv, stick)
	if len(c.Errors) > 0 || len(c.Entries) != 3 {
		t.Fatalf("List: errors %v, %d entries", c.Errors, len(c.Entries))
	}
	e, err := c.Find("laptop")
	if err != nil || e.Source != srv || len(e.Hides) != 1 || e.Hides[0] != stick {
		t.Errorf("Find(laptop) = %+v, %v; want the server's, hiding the stick's", e, err)
	}
	e, err = c.Select(profile.Facts{MACs: []string{"52:54:00:12:34:56"}})
	if err != nil || e.Source != srv || e.File != "profiles/laptop-uefi.yaml" {
		t.Errorf("Select(laptop's MAC) = %+v, %v", e, err)
	}
	e, err = c.Find("kiosk")
	if err != nil || e.Source != stick {
		t.Fatalf("Find(kiosk) = %+v, %v; want the stick's", e, err)
	}
	if p, err := Load(ctx, e); err != nil || p.Host.Name != "kiosk" {
		t.Errorf("Load(kiosk) = %v, %v", p, err)
	}
	// Loading the server's profile goes over HTTP.
	e, _ = c.Find("fileserver")
	if p, err := Load(ctx, e); err != nil || p.Host.Name != "fileserver" {
		t.Errorf("Load(fileserver) = %v, %v", p, err)
	}
	if _, err := c.Select(profile.Facts{MACs: []string{"00:11:22:33:44:55"}}); !errors.Is(err, serve.ErrNoMatch) {
		t.Errorf("want ErrNoMatch, got %v", err)
	}
}

// An unreachable server is an error, not a reason to take the stick's copy.
func TestServerDownIsNoFallback(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.NotFoundHandler())
	down := FromServer(srv.URL)
	srv.Close()
	stick := FromDir("stick", root(t, []string{"laptop-uefi.yaml"}, nil))
	c := List(ctx, down, stick)
	if c.Errors[0] == nil || c.Errors[1] != nil {
		t.Fatalf("errors: %v", c.Errors)
	}
	if _, err := c.Find("laptop"); err == nil || !strings.Contains(err.Error(), "cannot look in the server "+srv.URL) {
		t.Errorf("Find with the server down: %v", err)
	}
	if _, err := c.Select(profile.Facts{MACs: []string{"52:54:00:12:34:56"}}); err == nil || !strings.Contains(err.Error(), "cannot look in the server") {
		t.Errorf("Select with the server down: %v", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := List(ctx).Find("x"); !errors.Is(err, ErrNoSource) {
		t.Errorf("no sources: %v", err)
	}
	if _, err := List(ctx).Select(profile.Facts{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("no sources: %v", err)
	}
	// Two profiles matching the same machine: ambiguous, naming both and where they are.
	twin := strings.Replace(stickOnly, "name: kiosk", "name: kiosk2", 1)
	stick := FromDir("stick", root(t, nil, map[string]string{"profiles/kiosk.yaml": stickOnly, "profiles/broken.yaml": "version: 1\nhost: {name: broken}\nbogus: 1\n"}))
	other := FromDir("usb2", root(t, nil, map[string]string{"profiles/kiosk2.yaml": twin}))
	c := List(ctx, stick, other)
	_, err := c.Select(profile.Facts{MACs: []string{"52:54:00:00:00:07"}})
	if !errors.Is(err, serve.ErrAmbiguous) || !strings.Contains(err.Error(), "profiles/kiosk.yaml (stick)") || !strings.Contains(err.Error(), "profiles/kiosk2.yaml (usb2)") {
		t.Errorf("ambiguous: %v", err)
	}
	e, err := c.Find("broken")
	if err == nil || !strings.Contains(err.Error(), "profiles/broken.yaml in the stick") || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("invalid profile: %v", err)
	}
	if _, err := Load(ctx, e); err == nil {
		t.Error("Load of an invalid profile must fail")
	}
	// A directory without profiles/ lists nothing; a missing one says so.
	if c := List(ctx, FromDir("stick", t.TempDir())); len(c.Entries) != 0 || len(c.Errors) != 0 {
		t.Errorf("empty dir: %+v", c)
	}
	// A server that answers with something else than an index.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer srv.Close()
	c = List(ctx, FromServer(srv.URL))
	if err := c.Errors[0]; err == nil || !strings.Contains(err.Error(), serve.IndexPath) {
		t.Errorf("bad index: %v", err)
	}
}
