package guestrec

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
)

func TestNumbered(t *testing.T) {
	got := Numbered("# a comment\nmkdir -p /tmp/o\n\n  lvs > /tmp/o/lvs.json  \n")
	want := "echo @@STARTED@@\nmkdir -p /tmp/o || echo @@FAIL-1@@ $?\nlvs > /tmp/o/lvs.json || echo @@FAIL-2@@ $?\necho @@ALL-DONE@@\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// Unpack strips the guest's /tmp/o prefix and writes nested files.
func TestUnpack(t *testing.T) {
	img := filepath.Join(t.TempDir(), "out.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range map[string]string{"o/lvm/lvs.json": "{}", "/tmp/o/efibootmgr/v.txt": "Boot0000"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.WriteHeader(&tar.Header{Name: "o/", Mode: 0o755, Typeflag: tar.TypeDir})
	tw.Close()
	f.Write(make([]byte, 4096))
	f.Close()
	dst := t.TempDir()
	Unpack(t, img, dst)
	for p, want := range map[string]string{"lvm/lvs.json": "{}", "efibootmgr/v.txt": "Boot0000"} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
}
