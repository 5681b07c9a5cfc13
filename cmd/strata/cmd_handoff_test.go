package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/serve"
)

func TestHandoffCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the hand-off gives files their owners, which needs root (CI runs as root)")
	}
	dir := t.TempDir()
	body := []byte("track one\n")
	os.MkdirAll(filepath.Join(dir, "music"), 0o755)
	os.WriteFile(filepath.Join(dir, "music/one.flac"), body, 0o644)
	s := sha256.Sum256(body)
	os.WriteFile(filepath.Join(dir, "music/SHA256SUMS"), []byte(hex.EncodeToString(s[:])+"  one.flac\n"), 0o644)
	srv := httptest.NewServer(serve.Handler(dir, nil))
	defer srv.Close()
	prof := filepath.Join(t.TempDir(), "host.yaml")
	os.WriteFile(prof, []byte(`version: 1
host: {name: t}
disks:
  main:
    table: gpt
    partitions:
      - {name: root, size: rest}
filesystems:
  - {device: main/root, type: ext4, mount: {path: /}}
datasets:
  inbox: {kind: buffer, path: /home/inbox, mode: "0750"}
  music: {source: music/, path: /srv/music}
  broken: {source: nothing-here/, path: /srv/broken}
`), 0o644)
	root := t.TempDir()
	creds := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(creds, []byte(srv.URL+"/ bearer not-needed-here\n"), 0o600)

	if code, _, errs := strata("handoff", prof); code != exitUsage || !strings.Contains(errs, "--root is required") {
		t.Errorf("without --root: exit %d %s", code, errs)
	}
	if code, _, errs := strata("handoff", "--root", root, "--svn", "host", prof); code != exitUsage || !strings.Contains(errs, "--svn host: want live or root") {
		t.Errorf("--svn host: exit %d %s", code, errs)
	}
	code, out, errs := strata("handoff", "--root", root, "--server", srv.URL, "--credentials", creds, "--jobs", "2", prof)
	if code != exitFailed || !strings.Contains(errs, "1 of 3 items failed") || !strings.Contains(errs, "dataset broken (/srv/broken): no manifest at "+srv.URL+"/nothing-here/SHA256SUMS") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"dataset music: started: full from " + srv.URL + "/music/ (manifest) into /srv/music", "dataset music: done: 1 files, 10 B", "dataset inbox: done: empty directory ready", "handoff: 2 done, 0 already done, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, "not-needed-here") {
		t.Error("a credential reached the output")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "srv/music/one.flac")); !bytes.Equal(b, body) {
		t.Errorf("music not fetched: %q", b)
	}
	code, out, _ = strata("handoff", "--root", root, "--server", srv.URL, "--json", "--quiet", prof)
	if code != exitFailed || !strings.Contains(out, `"type":"skipped","kind":"dataset","name":"music"`) {
		t.Errorf("re-run with --json: exit %d\n%s", code, out)
	}
}
