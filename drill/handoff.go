package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/stratahq/strata/handoff/manifest"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

// The hand-off in a drill: the profile's repos and datasets are fetched as in
// a real restore. Their servers must be reachable from the guest (QEMU's
// user network reaches whatever the host reaches), or mapped with URLMap onto
// copies the drill serves from Options.Files.

// mapURL rewrites u by the longest matching URLMap prefix. A replacement
// that is not an absolute URL is a path on the drill's own file server.
func (d *drill) mapURL(u string) string {
	best := ""
	for from := range d.opt.URLMap {
		if strings.HasPrefix(u, from) && len(from) > len(best) {
			best = from
		}
	}
	if best == "" {
		return u
	}
	to := d.opt.URLMap[best]
	if !regexp.MustCompile(`^[a-z][a-z0-9+.-]*://`).MatchString(to) {
		to = strings.TrimSuffix(d.url, "/") + "/" + strings.TrimPrefix(to, "/")
	}
	return to + strings.TrimPrefix(u, best)
}

// hostURL is u as the host reaches it: the guest's 10.0.2.2 is the host's
// loopback (the drill's own file server, or another server of the host's).
func (d *drill) hostURL(u string) string {
	if strings.HasPrefix(u, d.url) {
		return d.hostBase + strings.TrimPrefix(u, d.url)
	}
	if pu, err := url.Parse(u); err == nil && pu.Hostname() == "10.0.2.2" {
		port := pu.Port()
		pu.Host = "127.0.0.1"
		if port != "" {
			pu.Host += ":" + port
		}
		return pu.String()
	}
	return u
}

// adaptHandoff points the profile's repos and datasets at their drill URLs.
func (d *drill) adaptHandoff(p *profile.Profile) {
	for i := range p.Repos {
		p.Repos[i].URL = d.mapURL(p.Repos[i].URL)
	}
	for i := range p.Datasets {
		ds := &p.Datasets[i]
		if ds.Source != "" {
			ds.Source = d.mapURL(ds.Source)
		}
		if ds.Manifest != "" {
			ds.Manifest = d.mapURL(ds.Manifest)
		}
	}
}

// Console markers of the hand-off part of the inventory.
const (
	handoffBegin = "STRATA-HANDOFF-BEGIN"
	handoffEnd   = "STRATA-HANDOFF-END"
)

// handoffCommands print, in the restored system, what checkHandoff compares:
// each git repo's checked-out commit (read from .git, the target need not
// have git), each item's done marker, and each dataset's files with their
// SHA-256 and the owner and mode of its top directory. One line, for typing.
func handoffCommands(p *profile.Profile) string {
	var b strings.Builder
	q := func(s string) string { return run.Quote([]string{s}) }
	for _, r := range p.Repos {
		g := q(r.Path + "/.git")
		// HEAD is a commit (detached) or a ref: loose, or in packed-refs.
		fmt.Fprintf(&b, `echo REPO %s; h=$(cat %s/HEAD 2>/dev/null); case "$h" in "ref: "*) r=${h#ref: }; cat %s/$r 2>/dev/null || grep " $r\$" %s/packed-refs | cut -d" " -f1;; *) echo "$h";; esac; `,
			q(r.Name), g, g, g)
		fmt.Fprintf(&b, `stat -c "TOP %%U %%G %%a" %s; echo MARKER; cat %s; echo; `, q(r.Path), q("/var/lib/strata/repos/"+url.PathEscape(r.Name)))
	}
	for _, ds := range p.Datasets {
		fmt.Fprintf(&b, `echo DATASET %s; stat -c "TOP %%U %%G %%a" %s; (cd %s && find . -type f ! -path "./.strata*" -exec sha256sum {} +); `,
			q(ds.Name), q(ds.Path), q(ds.Path))
	}
	return b.String()
}

// handoffInventory is what the restored system said about one item.
type handoffInventory struct {
	Head   string            // git: the checked-out commit
	Marker string            // the done marker (JSON), if any
	Top    []string          // owner, group, mode of a dataset's top directory
	Files  map[string]string // dataset: relative name → SHA-256
}

// parseHandoff reads the hand-off part of the console output.
func parseHandoff(console string) (map[string]*handoffInventory, error) {
	m := regexp.MustCompile(`(?s)`+handoffBegin+`\r?\n(.*?)`+handoffEnd).FindAllStringSubmatch(console, -1)
	if m == nil {
		return nil, fmt.Errorf("no hand-off inventory in the console output")
	}
	out := map[string]*handoffInventory{}
	var cur *handoffInventory
	inMarker := false
	sumRE := regexp.MustCompile(`^([0-9a-f]{64})  \./(.*)$`)
	for _, line := range strings.Split(strings.ReplaceAll(m[len(m)-1][1], "\r", ""), "\n") {
		switch {
		case strings.HasPrefix(line, "REPO "), strings.HasPrefix(line, "DATASET "):
			kind, name, _ := strings.Cut(line, " ")
			cur = &handoffInventory{Files: map[string]string{}}
			out[strings.ToLower(kind)+" "+name] = cur
			inMarker = false
		case cur == nil:
		case line == "MARKER" && !inMarker:
			inMarker = true
		case inMarker:
			cur.Marker += line
		case strings.HasPrefix(line, "TOP "):
			cur.Top = strings.Fields(line)[1:]
		case sumRE.MatchString(line):
			s := sumRE.FindStringSubmatch(line)
			cur.Files[s[2]] = s[1]
		case cur.Head == "" && regexp.MustCompile(`^[0-9a-f]{40,64}$`).MatchString(line):
			cur.Head = line
		}
	}
	return out, nil
}

// checkHandoff verifies repos at the commits their servers have now and
// datasets with every file their manifest selects, by checksum.
func (d *drill) checkHandoff(ctx context.Context, inv map[string]*handoffInventory) []Check {
	var out []Check
	add := func(name string, ok bool, format string, a ...any) {
		out = append(out, Check{Name: name, Pass: ok, Detail: fmt.Sprintf(format, a...)})
	}
	for _, r := range d.p.Repos {
		name := "repo " + r.Name
		got := inv["repo "+r.Name]
		if got == nil {
			add(name, false, "not in the inventory")
			continue
		}
		if len(got.Top) == 3 {
			if msg := ownerMismatch(r.Path, r.Owner, r.Group, r.Mode, got.Top); msg != "" {
				add(name, false, "%s", msg)
				continue
			}
		}
		if r.Type == "svn" {
			ok, detail := d.checkSVN(ctx, r, got.Marker)
			add(name, ok, "%s", detail)
			continue
		}
		want, err := d.expectedCommit(ctx, r)
		switch {
		case err != nil:
			add(name, false, "cannot tell the expected commit: %v", err)
		case got.Head == "":
			add(name, false, "no git checkout at %s", r.Path)
		case !strings.HasPrefix(got.Head, want):
			add(name, false, "%s is at %s, the server's %s is %s", r.Path, got.Head, refName(r), want)
		default:
			add(name, true, "%s at %s (%s)", r.Path, short(got.Head), refName(r))
		}
	}
	for _, ds := range d.p.Datasets {
		name := "dataset " + ds.Name
		got := inv["dataset "+ds.Name]
		if got == nil || len(got.Top) < 3 {
			add(name, false, "%s is missing", ds.Path)
			continue
		}
		if msg := ownerMismatch(ds.Path, ds.Owner, ds.Group, ds.Mode, got.Top); msg != "" {
			add(name, false, "%s", msg)
			continue
		}
		if ds.Kind == "buffer" {
			add(name, true, "%s, %s:%s mode %s", ds.Path, got.Top[0], got.Top[1], got.Top[2])
			continue
		}
		want, err := d.expectedFiles(ctx, ds)
		if err != nil {
			add(name, false, "%v", err)
			continue
		}
		if want == nil { // an archive or rsync source: no per-file list to compare
			ok := len(got.Files) > 0
			add(name, ok, "%d files in %s", len(got.Files), ds.Path)
			continue
		}
		var bad []string
		for rel, sum := range want {
			switch g, ok := got.Files[rel]; {
			case !ok:
				bad = append(bad, rel+" missing")
			case g != sum:
				bad = append(bad, rel+" differs")
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			if len(bad) > 5 {
				bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
			}
			add(name, false, "%d of %d files wrong: %s", len(bad), len(want), strings.Join(bad, ", "))
			continue
		}
		add(name, true, "%d files verified in %s", len(want), ds.Path)
	}
	return out
}

func ownerMismatch(path, owner, group, mode string, top []string) string {
	if owner != "" && top[0] != owner {
		return fmt.Sprintf("%s belongs to %s, the profile says %s", path, top[0], owner)
	}
	if group != "" && top[1] != group {
		return fmt.Sprintf("%s has group %s, the profile says %s", path, top[1], group)
	}
	if mode != "" && strings.TrimLeft(mode, "0") != strings.TrimLeft(top[2], "0") {
		return fmt.Sprintf("%s has mode %s, the profile says %s", path, top[2], mode)
	}
	return ""
}

// checkSVN compares the revision an svn checkout's done marker records
// (svn keeps its own in an sqlite database, which the restored system may
// have no tool to read) with the profile's, or else with the one the server
// has now.
func (d *drill) checkSVN(ctx context.Context, r profile.Repo, marker string) (bool, string) {
	var m struct {
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(marker), &m); err != nil || m.Revision == "" {
		return false, fmt.Sprintf("no done marker with a revision for %s: %s", r.Path, orNone(marker))
	}
	want := r.Revision
	if want == "" {
		u := d.hostURL(r.URL)
		d.opt.Log("drill: run svn info --show-item revision -- %s", u)
		cmd := exec.CommandContext(ctx, "svn", "info", "--non-interactive", "--show-item", "revision", "--", u)
		b, err := cmd.Output()
		if err != nil {
			return false, fmt.Sprintf("cannot tell the expected revision: svn info %s: %v", u, err)
		}
		want = strings.TrimSpace(string(b))
	}
	if m.Revision != want {
		return false, fmt.Sprintf("%s is at revision %s, want %s", r.Path, m.Revision, want)
	}
	return true, fmt.Sprintf("%s at revision %s", r.Path, m.Revision)
}

// expectedCommit asks the repo's server (as the host reaches it) which
// commit the profile's branch or tag is at; a pinned revision is itself
// (possibly abbreviated: it is compared as a prefix).
func (d *drill) expectedCommit(ctx context.Context, r profile.Repo) (string, error) {
	if r.Revision != "" {
		return strings.ToLower(r.Revision), nil
	}
	ref := "HEAD"
	switch {
	case r.Tag != "":
		ref = "refs/tags/" + r.Tag
	case r.Branch != "":
		ref = "refs/heads/" + r.Branch
	}
	u := d.hostURL(r.URL)
	cmd := exec.CommandContext(ctx, "git", "ls-remote", "--", u, ref, ref+"^{}")
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	d.opt.Log("drill: run git ls-remote -- %s %s", u, ref)
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git ls-remote %s %s: %w", u, ref, err)
	}
	commit := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (commit == "" || strings.HasSuffix(f[1], "^{}")) {
			commit = f[0] // a peeled tag names the commit itself
		}
	}
	if commit == "" {
		return "", fmt.Errorf("%s has no %s", u, ref)
	}
	return commit, nil
}

// expectedFiles is what a manifest dataset must bring: its manifest's lines
// that the selection picks. nil for archives and rsync sources.
func (d *drill) expectedFiles(ctx context.Context, ds profile.Dataset) (map[string]string, error) {
	src := ds.Source
	if !strings.HasSuffix(src, "/") || !(strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") || !strings.Contains(src, "://")) {
		return nil, nil
	}
	mf := ds.Manifest
	if mf == "" {
		mf = src + "SHA256SUMS"
	}
	if !strings.Contains(mf, "://") {
		mf = strings.TrimSuffix(d.url, "/") + "/" + strings.TrimPrefix(mf, "/")
	}
	body, err := d.get(ctx, d.hostURL(mf))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	entries, err := manifest.Parse(mf, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	sel := pattern.Set{Include: ds.Include, Exclude: ds.Exclude}
	want := map[string]string{}
	for _, e := range entries {
		if ds.Kind != "selection" || sel.Selected(e.Path) {
			want[e.Path] = e.SHA256
		}
	}
	return want, nil
}

func (d *drill) get(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return string(b), err
}

// serveFiles links every top-level entry of dir into the served directory.
func serveFiles(dir, srvDir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("files to serve: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		dst := filepath.Join(srvDir, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("files to serve: %s clashes with the drill's own %s", filepath.Join(dir, e.Name()), path.Base(dst))
		}
		if err := os.Symlink(filepath.Join(abs, e.Name()), dst); err != nil {
			return fmt.Errorf("files to serve: %w", err)
		}
	}
	return nil
}

func refName(r profile.Repo) string {
	switch {
	case r.Tag != "":
		return "tag " + r.Tag
	case r.Branch != "":
		return "branch " + r.Branch
	case r.Revision != "":
		return "revision " + r.Revision
	}
	return "default branch"
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
