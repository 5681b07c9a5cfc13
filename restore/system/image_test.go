package system

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/fetch"
)

func tarZst(t *testing.T, files map[string]string) []byte {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)})
		tw.Write([]byte(body))
	}
	tw.Close()
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	return z.Bytes()
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestUnpackImageVerifiesAndMarks(t *testing.T) {
	good := tarZst(t, map[string]string{"etc/os-release": "ID=debian\n", "usr/bin/apt-get": "ELF"})
	corrupt := append([]byte{}, good...)
	corrupt[len(corrupt)/2] ^= 0xff
	files := map[string][]byte{"/images/good.tar.zst": good, "/images/corrupt.tar.zst": corrupt}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "x", time.Unix(0, 0), bytes.NewReader(files[r.URL.Path]))
	}))
	defer srv.Close()
	opt := ImageOptions{Server: srv.URL}
	root := t.TempDir()
	ctx := context.Background()

	// A wrong checksum fails with a clear error and leaves the step not done.
	_, err := UnpackImage(ctx, root, profile.Image{URL: "images/good.tar.zst", SHA256: strings.Repeat("a", 64)}, opt)
	if !errors.Is(err, fetch.ErrChecksum) || !strings.Contains(err.Error(), "images/good.tar.zst") {
		t.Fatalf("wrong checksum: %v", err)
	}
	if ImageDone(root, profile.Image{SHA256: strings.Repeat("a", 64)}) {
		t.Fatal("a failed unpack was marked done")
	}
	// A corrupt image fails too.
	if _, err := UnpackImage(ctx, root, profile.Image{URL: "images/corrupt.tar.zst", SHA256: sum(corrupt)}, opt); err == nil {
		t.Fatal("corrupt image accepted")
	}
	// The re-run with the right image completes and is marked.
	img := profile.Image{URL: "images/good.tar.zst", SHA256: sum(good)}
	st, err := UnpackImage(ctx, root, img, opt)
	if err != nil || st.Entries != 2 {
		t.Fatalf("good image: %+v %v", st, err)
	}
	if !ImageDone(root, img) {
		t.Error("good image not marked done")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/os-release")); string(b) != "ID=debian\n" {
		t.Errorf("content %q", b)
	}
}

// The real Debian test image (scripts/build-test-image.sh) unpacks with its
// owners, modes and links, and is what the QEMU tests install.
func TestUnpackDebianTestImage(t *testing.T) {
	cache := os.Getenv("STRATA_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache/strata")
	}
	img := filepath.Join(cache, "images/test-image.tar.zst")
	real, _ := filepath.EvalSymlinks(img)
	sumLine, err := os.ReadFile(real + ".sha256")
	if err != nil {
		t.Skipf("no Debian test image (%v): make test-image builds it", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to keep owners and device nodes")
	}
	root := t.TempDir()
	st, err := UnpackImage(context.Background(), root, profile.Image{URL: "file://" + img, SHA256: strings.Fields(string(sumLine))[0]}, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unpacked %d entries, %d MB", st.Entries, st.Bytes>>20)
	for _, f := range []string{"usr/bin/apt-get", "usr/sbin/update-initramfs", "usr/sbin/grub-install", "usr/bin/bootctl", "sbin/cryptsetup"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s missing from the unpacked image: %v", f, err)
		}
	}
	if l, _ := os.Readlink(filepath.Join(root, "bin")); l != "usr/bin" {
		t.Errorf("merged /usr symlink bin -> %q", l)
	}
	if pm, err := PackageManager(root); err != nil || pm != "apt" {
		t.Errorf("PackageManager = %q, %v", pm, err)
	}
}
