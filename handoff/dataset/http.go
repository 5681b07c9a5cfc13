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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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
	sum := sha256.Sum256(data)
	entries, err := manifest.Parse(murl, bytes.NewReader(data))
	return entries, hex.EncodeToString(sum[:]), err
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
	if err := os.RemoveAll(stage); err != nil {
		return res, fmt.Errorf("clear staging %s: %w", stage, err)
	}
	if err := os.Mkdir(stage, 0o700); err != nil {
		return res, fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(stage)

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
				fromPlace, nres, err := fetchFile(ctx, p.Source, e, stage, dest, i, buf, opt, func(delta int64) {
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
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	res.Files, res.Bytes, res.Reused, res.Resumes = filesDone.Load(), bytesDone.Load(), reused.Load(), int(resumes.Load())
	return res, nil
}

// fetchFile brings one manifest entry into place: kept if the file there
// already has the right content, else fetched into the staging directory,
// verified while it streams, and renamed into place.
func fetchFile(ctx context.Context, dir string, e manifest.Entry, stage, dest string, i int, buf []byte, opt Options, progress func(int64)) (reused bool, resumes int, err error) {
	final := filepath.Join(dest, filepath.FromSlash(e.Path))
	if n, ok := sameContent(final, e.SHA256, buf); ok {
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
	var last int64
	r, err := fetch.Open(ctx, src, fetch.Options{Client: opt.Client, Header: opt.Creds.Lookup(src).Header(), Retries: opt.Retries, Log: opt.Log,
		Progress: func(done, _ int64) { progress(done - last); last = done }})
	if err != nil {
		return false, 0, explainHTTP(err)
	}
	defer r.Close()
	staged := filepath.Join(stage, strconv.Itoa(i))
	f, err := os.OpenFile(staged, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false, r.Resumes(), fmt.Errorf("staging: %w", err)
	}
	h := sha256.New()
	if r.Size() > readAheadMin {
		// A large file: receive and hash on one core, write on the other.
		ra := newReadAhead(io.TeeReader(r, h), 8, 1<<20)
		_, err = io.CopyBuffer(writerOnly{f}, ra, buf)
		ra.Close()
	} else {
		_, err = io.CopyBuffer(writerOnly{io.MultiWriter(f, h)}, r, buf)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil { // (after an error the read-ahead may still be hashing)
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
			err = fmt.Errorf("%s: %w: its sha256 is %s, the manifest says %s", src, fetch.ErrChecksum, got, e.SHA256)
		}
	}
	if err != nil {
		os.Remove(staged)
		progress(-last)
		return false, r.Resumes(), err
	}
	if err := place.ChownOne(staged, opt.Owner); err != nil {
		return false, r.Resumes(), err
	}
	if err := os.Chmod(staged, 0o644); err != nil {
		return false, r.Resumes(), err
	}
	if err := place.File(staged, dest, filepath.FromSlash(e.Path), &opt.Owner); err != nil {
		return false, r.Resumes(), err
	}
	return false, r.Resumes(), nil
}

// explainHTTP adds the likely cause to an HTTP refusal.
func explainHTTP(err error) error {
	if msg := err.Error(); strings.Contains(msg, ": 401 ") || strings.Contains(msg, ": 403 ") {
		return fmt.Errorf("%w (authentication: add an entry for this URL to the credentials file, see docs/handoff.md#credentials)", err)
	}
	return err
}

// writerOnly hides os.File's ReadFrom so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

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
