package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/manifest"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/restore/fetch"
	"golang.org/x/sys/unix"
)

// readAheadMin is the size from which a file is received ahead of writing.
const readAheadMin = 8 << 20

// maxManifest bounds a manifest held in memory (about two million files).
const maxManifest = 256 << 20

// ErrNoManifest means a directory source has no manifest.
var ErrNoManifest = errors.New("no manifest")

// readManifest fetches and parses a manifest, returning its entries and
// its SHA-256.
func readManifest(ctx context.Context, murl string, opt Options) ([]manifest.Entry, string, error) {
	r, err := fetch.Open(ctx, murl, fetch.Options{Client: opt.Client, Header: opt.Creds.Lookup(murl).Header(), Log: opt.Log, Retries: opt.Retries})
	if err != nil {
		if strings.Contains(err.Error(), ": 404 ") || errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("%w at %s: %v", ErrNoManifest, murl, err)
		}
		return nil, "", fmt.Errorf("manifest: %w", explainHTTP(err))
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, "", fmt.Errorf("manifest: %w", err)
	}
	if len(data) > maxManifest {
		return nil, "", fmt.Errorf("manifest %s is larger than %d bytes", murl, maxManifest)
	}
	entries, err := manifest.Parse(murl, bytes.NewReader(data))
	return entries, digest(data), err
}

// selectEntries keeps the manifest entries a selection takes.
func selectEntries(entries []manifest.Entry, sel pattern.Set, murl string) ([]manifest.Entry, error) {
	if sel.Empty() {
		return entries, nil
	}
	var out []manifest.Entry
	for _, e := range entries {
		if sel.Selected(e.Path) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the selection (include %q, exclude %q) takes none of the %d files in %s", sel.Include, sel.Exclude, len(entries), murl)
	}
	return out, nil
}

// fileURL is the URL of a manifest entry below the source directory.
func fileURL(dir, rel string) (string, error) {
	u, err := url.Parse(dir)
	if err != nil {
		return "", err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + rel
	u.RawPath = ""
	return u.String(), nil
}

func fetchManifest(ctx context.Context, p Plan, sel pattern.Set, dest string, opt Options) (Result, error) {
	res := Result{Method: Manifest, Source: p.Source, Verified: "sha256 manifest " + p.Manifest}
	entries, digest, err := readManifest(ctx, p.Manifest, opt)
	if err != nil {
		if errors.Is(err, ErrNoManifest) {
			return res, fmt.Errorf("%w: a directory source needs a sha256sum manifest (see docs/handoff.md#manifests)", err)
		}
		return res, err
	}
	res.Digest = digest
	if entries, err = selectEntries(entries, sel, p.Manifest); err != nil {
		return res, err
	}
	stage := filepath.Join(dest, place.StagingName)
	if err := clearStage(stage, true); err != nil {
		return res, err
	}
	mr := &manifestRun{dest: dest, stage: stage, fresh: emptyDir(dest),
		self: opt.Owner.UID == os.Geteuid() && opt.Owner.GID == os.Getegid()}
	if err := os.MkdirAll(filepath.Join(stage, PartialHTTP), 0o700); err != nil {
		return res, fmt.Errorf("staging: %w", err)
	}
	mr.partials = map[string]bool{}
	if names, err := os.ReadDir(filepath.Join(stage, PartialHTTP)); err == nil {
		for _, n := range names {
			mr.partials[n.Name()] = true
		}
	}
	var err2 error // (named for the deferred cleanup)
	defer func() { clearStage(stage, err2 != nil) }()

	var (
		bytesDone, filesDone atomic.Int64
		reused, resumes      atomic.Int64
		mu                   sync.Mutex
	)
	report := func() {
		mu.Lock()
		opt.Progress(Progress{Bytes: bytesDone.Load(), TotalBytes: -1, Files: filesDone.Load(), TotalFiles: int64(len(entries))})
		mu.Unlock()
	}
	report()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(opt.FileJobs, len(entries)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for i := range work {
				e := entries[i]
				fromPlace, nres, err := mr.fetchFile(ctx, p.Source, e, buf, opt, func(delta int64) {
					bytesDone.Add(delta)
					report()
				})
				resumes.Add(int64(nres))
				if err != nil {
					cancel(fmt.Errorf("file %s (%s line %d): %w", e.Path, p.Manifest, e.Line, err))
					continue
				}
				if fromPlace {
					reused.Add(1)
				}
				filesDone.Add(1)
				report()
			}
		}()
	}
feed:
	for i := range entries {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err2 = context.Cause(ctx); err2 != nil {
		return res, err2
	}
	res.Files, res.Bytes, res.Reused, res.Resumes = filesDone.Load(), bytesDone.Load(), reused.Load(), int(resumes.Load())
	return res, nil
}

// manifestRun is one manifest dataset's fetch, with what saves each file
// system calls: a destination that was empty needs no look for files
// already in place, nor for a directory where a file goes; directories
// made once are known; files this process creates for itself need no chown.
type manifestRun struct {
	dest, stage string
	fresh       bool            // dest held nothing (but staging) when the fetch started
	partials    map[string]bool // names in partial/ when the fetch started
	large       atomic.Bool     // a file too large for fetchSmall came: no more tries
	self        bool            // the owner is this process's user and group
	dirs        sync.Map        // directories below dest made (or found) already
}

// inPlace reports whether final already has the content (never in a
// destination that was empty), and its size.
func (mr *manifestRun) inPlace(final, sum string, buf []byte) (int64, bool) {
	if mr.fresh {
		return 0, false
	}
	return sameContent(final, sum, buf)
}

// emptyDir reports whether dir holds nothing but the staging directory.
func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	for _, n := range names {
		if n != place.StagingName {
			return false
		}
	}
	return true
}

// fetchFile brings one manifest entry into place: kept if the file there
// already has the right content, else downloaded into the staging
// directory's partial/ (continuing what an interrupted run left there),
// verified while it streams, and renamed into place.
func (mr *manifestRun) fetchFile(ctx context.Context, dir string, e manifest.Entry, buf []byte, opt Options, progress func(int64)) (reused bool, resumes int, err error) {
	stage, dest := mr.stage, mr.dest
	final := filepath.Join(dest, filepath.FromSlash(e.Path))
	if n, ok := mr.inPlace(final, e.SHA256, buf); ok {
		if err := place.ChownOne(final, opt.Owner); err != nil {
			return false, 0, err
		}
		if err := os.Chmod(final, 0o644); err != nil {
			return false, 0, err
		}
		progress(n)
		return true, 0, nil
	}
	src, err := fileURL(dir, e.Path)
	if err != nil {
		return false, 0, err
	}
	staged := filepath.Join(stage, PartialHTTP, partialName(e))
	var last int64
	fopt := fetch.Options{Client: opt.Client, Header: opt.Creds.Lookup(src).Header(), Retries: opt.Retries, Log: opt.Log,
		SHA256: e.SHA256, SumFrom: "the manifest", Buffer: buf,
		Progress: func(done, _ int64) { progress(done - last); last = done }}
	small, res, err := mr.fetchSmall(ctx, src, staged, fopt)
	if !small && err == nil {
		res, err = fetch.Download(ctx, src, staged, fopt)
		if res.Reused > 0 {
			opt.Log("dataset: %s: continued after the %d bytes an earlier run left", src, res.Reused)
		}
	}
	if err != nil {
		progress(-last)
		return false, res.Resumes, explainHTTP(err)
	}
	if !mr.self {
		if err := place.ChownOne(staged, opt.Owner); err != nil {
			return false, res.Resumes, err
		}
	}
	if !small {
		if err := os.Chmod(staged, 0o644); err != nil {
			return false, res.Resumes, err
		}
	}
	if err := mr.place(staged, filepath.FromSlash(e.Path), opt.Owner); err != nil {
		return false, res.Resumes, err
	}
	return false, res.Resumes, nil
}

// fetchSmall fetches a file smaller than a download worth continuing after
// a restart (restore/fetch records those from 1 MiB) straight into staged:
// no partial file, sidecar or rename, and written through a plain
// descriptor. It says false, having done nothing, for a file with a partial
// download from an earlier run, or one that turns out larger or of unknown
// size: those go through fetch.Download. The first such response also turns
// this off for the rest of the dataset: closing it early wastes what the
// server sent ahead (up to the connection's windows) and the connection.
func (mr *manifestRun) fetchSmall(ctx context.Context, src, staged string, fopt fetch.Options) (bool, fetch.DownloadResult, error) {
	var res fetch.DownloadResult
	if _, ok := mr.partials[filepath.Base(staged)+fetch.PartSuffix]; ok || mr.large.Load() {
		return false, res, nil
	}
	r, err := fetch.Open(ctx, src, fopt)
	if err != nil {
		return true, res, err
	}
	defer r.Close()
	if res.Size = r.Size(); res.Size < 0 || res.Size >= smallMax {
		mr.large.Store(true)
		return false, res, nil
	}
	fd, err := unix.Open(staged, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return true, res, fmt.Errorf("fetch %s: create %s: %w", src, staged, err)
	}
	f := os.NewFile(uintptr(fd), staged) // (a regular file: never on the poller)
	res.Transferred, err = io.CopyBuffer(writerOnly{f}, r, fopt.Buffer)
	if err == nil {
		err = unix.Fchmod(fd, 0o644) // (whatever the umask)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	res.Resumes = r.Resumes()
	if err != nil {
		os.Remove(staged)
		return true, res, err
	}
	return true, res, nil
}

// smallMax is the size below which fetchSmall takes a file.
const smallMax = 1 << 20

// writerOnly hides os.File's ReadFrom, so io.CopyBuffer uses the buffer.
type writerOnly struct{ io.Writer }

// place moves a verified file to rel below the destination.
func (mr *manifestRun) place(staged, rel string, o place.Owner) error {
	if !mr.fresh {
		return place.File(staged, mr.dest, rel, &o)
	}
	// The manifest names no path as both a file and a directory, and
	// nothing else writes here: only the directories need making.
	if d := filepath.Dir(rel); d != "." {
		if _, ok := mr.dirs.Load(d); !ok {
			if err := place.Dirs(mr.dest, d, &o); err != nil {
				return err
			}
			mr.dirs.Store(d, true)
		}
	}
	d := filepath.Join(mr.dest, rel)
	if err := os.Rename(staged, d); err != nil {
		return fmt.Errorf("move %s into place: %w", d, err)
	}
	return nil
}

// PartialHTTP is the staging directory's subdirectory of partly downloaded
// files (with their sidecars), kept when a fetch fails so the next run
// continues them.
const PartialHTTP = "partial"

// partialName names an entry's download: by its path and its sum, so a
// changed manifest line does not continue old bytes.
func partialName(e manifest.Entry) string {
	h := sha256.Sum256([]byte(e.Path))
	return hex.EncodeToString(h[:8]) + "-" + e.SHA256[:16]
}

// clearStage removes the staging directory, keeping partial downloads
// (and the directories holding them) when keepPartial and there are any.
func clearStage(stage string, keepPartial bool) error {
	keep := ""
	if keepPartial {
		keep = PartialHTTP
	}
	return clearStageBut(stage, keep)
}

// clearStageBut removes the staging directory but for its subdirectory
// keep ("" for none), which stays only with something in it to continue.
func clearStageBut(stage, keep string) error {
	ents, err := os.ReadDir(stage)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear staging %s: %w", stage, err)
	}
	for _, e := range ents {
		if keep != "" && e.Name() == keep && e.IsDir() {
			continue
		}
		if err := os.RemoveAll(filepath.Join(stage, e.Name())); err != nil {
			return fmt.Errorf("clear staging %s: %w", stage, err)
		}
	}
	if keep != "" {
		if os.Remove(filepath.Join(stage, keep)) != nil {
			return nil
		}
	}
	if err := os.Remove(stage); err != nil {
		return fmt.Errorf("clear staging %s: %w", stage, err)
	}
	return nil
}

// explainHTTP adds the likely cause to an HTTP refusal.
func explainHTTP(err error) error {
	err = creds.ExplainTLS(err)
	if msg := err.Error(); strings.Contains(msg, ": 401 ") || strings.Contains(msg, ": 403 ") {
		return fmt.Errorf("%w (authentication: add an entry for this URL to the credentials file, see docs/handoff.md#credentials)", err)
	}
	return err
}

// sameContent reports whether the regular file at p (not a symlink) has the
// given SHA-256, and its size.
func sameContent(p, want string, buf []byte) (int64, bool) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, buf)
	if err != nil {
		return 0, false
	}
	return n, hex.EncodeToString(h.Sum(nil)) == want
}
