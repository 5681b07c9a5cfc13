package dataset

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/stratahq/strata/handoff/manifest"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/fetch"
	"github.com/stratahq/strata/restore/unpack"
)

// archiveSum is the archive's expected SHA-256: the profile's, or the line
// for the archive in a manifest (the profile's manifest, or SHA256SUMS next
// to the archive). An archive is never unpacked unverified.
func archiveSum(ctx context.Context, d profile.Dataset, p Plan, opt Options) (string, string, error) {
	if d.SHA256 != "" {
		return strings.ToLower(d.SHA256), "sha256 from the profile", nil
	}
	murl := p.Manifest
	if murl == "" {
		murl = dirURL(p.Source) + DefaultManifest
	}
	entries, _, err := readManifest(ctx, murl, opt)
	if err != nil {
		if errors.Is(err, ErrNoManifest) {
			return "", "", fmt.Errorf("archive %s has no sha256 in the profile and %w; set sha256 (sha256sum FILE prints it)", p.Source, err)
		}
		return "", "", err
	}
	base := path.Base(strings.SplitN(p.Source, "?", 2)[0])
	for _, e := range entries {
		if e.Path == base {
			return e.SHA256, "sha256 from " + murl, nil
		}
	}
	return "", "", fmt.Errorf("archive %s: %s has no line for %s; set sha256 in the profile", p.Source, murl, base)
}

func fetchArchive(ctx context.Context, d profile.Dataset, p Plan, sel pattern.Set, dest string, opt Options) (res Result, err error) {
	res = Result{Method: Archive, Source: p.Source}
	sum, how, err := archiveSum(ctx, d, p, opt)
	if err != nil {
		return res, err
	}
	res.Digest, res.Verified = sum, how
	// The staging directory holds the spool (partial/, kept from an
	// interrupted run) and the tree being unpacked (tree/, never kept).
	stage := filepath.Join(dest, place.StagingName)
	tree := filepath.Join(stage, "tree")
	if err := clearStage(stage, true); err != nil {
		return res, err
	}
	if err := os.MkdirAll(filepath.Join(stage, PartialHTTP), 0o700); err != nil {
		return res, fmt.Errorf("staging: %w", err)
	}
	if err := os.Mkdir(tree, 0o700); err != nil {
		return res, fmt.Errorf("staging: %w", err)
	}
	keep := false
	defer func() { clearStage(stage, keep) }()

	var bytesRead, entries, total atomic.Int64
	total.Store(-1)
	report := func() {
		opt.Progress(Progress{Bytes: bytesRead.Load(), TotalBytes: total.Load(), Files: entries.Load(), TotalFiles: -1})
	}
	fopt := fetch.Options{Client: opt.Client, Header: opt.Creds.Lookup(p.Source).Header(), Retries: opt.Retries, Log: opt.Log,
		SHA256: sum, Progress: func(done, t int64) { bytesRead.Store(done); total.Store(t) }}
	raw, closeRaw, err := openArchive(ctx, p.Source, filepath.Join(stage, PartialHTTP, SpoolName), fopt, opt.Log)
	if err != nil {
		return res, fmt.Errorf("archive %s: %w", p.Source, explainHTTP(err))
	}
	// Receiving and spooling run ahead of hashing and unpacking, on another
	// core (hashing there balances the two: a spool write costs about what
	// unpacking a large file does).
	ra := fetch.NewReadAhead(raw, 8, 1<<20)
	h := sha256.New()
	src := io.TeeReader(ra, h)
	verified := false
	defer func() {
		ra.Close()
		res.Resumes, keep = closeRaw(verified)
		keep = keep || ctx.Err() != nil
	}()
	var in io.Reader = src
	var filterErr chan error
	if !sel.Empty() {
		pr, pw := io.Pipe()
		filterErr = make(chan error, 1)
		go func() {
			err := filterTar(src, pw, sel)
			pw.CloseWithError(err)
			filterErr <- err
		}()
		in = pr
	}
	st, err := unpack.Archive(ctx, in, tree, unpack.Options{Owner: &unpack.Owner{UID: opt.Owner.UID, GID: opt.Owner.GID}, Progress: func(n int64, _ string) {
		entries.Store(n)
		report()
	}})
	if filterErr != nil {
		stopped := errors.New("extraction stopped")
		if err == nil {
			_, err = io.Copy(io.Discard, in) // let the filter finish
		} else {
			in.(*io.PipeReader).CloseWithError(stopped)
		}
		if ferr := <-filterErr; ferr != nil && !errors.Is(ferr, stopped) {
			err = ferr // the filter's own error says more
		}
	}
	if err == nil {
		// The checksum is checked at the end of the compressed stream, which
		// the tar reader may not have reached (it stops at the end-of-archive
		// blocks).
		_, err = io.Copy(io.Discard, src)
	}
	if err != nil {
		return res, fmt.Errorf("archive %s: %w", p.Source, explainHTTP(err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return res, fmt.Errorf("archive %s: %w: its sha256 is %s, expected %s (%s); nothing was moved into place", p.Source, fetch.ErrChecksum, got, sum, how)
	}
	verified = true
	report()
	// (unpack gave every entry its owner as it made it, and counted)
	if err := place.Merge(tree, dest, place.MergeOptions{Owner: &opt.Owner}); err != nil {
		return res, err
	}
	res.Files, res.Bytes = st.Files, st.Size
	if res.Files == 0 && st.Entries == 0 {
		return res, fmt.Errorf("archive %s is empty", p.Source)
	}
	return res, nil
}

// openArchive returns the archive's bytes and the function that ends
// their reading, given whether they verified: it says how often the
// transfer resumed, and whether the spool is worth keeping for the next run.
// A file URL is read where it is (it is its own spool), and so is a spool
// an earlier run completed. Over the network, the archive is spooled (see
// SpoolName).
func openArchive(ctx context.Context, source, spoolPath string, opt fetch.Options, logf func(string, ...any)) (io.Reader, func(verified bool) (int, bool), error) {
	local := source
	if st, err := os.Stat(spoolPath); err == nil && st.Mode().IsRegular() {
		local = "file://" + spoolPath
		logf("dataset: %s: unpacking the copy an earlier run downloaded whole (%s)", source, spoolPath)
	}
	if strings.HasPrefix(local, "file:") {
		opt.SHA256 = "" // (verified by the caller, over all the bytes it reads)
		r, err := fetch.Open(ctx, local, opt)
		if err != nil {
			return nil, nil, err
		}
		return r, func(bool) (int, bool) { r.Close(); return 0, false }, nil
	}
	s, err := openSpool(ctx, source, spoolPath, opt, logf)
	if err != nil {
		return nil, nil, err
	}
	return s, func(verified bool) (int, bool) {
		s.Close(verified)
		return s.r.Resumes(), s.keep
	}, nil
}

// filterTar copies the entries of a (compressed) tar stream that the
// selection takes into a plain tar stream. Names that would leave the
// dataset are refused whether selected or not: a hostile archive is an
// error, never silently trimmed.
func filterTar(r io.Reader, w io.Writer, sel pattern.Set) error {
	plain, _, err := unpack.Decompress(r)
	if err != nil {
		return err
	}
	defer plain.Close()
	tr := tar.NewReader(plain)
	tw := tar.NewWriter(w)
	kept := map[string]bool{}
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name, err := manifest.Clean(strings.TrimSuffix(h.Name, "/"))
		if err != nil {
			if h.Name == "." || h.Name == "./" {
				continue // the top directory itself
			}
			return fmt.Errorf("archive entry %q: %w", h.Name, unpack.ErrEscape)
		}
		if !sel.Selected(name) {
			continue
		}
		if h.Typeflag == tar.TypeLink {
			target, err := manifest.Clean(h.Linkname)
			if err != nil {
				return fmt.Errorf("archive entry %q: hard link to %q: %w", h.Name, h.Linkname, unpack.ErrEscape)
			}
			if !kept[target] {
				return fmt.Errorf("archive entry %q is a hard link to %q, which the selection leaves out: include both", h.Name, h.Linkname)
			}
		}
		kept[name] = true
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("the selection (include %q, exclude %q) takes nothing from the archive", sel.Include, sel.Exclude)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	// Read the compressed stream to its end so its checksum is checked,
	// once the decompressor's goroutines stopped reading it.
	plain.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}
