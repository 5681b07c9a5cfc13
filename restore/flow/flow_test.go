package flow

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/plan"
)

// The stages after the layers run against a target directory with every
// command recorded; the layers themselves are restore.Apply's tests' job, so
// the plan here has no steps.

// fixture: the BIOS example, a base image on a test server, a target root
// where the layer steps "already wrote" fstab and crypttab.
type fixture struct {
	t      *testing.T
	o      Options
	pl     *plan.Plan
	rec    *run.Recorder
	events []string // "kind step"
	totals map[int]bool
	// progress events, in order
	progress []restore.Event
	fail     string       // a command that fails, by name
	handler  http.Handler // the file server's
}

const layerFstab = "UUID=c2516f7a / ext4 errors=remount-ro 0 1\n"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	img := tarZst(t, map[string]string{
		"etc/fstab":                 "# the image's own fstab\n",
		"etc/hostname":              "debian\n",
		"usr/bin/apt-get":           "ELF",
		"usr/sbin/update-initramfs": "#!/bin/sh\n",
	})
	music := tarZst(t, map[string]string{"a.flac": strings.Repeat("a", 300<<10), "b.flac": strings.Repeat("b", 200<<10)})
	files := map[string][]byte{"/images/base.tar.zst": img, "/datasets/music.tar.zst": music}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(b))
	})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)

	p, err := profile.Load(filepath.Join("..", "..", "examples", "bios-msdos.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	p.System.Image = profile.Image{URL: "images/base.tar.zst", SHA256: hex.EncodeToString(sum[:])}
	msum := sha256.Sum256(music)
	p.Datasets = []profile.Dataset{{Name: "music", Source: "datasets/music.tar.zst", SHA256: hex.EncodeToString(msum[:]), Path: "/srv/music"}}

	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/fstab"), []byte(layerFstab), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, totals: map[int]bool{}, handler: handler}
	f.rec = &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		name := c.Name
		if name == "chroot" && len(c.Args) > 0 {
			name = c.Args[len(c.Args)-1]
			for i, a := range c.Args {
				if a == "/usr/bin/env" {
					for _, b := range c.Args[i+1:] {
						if !strings.Contains(b, "=") {
							name = b
							break
						}
					}
					break
				}
			}
		}
		if f.fail != "" && name == f.fail {
			return run.Result{}, &run.ExitError{Code: 1, Stderr: name + ": out of cheese"}
		}
		if name == "blkid" {
			return run.Result{Stdout: []byte("c2516f7a-8e9d-4acb-9e0f-a1b2c3d4e5f6\n")}, nil
		}
		return run.Result{}, nil
	}}
	f.pl = &plan.Plan{Host: p.Host.Name, TargetRoot: root, WorkDir: t.TempDir(),
		Disks:   []plan.Disk{{Name: "main", Device: "/dev/vda"}},
		Devices: []plan.Device{{Ref: "main/root", Kind: "partition", Path: "/dev/vda1"}, {Ref: "main/swap", Kind: "partition", Path: "/dev/vda5"}}}
	f.o = Options{Profile: p, Server: srv.URL, Runner: f.rec, Events: func(e restore.Event) {
		if e.Kind == restore.Progress {
			f.progress = append(f.progress, e)
		}
		if e.Kind != restore.Progress && e.Kind != restore.Log {
			f.totals[e.Total] = true
			f.events = append(f.events, string(e.Kind)+" "+e.Step)
		}
	}}
	return f
}

func (f *fixture) run() error { return Run(context.Background(), f.pl, f.o) }

// ran reports whether a command line containing s was run.
func (f *fixture) ran(s string) bool { return strings.Contains(f.rec.Argv(), s) }

func TestStagesInOrder(t *testing.T) {
	f := newFixture(t)
	if err := f.run(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"run-started ", "run-done ", // the (empty) layer plan
		"step-started system:image", "step-done system:image",
		"step-started system:configure", "step-done system:configure",
		"step-started system:packages", "step-done system:packages",
		"step-started system:initramfs", "step-done system:initramfs",
		"step-started system:bootloader", "step-done system:bootloader",
		"step-started handoff", "step-done handoff",
		"step-started close", "step-done close",
	}
	if got := strings.Join(f.events, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(f.totals) != 1 {
		t.Errorf("events count steps out of different totals %v: the layers and the stages must read as one run", f.totals)
	}
	root := f.pl.TargetRoot
	// The image's fstab must not replace the one the layer steps wrote.
	if b, _ := os.ReadFile(filepath.Join(root, "etc/fstab")); string(b) != layerFstab {
		t.Errorf("fstab after the image = %q, want the layers' %q", b, layerFstab)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "oldbox\n" {
		t.Errorf("hostname = %q, want the profile's", b)
	}
	for _, want := range []string{"update-initramfs -c -k all", "grub-install", "/dev/vda", "mount --bind /dev"} {
		if !f.ran(want) {
			t.Errorf("no %q among the commands:\n%s", want, f.rec.Argv())
		}
	}
	// Every bind mount made to enter the target is undone.
	binds, umounts := strings.Count(f.rec.Argv(), "mount --bind"), strings.Count(f.rec.Argv(), "umount -R")
	if binds == 0 || binds != umounts {
		t.Errorf("%d bind mounts, %d unmounts:\n%s", binds, umounts, f.rec.Argv())
	}
}

// A failing stage stops the restore, names itself, and the target is still
// closed so a re-run (or the next boot) finds it as expected.
func TestFailureStillCloses(t *testing.T) {
	f := newFixture(t)
	f.fail = "update-initramfs"
	err := f.run()
	if err == nil || !strings.Contains(err.Error(), "system:initramfs") || !strings.Contains(err.Error(), "out of cheese") {
		t.Fatalf("error = %v, want the initramfs stage and its stderr", err)
	}
	if f.ran("grub-install") {
		t.Error("the bootloader was installed after the initramfs failed")
	}
	got := strings.Join(f.events, "\n")
	for _, want := range []string{"step-failed system:initramfs", "step-done close"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in events:\n%s", want, got)
		}
	}
	if strings.Count(f.rec.Argv(), "mount --bind") != strings.Count(f.rec.Argv(), "umount -R") {
		t.Errorf("bind mounts left behind:\n%s", f.rec.Argv())
	}
}

// A re-run skips the unpacked image (its marker matches) and keeps open on request.
func TestRerunSkipsImageAndKeepOpen(t *testing.T) {
	f := newFixture(t)
	if err := f.run(); err != nil {
		t.Fatal(err)
	}
	f.events, f.rec.Calls, f.rec.Stdins = nil, nil, nil
	f.o.KeepOpen = true
	if err := f.run(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.events, "\n")
	if !strings.Contains(got, "step-skipped system:image") {
		t.Errorf("image not skipped on the re-run:\n%s", got)
	}
	if strings.Contains(got, "close") {
		t.Errorf("KeepOpen closed the target:\n%s\n%s", got, f.rec.Argv())
	}
	// Everything after the image runs again: it is cheap to redo and may
	// have been interrupted.
	for _, want := range []string{"update-initramfs", "grub-install"} {
		if !f.ran(want) {
			t.Errorf("%s not run again on the re-run:\n%s", want, f.rec.Argv())
		}
	}
}

func TestMissingImageFails(t *testing.T) {
	f := newFixture(t)
	f.o.Profile.System.Image.URL = "images/nope.tar.zst"
	err := f.run()
	var ee *run.ExitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "nope.tar.zst") {
		t.Fatalf("error = %v, want one naming the missing image", err)
	}
	if f.ran("update-initramfs") {
		t.Error("went on after the image failed")
	}
}

func tarZst(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for name, body := range files {
		mode := int64(0o644)
		if strings.Contains(name, "bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// The hand-off's datasets move a progress bar like the base image does:
// bytes of the known total, ending full.
func TestHandoffProgress(t *testing.T) {
	f := newFixture(t)
	if err := f.run(); err != nil {
		t.Fatal(err)
	}
	var last *restore.Event
	for i, e := range f.progress {
		if e.Step == "handoff" {
			last = &f.progress[i]
		}
	}
	if last == nil {
		t.Fatalf("no progress from the hand-off; progress events: %+v", f.progress)
	}
	if last.Of <= 0 || last.Bytes != last.Of {
		t.Errorf("last hand-off progress %d of %d, want the whole archive", last.Bytes, last.Of)
	}
	if b, err := os.ReadFile(filepath.Join(f.pl.TargetRoot, "srv/music/b.flac")); err != nil || len(b) != 200<<10 {
		t.Errorf("dataset not in place: %d bytes, %v", len(b), err)
	}
}

// A file server with a private CA and a password: the base image comes
// with the credentials file's ca-file and basic entry, as the datasets do;
// without them the error says what to add.
func TestImageFromPrivateCA(t *testing.T) {
	f := newFixture(t)
	var auth []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		auth = append(auth, r.URL.Path)
		f.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.o.Server = srv.URL + "/"
	f.o.Profile.Datasets = nil

	err := f.run()
	if err == nil || !strings.Contains(err.Error(), "ca-file") {
		t.Fatalf("untrusted server: error %v, want one that says to add a ca-file", err)
	}

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "credentials")
	lines := srv.URL + "/ ca-file " + ca + "\n" + srv.URL + "/ basic alice s3cret\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.o.Creds, err = creds.Load(file, nil, nil); err != nil {
		t.Fatal(err)
	}
	f.events = nil
	if err := f.run(); err != nil {
		t.Fatalf("with the CA and the password: %v", err)
	}
	if len(auth) == 0 || auth[0] != "/images/base.tar.zst" {
		t.Errorf("the image was not fetched with the password: %v", auth)
	}
}
