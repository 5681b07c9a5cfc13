package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func strata(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	examples, _ := filepath.Glob("../../examples/*.yaml")
	if code, out, errs := strata(append([]string{"validate"}, examples...)...); code != exitOK || strings.Count(out, ": ok") != len(examples) {
		t.Errorf("validate examples: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs := strata("validate", "../../profile/testdata/invalid/too-small.yaml", "../../examples/bios-msdos.yaml")
	if code != exitFailed || !strings.Contains(errs, "too-small.yaml:5:24: disks.main.select.min_size:") || !strings.Contains(errs, "1 of 2 profiles invalid") {
		t.Errorf("validate invalid: exit %d\n%s", code, errs)
	}
	if code, _, _ := strata("validate"); code != exitUsage {
		t.Errorf("validate without files: exit %d, want %d", code, exitUsage)
	}
	if code, _, errs := strata("frobnicate"); code != exitUsage || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: exit %d %s", code, errs)
	}
	if code, _, _ := strata("validate", "--no-such-flag", "x"); code != exitUsage {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code, out, _ := strata(); code != exitUsage || !strings.Contains(out, "commands:") {
		t.Errorf("no arguments: exit %d", code)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	if len(commands) < 4 {
		t.Fatalf("only %d commands registered", len(commands))
	}
	for name := range commands {
		code, out, _ := strata(name, "--help")
		if code != exitOK || !strings.Contains(out, "usage: strata "+name) {
			t.Errorf("%s --help: exit %d\n%s", name, code, out)
		}
	}
	if code, out, _ := strata("help", "validate"); code != exitOK || !strings.Contains(out, "usage: strata validate") {
		t.Errorf("help validate: exit %d %s", code, out)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	code, out, _ := strata("schema")
	var v map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v["title"] != "strata host profile" {
		t.Errorf("schema: exit %d, not the profile schema", code)
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := strata("version"); code != exitOK || !strings.HasPrefix(out, "strata ") {
		t.Errorf("version: %d %q", code, out)
	}
}
