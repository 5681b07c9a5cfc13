package ids

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nme:x:4242:4343:Me:/home/me:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nme:x:4343:\nmedia:x:4444:me\n"), 0o644)
	for _, tc := range []struct {
		owner, group string
		want         Owner
	}{
		{"", "", Owner{0, 0}},
		{"me", "", Owner{4242, 4343}},
		{"me", "media", Owner{4242, 4444}},
		{"4242", "", Owner{4242, 4343}}, // a uid gets its primary group from passwd
		{"5000", "", Owner{5000, 5000}}, // unknown uid: same-numbered group
		{"", "media", Owner{0, 4444}},
		{"me", "77", Owner{4242, 77}},
	} {
		got, err := Resolve(root, tc.owner, tc.group)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q, %q) = %v, %v; want %v", tc.owner, tc.group, got, err, tc.want)
		}
	}
	_, err := Resolve(root, "nobody-here", "")
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), filepath.Join(root, "etc/passwd")) || !strings.Contains(err.Error(), "nobody-here") {
		t.Errorf("unknown owner: %v", err)
	}
	_, err = Resolve(root, "", "nogroup-here")
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "etc/group") {
		t.Errorf("unknown group: %v", err)
	}
}
