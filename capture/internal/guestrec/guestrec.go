// Package guestrec is what capture's fixture recorders share: they boot the
// strata live image in QEMU, run a shell script there that writes the
// tools' output under /tmp/o, and unpack the tar archive the guest leaves on
// a disk into testdata.
package guestrec

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/qemu-tests/vm"
)

// Numbered turns a script into one whose every command line (blank lines
// and comments dropped) reports its own failure as @@FAIL-N@@ RC, N counting
// commands from 1, framed by @@STARTED@@ and @@ALL-DONE@@.
func Numbered(script string) string {
	var b strings.Builder
	b.WriteString("echo @@STARTED@@\n")
	n := 0
	for _, l := range strings.Split(script, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		n++
		fmt.Fprintf(&b, "%s || echo @@FAIL-%d@@ $?\n", l, n)
	}
	b.WriteString("echo @@ALL-DONE@@\n")
	return b.String()
}

// Run waits for the live shell's prompt, types line and waits up to timeout
// for a Numbered script it runs to end; a command that failed fails t.
func Run(t testing.TB, v *vm.VM, line string, timeout time.Duration) {
	t.Helper()
	if _, err := v.Expect(`here is a shell`, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := v.WaitPrompt(vm.LivePrompt, 3*time.Minute); err != nil { // keys sent earlier are lost
		t.Fatal(err)
	}
	if err := v.TypeLine(line, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect(`@@STARTED@@`, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect(`(?m)^@@ALL-DONE@@`, timeout); err != nil {
		t.Fatal(err)
	}
	if fails := regexp.MustCompile(`@@FAIL-(\d+)@@ (\d+)`).FindAllString(v.Console().Output(), -1); len(fails) > 0 {
		t.Errorf("guest commands failed (numbered from 1, comments skipped): %v\n%s", fails, v.Tail(60))
	}
}

// Unpack writes the regular files of the tar archive at the start of img
// below dst, without their leading /, tmp/ and o/, and fails t when there
// are none.
func Unpack(t testing.TB, img, dst string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "/"), "tmp/"), "o/")
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", img, h.Name, err)
		}
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d bytes)", p, len(b))
		n++
	}
	if n == 0 {
		t.Fatalf("the guest wrote nothing to %s", img)
	}
}
