package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/live"
	"github.com/stratahq/strata/source"
)

// The unattended seam takes the profile from the stick when there is no
// server, says where it came from, and writes nothing without strata.yes.
func TestUnattendedFromStick(t *testing.T) {
	stick := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "laptop-uefi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(stick, "profiles"), 0o755)
	os.WriteFile(filepath.Join(stick, "profiles", "laptop-uefi.yaml"), b, 0o644)

	params, err := live.ParseCmdline("strata.profile=laptop")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s := &live.Session{Params: params, Out: &out, Log: t.Logf, Sources: []source.Source{source.FromDir("stick", stick)}}
	err = unattendedRestore(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"restore: profile profiles/laptop-uefi.yaml (host laptop) from the stick (" + stick + ")\n",
		markerFailed + ": not confirmed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// No source at all: the error says what is missing.
	out.Reset()
	s.Sources = nil
	if err := unattendedRestore(context.Background(), s); err == nil || !strings.Contains(out.String(), "no profile source: no strata.server= and no medium labelled STRATA") {
		t.Errorf("no sources: %v\n%s", err, out.String())
	}
}
