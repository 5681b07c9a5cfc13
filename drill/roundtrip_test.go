package drill

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stratahq/strata/capture/diff"
)

// A recording of a real laptop guest and the profile captured from it
// (capture/testdata/hosts): the round trip must pass as is, and fail on a
// field the profile sets that the machine does not have.
func TestCompareCapture(t *testing.T) {
	rec, err := os.ReadFile("../capture/testdata/hosts/laptop.txt")
	if err != nil {
		t.Fatal(err)
	}
	good := "../capture/testdata/hosts/laptop.yaml"
	checks, err := compareCapture(context.Background(), good, rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.Pass {
			t.Errorf("the machine's own capture fails the round trip: %s: %s", c.Name, c.Detail)
		}
	}
	src, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const luks = "0d8b6c2e-4f1a-4b3c-9d5e-6f7a8b9c0d1e"
	if !strings.Contains(string(src), luks) {
		t.Fatalf("%s no longer has LUKS UUID %s", good, luks)
	}
	bad := filepath.Join(t.TempDir(), "laptop.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(src), luks, "11111111-2222-4333-8444-555555555555", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	checks, err = compareCapture(context.Background(), bad, rec)
	if err != nil {
		t.Fatal(err)
	}
	failed := ""
	for _, c := range checks {
		if !c.Pass {
			failed += c.Name + ": " + c.Detail + "\n"
		}
	}
	if !strings.Contains(failed, "luks") || !strings.Contains(failed, "11111111-2222-4333-8444-555555555555") {
		t.Errorf("a LUKS UUID the machine does not have passed the round trip; failures:\n%s", failed)
	}
}

func TestRoundTripChecks(t *testing.T) {
	checks := roundTripChecks([]diff.Change{
		{Kind: diff.Added, Path: "filesystems[0].ext.inode_size", New: "256"},
		{Kind: diff.Changed, Path: "volume_groups.vg0.lvs.root.size", Old: "60%", New: "7GiB"},
		{Kind: diff.Removed, Path: "volume_groups.vg0.lvs.root.min_size", Old: "3GiB"},
		{Kind: diff.Changed, Path: "volume_groups.vg0.lvs.home.size", Old: "rest", New: "2GiB"},
		{Kind: diff.Changed, Path: "host.match.dmi.vendor", Old: "LENOVO", New: "QEMU"},
		{Kind: diff.Removed, Path: "disks.main.select.serial", Old: "S1234"},
	})
	for _, c := range checks {
		if !c.Pass {
			t.Errorf("fitted sizes and added fields fail: %s: %s", c.Name, c.Detail)
		}
	}
	checks = roundTripChecks([]diff.Change{
		{Kind: diff.Changed, Path: "volume_groups.vg0.lvs.swap.size", Old: "512MiB", New: "1GiB"},
		{Kind: diff.Removed, Path: "volume_groups.vg0.lvs.home.min_size", Old: "1GiB"},
		{Kind: diff.Changed, Path: "bootloader.type", Old: "grub-efi", New: "grub-bios"},
	})
	var failed []string
	for _, c := range checks {
		if !c.Pass {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) != 4 { // the three, and the summary
		t.Errorf("want the absolute size, the unexplained min_size, the bootloader and the summary to fail, got %q", failed)
	}
}

func TestCaptureOutput(t *testing.T) {
	rec := "-- options: --\nroot /mnt/strata\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(rec))
	zw.Close()
	b64 := base64.StdEncoding.EncodeToString(gz.Bytes())
	console := "strata-live:/root# busybox wget ... && busybox sh /tmp/c.sh\r\nSTRATA-CAPTURE-WARNINGS\r\nwarning: x\r\nSTRATA-CAPTURE-BEGIN\r\n" +
		b64[:10] + "\r\n" + b64[10:] + "\r\nSTRATA-CAPTURE-END rc=0\r\n"
	if m := regexp.MustCompile(captureEndRE).FindStringSubmatch(console); m == nil || m[1] != "rc=0" {
		t.Errorf("captureEndRE: %q", m)
	}
	if regexp.MustCompile(captureEndRE).MatchString("STRATA-CAPTURE-END r") {
		t.Errorf("captureEndRE matches a line still arriving")
	}
	got, warn, err := captureOutput(console)
	if err != nil || string(got) != rec || warn != "warning: x" {
		t.Errorf("captureOutput = %q, %q, %v", got, warn, err)
	}
	if _, _, err := captureOutput("STRATA-CAPTURE-WARNINGS\nSTRATA-CAPTURE-BEGIN\n!!!\nSTRATA-CAPTURE-END rc=0\n"); err == nil {
		t.Error("a damaged recording was accepted")
	}
}
