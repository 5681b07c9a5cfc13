package plan

import (
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
)

// The plan names the hand-off's programs the restoring system lacks, and
// which repos and datasets need them.
func TestToolWarnings(t *testing.T) {
	const base = `version: 1
host: {name: t}
disks:
  main:
    table: gpt
    partitions:
      - {name: root, size: rest}
filesystems:
  - {device: main/root, type: ext4, mount: {path: /}}
repos:
  etc: {type: svn, url: "svn+ssh://files/etc", path: /etc}
  dots: {type: git, url: "ssh://git@files/dots.git", path: /root/dots}
  web: {type: git, url: "https://files/web.git", path: /srv/web}
datasets:
  music: {source: "rsync://files/music", path: /srv/music}
  photos: {source: "photos/", path: /srv/photos}
`
	only := func(progs ...string) func(string) bool {
		return func(p string) bool {
			for _, q := range progs {
				if p == q {
					return true
				}
			}
			return false
		}
	}
	for _, c := range []struct {
		name, extra string
		has         func(string) bool
		want        []string // a substring per warning, in order
	}{
		{"all there", "", only("git", "svn", "rsync", "ssh"), nil},
		{"no check", "", nil, nil},
		{"bare system", "", only(),
			[]string{"repos.dots, repos.web need git", "repos.etc need svn, which this system lacks and system.packages does not install", "datasets.music need rsync", "repos.etc, repos.dots need ssh"}},
		{"svn from the packages", "system:\n  image: {url: base.tar, sha256: " + strings.Repeat("0", 64) + "}\n  packages: [subversion]\n", only("git", "rsync", "ssh"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := profile.Parse("t.yaml", []byte(base+c.extra))
			if err != nil {
				t.Fatal(err)
			}
			got := toolWarnings(p, c.has)
			if len(got) != len(c.want) {
				t.Fatalf("got %d warnings, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d: %q lacks %q", i, got[i], w)
				}
			}
		})
	}
}

// An open plan (strata open) does no hand-off and warns about none of it.
func TestToolWarningsNotWhenOpening(t *testing.T) {
	for _, c := range cases() {
		if c.name != "equal" {
			continue
		}
		pl, err := Build(load(t, c.example), c.disks, Options{Open: true, Disks: c.opts.Disks, Has: func(string) bool { return false }})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range pl.Warnings {
			if strings.Contains(w, "which this system lacks") {
				t.Errorf("%s: open plan warns: %s", c.example, w)
			}
		}
	}
}
