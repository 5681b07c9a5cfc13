// Package handoff is the last part of a restore: once the system is in place
// (and its bootloader installed), the profile's configuration repositories
// and datasets arrive at their paths inside the restored root, with their
// owners, verified, with progress events, resumable.
//
// The restore calls Run after the bootloader step; `strata handoff` calls it
// on its own for a root that is already restored. Repos go first, one at a
// time (/etc first: the accounts that own everything else may come from it),
// then datasets, several at a time. Each item is recorded done by a marker
// under ROOT/var/lib/strata/{repos,datasets}/NAME, written only after the
// item is complete, verified and synced to disk; a re-run skips done items
// and finishes the others.
package handoff

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/dataset"
	"github.com/stratahq/strata/handoff/ids"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/handoff/repo"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"golang.org/x/sys/unix"
)

// MarkerDir is where done markers live inside the restored root.
const MarkerDir = "/var/lib/strata"

// Options configure a hand-off.
type Options struct {
	// Root is the restored system's root directory (e.g. /mnt/strata).
	Root string
	// Server is the file server that relative URLs are resolved against.
	Server string
	// Creds are the credentials supplied at restore time (nil for none).
	Creds *creds.Store
	// Jobs bounds the datasets fetched at once (default 2).
	Jobs int
	// FileJobs bounds the files fetched at once within one manifest
	// dataset (default 4).
	FileJobs int
	// Retries bounds the resumes of one cut transfer (default 5).
	Retries int
	// StallLimit is how long an rsync transfer may move nothing before it
	// is taken for a dead connection and resumed (default 2 minutes).
	StallLimit time.Duration
	// Runner runs git, svn and rsync (default run.Exec logging to Log). Datasets
	// run in parallel, so it must be safe for concurrent use (run.Exec is).
	Runner run.Runner
	// Log receives the command log (argv, stderr) and transfer notes.
	Log func(format string, args ...any)
	// Events receives the progress of every item, one event at a time.
	Events func(Event)
	// ProgressInterval spaces Progress events of one item (default 250ms).
	ProgressInterval time.Duration
	// TempDir is scratch space in the live environment (default os.TempDir()).
	TempDir string
	// SVN is where svn runs: "" (the live system's svn, else the restored
	// system's, chrooted), "live" or "root" (see repo.SVNAuto and friends).
	SVN string
}

// ItemReport is how one item ended.
type ItemReport struct {
	Item     Item
	Status   EventType // Done, Skipped or Failed
	Revision string    // repos: git commit or svn revision
	Files    int64
	Bytes    int64
	Verified string
	Took     time.Duration
	Err      error
}

// Report is the outcome of a hand-off, one entry per item in profile order
// (repos, then datasets).
type Report struct {
	Items []ItemReport
}

// Failed lists the items that failed.
func (r Report) Failed() []ItemReport {
	var out []ItemReport
	for _, it := range r.Items {
		if it.Status == Failed {
			out = append(out, it)
		}
	}
	return out
}

// Marker is what a done item leaves under ROOT/var/lib/strata. It never
// holds a credential.
type Marker struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Spec     string    `json:"spec"` // SHA-256 of the profile entry: a changed entry is not done
	Source   string    `json:"source,omitempty"`
	Method   string    `json:"method,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Digest   string    `json:"sha256,omitempty"` // the manifest's or the archive's SHA-256
	Verified string    `json:"verified,omitempty"`
	Files    int64     `json:"files"`
	Bytes    int64     `json:"bytes"`
	Done     time.Time `json:"done"`
}

type handoff struct {
	opt  Options
	mu   sync.Mutex // serialises Events
	all  []Item
	logf func(string, ...any)
}

// Run hands off every repo and dataset of p onto the restored root. It goes
// on after an item fails (later items may not depend on it) and returns the
// report and an error joining every failure.
func Run(ctx context.Context, p *profile.Profile, opt Options) (Report, error) {
	if opt.Root == "" {
		return Report{}, errors.New("handoff: no root directory")
	}
	if st, err := os.Stat(opt.Root); err != nil || !st.IsDir() {
		return Report{}, fmt.Errorf("handoff: root %s is not a directory", opt.Root)
	}
	if abs, err := filepath.Abs(opt.Root); err == nil {
		opt.Root = abs
	}
	if opt.Jobs <= 0 {
		opt.Jobs = 2
	}
	if opt.ProgressInterval <= 0 {
		opt.ProgressInterval = 250 * time.Millisecond
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	if opt.Runner == nil {
		opt.Runner = run.Exec{Log: opt.Log}
	}
	if opt.Events == nil {
		opt.Events = func(Event) {}
	}
	h := &handoff{opt: opt, logf: opt.Log}
	for _, r := range p.Repos {
		h.all = append(h.all, Item{"repo", r.Name, r.Path})
	}
	for _, d := range p.Datasets {
		h.all = append(h.all, Item{"dataset", d.Name, d.Path})
	}
	var rep Report
	for _, r := range RepoOrder(p.Repos) {
		rep.Items = append(rep.Items, h.repo(ctx, r))
	}
	rep.Items = append(rep.Items, h.datasets(ctx, p.Datasets)...)
	var errs []error
	for _, it := range rep.Items {
		if it.Err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", it.Item, it.Item.Path, it.Err))
		}
	}
	return rep, errors.Join(errs...)
}

// RepoOrder is the order repos are checked out in: /etc and below first
// (the restored accounts may come from it), then parents before children,
// otherwise as in the profile.
func RepoOrder(repos []profile.Repo) []profile.Repo {
	out := append([]profile.Repo{}, repos...)
	rank := func(p string) int {
		if p == "/etc" || strings.HasPrefix(p, "/etc/") {
			return 0
		}
		return 1
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i].Path), rank(out[j].Path)
		if ri != rj {
			return ri < rj
		}
		return depth(out[i].Path) < depth(out[j].Path)
	})
	return out
}

func depth(p string) int { return strings.Count(strings.Trim(p, "/"), "/") }

func (h *handoff) emit(e Event) {
	e.Time = time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opt.Events(e)
}

// progress returns a throttled Progress emitter for one item.
func (h *handoff) progress(it Item) func(Counts, bool) {
	var mu sync.Mutex
	var last time.Time
	return func(c Counts, final bool) {
		mu.Lock()
		now := time.Now()
		if !final && now.Sub(last) < h.opt.ProgressInterval {
			mu.Unlock()
			return
		}
		last = now
		mu.Unlock()
		h.emit(Event{Type: Progress, Item: it, Counts: c})
	}
}

// nestedKeep lists the top-level names under dest that are other items'
// destinations (or lead to them), which a replace must leave alone.
func (h *handoff) nestedKeep(self Item) []string {
	var keep []string
	for _, o := range h.all {
		if o == self {
			continue
		}
		rel, ok := strings.CutPrefix(o.Path, strings.TrimSuffix(self.Path, "/")+"/")
		if ok && rel != "" {
			keep = append(keep, strings.SplitN(rel, "/", 2)[0])
		}
	}
	return keep
}

func specHash(v any) string {
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// markerPath is the host path of an item's marker directory and file name.
func (h *handoff) markerDir(kind string) (string, error) {
	return place.InRoot(h.opt.Root, path.Join(MarkerDir, kind+"s"), nil)
}

func markerName(name string) string { return url.PathEscape(name) }

// ReadMarker returns an item's done marker in root, if there is one.
func ReadMarker(root, kind, name string) (*Marker, error) {
	dir, err := place.InRoot(root, path.Join(MarkerDir, kind+"s"), nil)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, markerName(name)))
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("marker %s: %w", filepath.Join(dir, markerName(name)), err)
	}
	return &m, nil
}

// done reports whether the item is marked done with this spec; otherwise it
// removes a stale marker (a changed entry is not done until it is).
func (h *handoff) done(it Item, spec string) (*Marker, error) {
	dir, err := h.markerDir(it.Kind)
	if err != nil {
		return nil, err
	}
	f := filepath.Join(dir, markerName(it.Name))
	m, err := ReadMarker(h.opt.Root, it.Kind, it.Name)
	if err == nil && m.Spec == spec {
		return m, nil
	}
	if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale marker: %w", err)
	}
	return nil, nil
}

// mark writes the done marker after syncing the destination's filesystem.
func (h *handoff) mark(dest string, m Marker) error {
	if fd, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		serr := unix.Syncfs(fd)
		unix.Close(fd)
		if serr != nil {
			return fmt.Errorf("sync %s: %w", dest, serr)
		}
	}
	dir, err := h.markerDir(m.Kind)
	if err != nil {
		return err
	}
	m.Done = time.Now().UTC().Truncate(time.Second)
	b, _ := json.MarshalIndent(m, "", "  ")
	f := filepath.Join(dir, markerName(m.Name))
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	if fh, err := os.Open(tmp); err == nil {
		fh.Sync()
		fh.Close()
	}
	if err := os.Rename(tmp, f); err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	return nil
}

// finishTop gives the destination itself its owner and mode.
func finishTop(dest string, o *place.Owner, mode string) error {
	if o != nil {
		if err := os.Lchown(dest, o.UID, o.GID); err != nil {
			return fmt.Errorf("chown %s: %w", dest, err)
		}
	}
	if mode != "" {
		m, err := strconv.ParseUint(mode, 8, 32)
		if err != nil {
			return fmt.Errorf("mode %q: %w", mode, err)
		}
		if err := unix.Chmod(dest, uint32(m)); err != nil {
			return fmt.Errorf("chmod %s: %w", dest, err)
		}
	}
	return nil
}

// owner resolves an item's owner in the restored system; nil when the
// profile names neither owner nor group.
func (h *handoff) owner(o, g string) (*place.Owner, error) {
	if o == "" && g == "" {
		return nil, nil
	}
	r, err := ids.Resolve(h.opt.Root, o, g)
	if err != nil {
		return nil, err
	}
	return &place.Owner{UID: r.UID, GID: r.GID}, nil
}

func (h *handoff) fail(it Item, start time.Time, err error) ItemReport {
	h.emit(Event{Type: Failed, Item: it, Err: err})
	return ItemReport{Item: it, Status: Failed, Err: err, Took: time.Since(start)}
}

func (h *handoff) repo(ctx context.Context, r profile.Repo) ItemReport {
	it := Item{"repo", r.Name, r.Path}
	start := time.Now()
	clean, _, _ := creds.StripPassword(r.URL)
	what := r.Branch
	switch {
	case r.Tag != "":
		what = "tag " + r.Tag
	case r.Revision != "":
		what = strings.TrimSpace(what + " revision " + r.Revision)
	case what == "":
		what = "default branch"
	}
	existing := r.Existing
	if existing == "" {
		existing = "overlay"
	}
	h.emit(Event{Type: Started, Item: it, Detail: fmt.Sprintf("%s %s (%s) into %s, %s", r.Type, clean, what, r.Path, existing)})
	spec := specHash(r)
	if m, err := h.done(it, spec); err != nil {
		return h.fail(it, start, err)
	} else if m != nil {
		h.emit(Event{Type: Skipped, Item: it, Detail: "done on " + m.Done.Format(time.RFC3339) + " at " + m.Revision})
		return ItemReport{Item: it, Status: Skipped, Revision: m.Revision, Files: m.Files, Bytes: m.Bytes, Verified: m.Verified}
	}
	o, err := h.owner(r.Owner, r.Group)
	if err != nil {
		return h.fail(it, start, err)
	}
	dest, err := place.InRoot(h.opt.Root, r.Path, o)
	if err != nil {
		return h.fail(it, start, err)
	}
	res, err := repo.Checkout(ctx, r, dest, repo.Options{
		Runner: h.opt.Runner, Creds: h.opt.Creds, Owner: o, Keep: h.nestedKeep(it), TempDir: h.opt.TempDir,
		SVN: h.opt.SVN, Root: h.opt.Root, Log: h.opt.Log,
		Phase: func(ph string) { h.emit(Event{Type: Phase, Item: it, Phase: ph}) },
	})
	if err != nil {
		return h.fail(it, start, err)
	}
	if err := finishTop(dest, o, r.Mode); err != nil {
		return h.fail(it, start, err)
	}
	verified := "git object ids"
	if r.Type == "svn" {
		verified = "svn checksums"
	}
	m := Marker{Kind: "repo", Name: r.Name, Path: r.Path, Spec: spec, Source: clean, Method: r.Type, Revision: res.Revision, Verified: verified, Files: res.Files, Bytes: res.Bytes}
	if err := h.mark(dest, m); err != nil {
		return h.fail(it, start, err)
	}
	took := time.Since(start)
	c := Counts{Bytes: res.Bytes, TotalBytes: res.Bytes, Files: res.Files, TotalFiles: res.Files}
	h.emit(Event{Type: Done, Item: it, Counts: c, Detail: fmt.Sprintf("%s at %s, %d files, %s in %s", r.Type, res.Revision, res.Files, HumanBytes(res.Bytes), took.Round(time.Millisecond))})
	return ItemReport{Item: it, Status: Done, Revision: res.Revision, Files: res.Files, Bytes: res.Bytes, Verified: verified, Took: took}
}

// datasets runs the datasets, Jobs at a time; a dataset whose destination
// is below another's waits for that one.
func (h *handoff) datasets(ctx context.Context, ds []profile.Dataset) []ItemReport {
	out := make([]ItemReport, len(ds))
	done := make([]chan struct{}, len(ds))
	for i := range ds {
		done[i] = make(chan struct{})
	}
	sem := make(chan struct{}, h.opt.Jobs)
	var wg sync.WaitGroup
	for i := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			for j := range ds {
				if j != i && strings.HasPrefix(ds[i].Path, strings.TrimSuffix(ds[j].Path, "/")+"/") {
					<-done[j]
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				it := Item{"dataset", ds[i].Name, ds[i].Path}
				out[i] = h.fail(it, time.Now(), ctx.Err())
				return
			}
			defer func() { <-sem }()
			out[i] = h.dataset(ctx, ds[i])
		}()
	}
	wg.Wait()
	return out
}

func (h *handoff) dataset(ctx context.Context, d profile.Dataset) ItemReport {
	it := Item{"dataset", d.Name, d.Path}
	start := time.Now()
	kind := d.Kind
	if kind == "" {
		kind = "full"
	}
	plan, err := dataset.Classify(d, h.opt.Server)
	if err != nil {
		h.emit(Event{Type: Started, Item: it, Detail: kind + " into " + d.Path})
		return h.fail(it, start, err)
	}
	detail := fmt.Sprintf("%s from %s (%s) into %s", kind, plan.Source, plan.Method, d.Path)
	if plan.Method == dataset.Buffer {
		detail = "buffer at " + d.Path
	}
	h.emit(Event{Type: Started, Item: it, Detail: detail})
	spec := specHash(d)
	if m, err := h.done(it, spec); err != nil {
		return h.fail(it, start, err)
	} else if m != nil {
		h.emit(Event{Type: Skipped, Item: it, Detail: fmt.Sprintf("done on %s (%d files, %s)", m.Done.Format(time.RFC3339), m.Files, HumanBytes(m.Bytes))})
		return ItemReport{Item: it, Status: Skipped, Files: m.Files, Bytes: m.Bytes, Verified: m.Verified}
	}
	o, err := h.owner(d.Owner, d.Group)
	if err != nil {
		return h.fail(it, start, err)
	}
	dest, err := place.InRoot(h.opt.Root, d.Path, o)
	if err != nil {
		return h.fail(it, start, err)
	}
	fileOwner := place.Owner{}
	if o != nil {
		fileOwner = *o
	}
	if plan.Method != dataset.Buffer {
		h.emit(Event{Type: Phase, Item: it, Phase: "fetch"})
	}
	prog := h.progress(it)
	res, err := dataset.Fetch(ctx, d, dest, dataset.Options{
		Runner: h.opt.Runner, Creds: h.opt.Creds, Server: h.opt.Server, Owner: fileOwner,
		FileJobs: h.opt.FileJobs, Retries: h.opt.Retries, StallLimit: h.opt.StallLimit, Log: h.opt.Log, TempDir: h.opt.TempDir,
		Progress: func(p dataset.Progress) {
			if plan.Method != dataset.Buffer {
				prog(Counts(p), false)
			}
		},
	})
	if err != nil {
		return h.fail(it, start, err)
	}
	if err := finishTop(dest, o, d.Mode); err != nil {
		return h.fail(it, start, err)
	}
	m := Marker{Kind: "dataset", Name: d.Name, Path: d.Path, Spec: spec, Source: res.Source, Method: res.Method, Digest: res.Digest, Verified: res.Verified, Files: res.Files, Bytes: res.Bytes}
	if err := h.mark(dest, m); err != nil {
		return h.fail(it, start, err)
	}
	took := time.Since(start)
	c := Counts{Bytes: res.Bytes, TotalBytes: res.Bytes, Files: res.Files, TotalFiles: res.Files}
	if plan.Method != dataset.Buffer {
		prog(c, true)
	}
	detail = fmt.Sprintf("%d files, %s in %s", res.Files, HumanBytes(res.Bytes), took.Round(time.Millisecond))
	if res.Method == dataset.Buffer {
		detail = "empty directory ready"
	}
	if took > 0 && res.Bytes > 0 {
		detail += fmt.Sprintf(" (%s/s)", HumanBytes(int64(float64(res.Bytes)/took.Seconds())))
	}
	if res.Reused > 0 {
		detail += fmt.Sprintf(", %d already in place", res.Reused)
	}
	if res.Resumes > 0 {
		detail += fmt.Sprintf(", resumed after %d cut(s)", res.Resumes)
	}
	if res.Verified != "" {
		detail += ", verified by " + res.Verified
	}
	h.emit(Event{Type: Done, Item: it, Counts: c, Detail: detail})
	return ItemReport{Item: it, Status: Done, Files: res.Files, Bytes: res.Bytes, Verified: res.Verified, Took: took}
}
