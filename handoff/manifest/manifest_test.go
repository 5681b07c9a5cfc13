package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const h1 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
const h2 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func TestParse(t *testing.T) {
	in := h1 + "  b/two\n" + strings.ToUpper(h2) + " *./a one\n\n# comment\n\\" + h1 + "  we\\\\ird\\nname\n"
	got, err := Parse("m", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"a one", h2, 2}, {"b/two", h1, 1}, {"we\\ird\nname", h1, 5}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	var buf bytes.Buffer
	Format(&buf, got)
	again, err := Parse("m", &buf)
	if err != nil || len(again) != 3 || again[2].Path != "we\\ird\nname" {
		t.Fatalf("round trip: %+v %v", again, err)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{h1 + "  ../etc/passwd\n", "line 1: \"../etc/passwd\": '..' in name: path leaves"},
		{h1 + "  /etc/passwd\n", "absolute name"},
		{h1 + "  a/../../b\n", "'..' in name"},
		{"abc  x\n", `want "SHA256  NAME"`},
		{h1 + " x\n", `want "SHA256  NAME"`},
		{"g" + h1[1:] + "  x\n", `want "SHA256  NAME"`},
		{h1[:63] + "\xe9  x\n", `want "SHA256  NAME"`},
		{h1 + "  a/b\n" + h2 + "  a/b/c/d\n", "line 2: a/b is a file on line 1 and a directory here"},
		{h1 + "  x\n" + h2 + "  x\n", "line 2: x is already listed on line 1"},
		{h1 + "  d\n" + h2 + "  d/x\n", "d is a file on line 1 and a directory here"},
		{h1 + "  .\n", "names the directory itself"},
	} {
		_, err := Parse("http://srv/SHA256SUMS", strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "http://srv/SHA256SUMS") {
			t.Errorf("%q: got %v, want an error with %q and the manifest's name", tc.in, err, tc.want)
		}
	}
	_, err := Parse("m", strings.NewReader(h1+"  /x\n"))
	if !errors.Is(err, ErrEscape) {
		t.Errorf("absolute name: %v is not ErrEscape", err)
	}
}

// TestReadsSha256sum reads what the real sha256sum writes, odd names included.
func TestReadsSha256sum(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("skipping: no sha256sum (coreutils)")
	}
	dir := t.TempDir()
	names := []string{"plain", "with space", "back\\slash", "new\nline", "sub/deep"}
	for _, n := range names {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	cmd := exec.Command("sha256sum", append([]string{"--"}, names...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("sha256sum", bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != len(names) {
		t.Fatalf("got %d entries from\n%s", len(got), out)
	}
	// And sha256sum -c accepts what Format writes.
	var buf bytes.Buffer
	Format(&buf, got)
	check := exec.Command("sha256sum", "--check", "--quiet", "-")
	check.Dir, check.Stdin = dir, &buf
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v: %s", err, out)
	}
}

// BenchmarkParse: a manifest of 10,000 files as `find . -type f | sort |
// xargs sha256sum` writes it (100 directories of 100 files), the size of the
// hand-off benchmark's small-files dataset.
func BenchmarkParse(b *testing.B) {
	var names []string
	for d := 0; d < 100; d++ {
		for f := 0; f < 100; f++ {
			names = append(names, fmt.Sprintf("./d%d/f%03d", d, f))
		}
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, n := range names {
		s := sha256.Sum256([]byte(n))
		fmt.Fprintf(&buf, "%s  %s\n", hex.EncodeToString(s[:]), n)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		entries, err := Parse("bench", bytes.NewReader(data))
		if err != nil || len(entries) != 10000 {
			b.Fatalf("%d entries, %v", len(entries), err)
		}
	}
}
