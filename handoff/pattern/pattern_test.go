package pattern

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestSelected(t *testing.T) {
	for _, tc := range []struct {
		inc, exc []string
		path     string
		want     bool
	}{
		{nil, nil, "a/b", true},
		{[]string{"favourites/**"}, nil, "favourites/x.flac", true},
		{[]string{"favourites/**"}, nil, "favourites/deep/x.flac", true},
		{[]string{"favourites/**"}, nil, "other/x.flac", false},
		{[]string{"favourites/**"}, nil, "artist/favourites/x.flac", true}, // unanchored: end of path
		{[]string{"/favourites/**"}, nil, "artist/favourites/x.flac", false},
		{[]string{"favourites"}, nil, "favourites/x.flac", true}, // a directory takes what is below
		{[]string{"*.flac"}, nil, "a/b/c.flac", true},
		{[]string{"*.flac"}, nil, "a/b/c.mp3", false},
		{[]string{"a/*.flac"}, nil, "a/b/c.flac", false}, // * stays in one component
		{[]string{"a/**.flac"}, nil, "a/b/c.flac", true},
		{[]string{"a/**/c.flac"}, nil, "a/c.flac", true}, // **/ may match no directory
		{nil, []string{"*.tmp"}, "a/b.tmp", false},
		{nil, []string{"*.tmp"}, "a/b.txt", true},
		{nil, []string{"live/"}, "live/x", false}, // trailing /: directories only
		{nil, []string{"live/"}, "live", true},    // ... so a file named live stays
		{[]string{"music/**"}, []string{"music/live/"}, "music/live/1.flac", false},
		{[]string{"music/**"}, []string{"music/live/"}, "music/studio/1.flac", true},
		{[]string{"track-?.flac"}, nil, "track-1.flac", true},
		{[]string{"track-[0-4].flac"}, nil, "track-7.flac", false},
	} {
		s := Set{Include: tc.inc, Exclude: tc.exc}
		if got := s.Selected(tc.path); got != tc.want {
			t.Errorf("include %q exclude %q: Selected(%q) = %v, want %v", tc.inc, tc.exc, tc.path, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Set{Include: []string{"a[b"}}).Validate(); err == nil {
		t.Error("unclosed [ accepted")
	}
	if err := (Set{Exclude: []string{""}}).Validate(); err == nil {
		t.Error("empty pattern accepted")
	}
	if err := (Set{Include: []string{"music/**", "*.flac"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestSameAsRsync proves that Selected and RsyncFilters pick the same files,
// by asking the real rsync (dry run) on a real tree.
func TestSameAsRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("skipping: rsync is not installed (make deps)")
	}
	src := t.TempDir()
	files := []string{"favourites/a.flac", "favourites/deep/b.flac", "favourites/c.tmp", "music/live/1.flac",
		"music/studio/2.flac", "music/studio/3.mp3", "artist/favourites/x.flac", "top.flac", "notes.txt", "live"}
	for _, f := range files {
		p := filepath.Join(src, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	for _, s := range []Set{
		{Include: []string{"favourites/**"}},
		{Include: []string{"/favourites"}, Exclude: []string{"*.tmp"}},
		{Include: []string{"*.flac"}, Exclude: []string{"live/"}},
		{Exclude: []string{"music/", "*.txt"}},
		{Include: []string{"music/**"}, Exclude: []string{"music/live/"}},
		{Include: []string{"**/deep/*.flac", "top.flac"}},
	} {
		args := append([]string{"-r", "--dry-run", "--out-format=%n"}, s.RsyncFilters()...)
		out, err := exec.Command("rsync", append(args, src+"/", t.TempDir()+"/")...).CombinedOutput()
		if err != nil {
			t.Fatalf("rsync: %v: %s", err, out)
		}
		var got, want []string
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" && !strings.HasSuffix(l, "/") {
				got = append(got, l)
			}
		}
		for _, f := range files {
			if s.Selected(f) {
				want = append(want, f)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%+v:\nrsync picks %q\nSelected    %q", s, got, want)
		}
	}
}
