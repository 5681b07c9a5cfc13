package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/manifest"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/internal/run"
)

// PartialDir holds rsync's partly transferred files, per directory, so a
// re-run continues them instead of starting over.
const PartialDir = ".strata-partial"

// rsync exit codes worth a retry: socket I/O (10), protocol stream (12),
// timeout (30), daemon connection timeout (35).
var retryable = map[int]bool{10: true, 12: true, 30: true, 35: true}

// RsyncSource is how rsync names the source, and the ssh command for an ssh
// URL (nil for the daemon).
func RsyncSource(raw string, m creds.Match) (string, []string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, err
	}
	switch u.Scheme {
	case "rsync":
		if u.User == nil && m.Basic != nil {
			u.User = url.User(m.Basic.User)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		return u.String(), nil, nil
	case "ssh":
		host := u.Hostname()
		if u.User != nil {
			host = u.User.Username() + "@" + host
		}
		p := u.Path
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		return host + ":" + p, m.SSHCommand(u.Port()), nil
	}
	return "", nil, fmt.Errorf("%s is not an rsync or ssh URL", raw)
}

// RsyncArgs is the transfer's argv (pure, for golden tests). With
// manifest, the source's top-level SHA256SUMS comes along whatever the
// selection. A daemon password goes on stdin (--password-file=-), never here.
func RsyncArgs(src, dest string, sel pattern.Set, o place.Owner, ssh []string, manifest bool) []string {
	args := []string{"-rlpt", "--numeric-ids", fmt.Sprintf("--chown=%d:%d", o.UID, o.GID),
		"--partial", "--partial-dir=" + PartialDir, "--timeout=120",
		"--info=progress2", "--no-inc-recursive", "--stats", "--out-format=" + doneMarker + "%n",
		"--exclude=/" + place.StagingName}
	if manifest && !sel.Empty() {
		args = append(args, "--include=/"+DefaultManifest)
	}
	args = append(args, sel.RsyncFilters()...)
	if ssh != nil {
		args = append(args, "-e", run.Quote(ssh))
	} else {
		// Without a password rsync would ask on the terminal; with an
		// empty stdin it fails instead when the daemon wants one.
		args = append(args, "--password-file=-")
	}
	return append(args, "--", src, strings.TrimSuffix(dest, "/")+"/")
}

func fetchRsync(ctx context.Context, p Plan, sel pattern.Set, dest string, opt Options) (Result, error) {
	res := Result{Method: Rsync, Source: p.Source, Verified: "rsync transfer checksums"}
	m := opt.Creds.Lookup(p.Source)
	src, ssh, err := RsyncSource(p.Source, m)
	if err != nil {
		return res, err
	}
	password := ""
	if m.Basic != nil && ssh == nil {
		password = m.Basic.Password + "\n"
	}
	stage := filepath.Join(dest, place.StagingName)
	if err := os.RemoveAll(stage); err != nil {
		return res, fmt.Errorf("clear staging %s: %w", stage, err)
	}
	if err := os.Mkdir(stage, 0o700); err != nil {
		return res, fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(stage)

	// The manifest: the profile's comes over http while the transfer runs;
	// otherwise SHA256SUMS at the top of the source comes with the transfer
	// (one rsync connection, not two: each costs a good part of a second in
	// handshakes). A SHA256SUMS already in the destination is moved aside
	// first, so the one read afterwards is the source's, and put back when
	// the source has none.
	type manifestResult struct {
		entries  []manifest.Entry
		digest   string
		verified string
		err      error
	}
	mch, mdone := make(chan manifestResult, 1), make(chan struct{})
	mctx, mcancel := context.WithCancel(ctx)
	go func() {
		defer close(mdone)
		var m manifestResult
		if p.Manifest != "" {
			m.entries, m.digest, m.err = readManifest(mctx, p.Manifest, opt)
			m.verified = "sha256 manifest " + p.Manifest
		}
		mch <- m
	}()
	// On any return: stop the manifest fetch, wait for it, then (the
	// earlier defer) remove the staging directory.
	defer func() { <-mdone }()
	defer mcancel()
	topManifest := filepath.Join(dest, DefaultManifest)
	aside := filepath.Join(stage, DefaultManifest+".before")
	hadOwn := false
	if p.Manifest == "" {
		if err := os.Rename(topManifest, aside); err == nil {
			hadOwn = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("move %s aside: %w", topManifest, err)
		}
	}
	putBack := func() {
		if hadOwn {
			os.Rename(aside, topManifest)
			hadOwn = false
		}
	}
	defer putBack()

	args := RsyncArgs(src, dest, sel, opt.Owner, ssh, p.Manifest == "")
	var stats rsyncStats
	early := newEarlyHasher(dest)
	defer early.stop()
	for attempt := 0; ; attempt++ {
		pw := &progressWriter{report: opt.Progress, base: stats.bytes, done: early.add}
		_, err := opt.Runner.Run(ctx, run.Cmd{Name: "rsync", Args: args, Stdin: strings.NewReader(password), Stdout: pw})
		pw.flush()
		stats = pw.stats
		if err == nil {
			break
		}
		var ee *run.ExitError
		if !errors.As(err, &ee) || !retryable[ee.Code] || attempt >= opt.Retries || ctx.Err() != nil {
			return res, fmt.Errorf("rsync %s: %w", src, explainRsync(err))
		}
		res.Resumes++
		opt.Log("dataset: rsync %s broke (exit %d); resuming with the partial files (%d/%d)", src, ee.Code, attempt+1, opt.Retries)
		select {
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Files, res.Bytes = stats.files, stats.size
	mr := <-mch
	if mr.err != nil {
		return res, mr.err
	}
	if p.Manifest == "" {
		data, err := os.ReadFile(topManifest)
		switch {
		case err == nil:
			hadOwn = false // the source's replaces the destination's
			sum := sha256.Sum256(data)
			mr.digest, mr.verified = hex.EncodeToString(sum[:]), "sha256 manifest "+src+DefaultManifest
			if mr.entries, err = manifest.Parse(src+DefaultManifest, bytes.NewReader(data)); err != nil {
				return res, err
			}
			if !sel.Selected(DefaultManifest) {
				// Not part of the selection: it only came to verify it.
				os.Remove(topManifest)
				res.Files--
				res.Bytes -= int64(len(data))
			}
		case errors.Is(err, os.ErrNotExist):
			opt.Log("dataset: %s has no %s; rsync's own checksums verify the transfer", src, DefaultManifest)
		default:
			return res, fmt.Errorf("manifest: %w", err)
		}
	}
	entries := mr.entries
	if entries != nil {
		res.Digest, res.Verified = mr.digest, mr.verified
		var err error
		if entries, err = selectEntries(entries, sel, "the manifest"); err != nil {
			return res, err
		}
		n, size, err := verifyTree(ctx, dest, entries, opt.FileJobs, early.stop())
		if err != nil {
			return res, err
		}
		res.Files, res.Bytes = n, size
	}
	return res, nil
}

func explainRsync(err error) error {
	var ee *run.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	low := strings.ToLower(ee.Stderr)
	switch {
	case strings.Contains(low, "host key verification failed"):
		return fmt.Errorf("%w (host key verification failed: the server's key is not the one in the credentials' known-hosts file)", err)
	case strings.Contains(low, "auth failed"), strings.Contains(low, "failed to read a password"), strings.Contains(low, "permission denied (publickey"):
		return fmt.Errorf("%w (authentication: add an entry for this URL to the credentials file, see docs/handoff.md#credentials)", err)
	case strings.Contains(low, "unknown module"):
		return fmt.Errorf("%w (no such rsync module on the server)", err)
	case strings.Contains(low, "no such file or directory"):
		return fmt.Errorf("%w (no such path on the server)", err)
	}
	return err
}

// doneMarker starts the line rsync prints for each item it transferred
// (--out-format), so files are hashed while the transfer goes on.
const doneMarker = "strata-done:"

// earlyHasher hashes files rsync has finished while it transfers the next
// ones, on another core, so that verifying the dataset afterwards is mostly
// a stat per file instead of a second pass over the data. rsync prints a
// file's line just before it renames the file into place; its next line
// means the rename happened. A hash only counts if the file is the same
// inode with the same ctime and size at the end (rsync replaces a file by
// renaming a new one over it): otherwise it is hashed again then.
type earlyHasher struct {
	dest    string
	queue   chan string
	pending string // the last name printed, not yet known to be in place
	mu      sync.Mutex
	sums    map[string]earlySum
	done    chan struct{}
	once    sync.Once
}

type earlySum struct {
	hashed
	ino, ctimeNs int64
}

func newEarlyHasher(dest string) *earlyHasher {
	e := &earlyHasher{dest: dest, queue: make(chan string, 1<<16), sums: map[string]earlySum{}, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 1<<20)
		for rel := range e.queue {
			p := filepath.Join(e.dest, filepath.FromSlash(rel))
			h, id, err := hashFile(p, buf)
			if err != nil {
				continue // hashed again at the end
			}
			e.mu.Lock()
			e.sums[rel] = earlySum{h, id.ino, id.ctimeNs}
			e.mu.Unlock()
		}
	}()
	return e
}

// add hears each name rsync prints; the one before it is now in place.
func (e *earlyHasher) add(name string) {
	if e.pending != "" {
		select {
		case e.queue <- e.pending:
		default: // the hasher is behind: this one is hashed at the end
		}
	}
	e.pending = ""
	if !strings.HasSuffix(name, "/") {
		e.pending = name
	}
}

// stop waits for the hasher and returns what it hashed (after a successful
// transfer the last file printed is in place too: the caller verifies it).
func (e *earlyHasher) stop() map[string]earlySum {
	e.once.Do(func() { close(e.queue) })
	<-e.done
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sums
}

type identity struct{ ino, ctimeNs, size int64 }

func statIdentity(p string) (identity, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return identity{}, err
	}
	return identity{int64(st.Ino), st.Ctim.Nano(), st.Size}, nil
}

// verifyTree checks the files a manifest lists against their SHA-256, using
// the sums hashed during the transfer where the file is still the one that
// was hashed. A file that does not match is removed, so the next run
// fetches it again (rsync's quick check would otherwise keep it).
func verifyTree(ctx context.Context, dest string, entries []manifest.Entry, jobs int, early map[string]earlySum) (int64, int64, error) {
	var mu sync.Mutex
	var errs []error
	var size int64
	work := make(chan manifest.Entry)
	var wg sync.WaitGroup
	for w := 0; w < max(1, min(jobs, 4)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for e := range work {
				p := filepath.Join(dest, filepath.FromSlash(e.Path))
				var n hashed
				var err error
				if es, ok := early[e.Path]; ok {
					if id, serr := statIdentity(p); serr == nil && id == (identity{es.ino, es.ctimeNs, es.size}) {
						n = es.hashed
					}
				}
				if n.sum == "" {
					n, _, err = hashFile(p, buf)
				}
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("file %s (manifest line %d): %w", e.Path, e.Line, err))
				case n.sum != e.SHA256:
					os.Remove(p)
					errs = append(errs, fmt.Errorf("file %s (manifest line %d): checksum mismatch: got sha256 %s, the manifest says %s (removed; a re-run fetches it again)", e.Path, e.Line, n.sum, e.SHA256))
				default:
					size += n.size
				}
				mu.Unlock()
			}
		}()
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		work <- e
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = append(errs[:10], fmt.Errorf("... and %d more", len(errs)-10))
		}
		return 0, 0, errors.Join(errs...)
	}
	return int64(len(entries)), size, nil
}

type hashed struct {
	sum  string
	size int64
}

// hashFile hashes the regular file at p (never through a symlink) with
// buf, and says which inode it hashed, as it was before and after.
func hashFile(p string, buf []byte) (hashed, identity, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) {
		return hashed{}, identity{}, errors.New("not a regular file (a symlink)")
	}
	if err != nil {
		return hashed{}, identity{}, fmt.Errorf("missing after the transfer: %w", err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return hashed{}, identity{}, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return hashed{}, identity{}, fmt.Errorf("not a regular file (mode %o)", st.Mode&syscall.S_IFMT)
	}
	before := identity{int64(st.Ino), st.Ctim.Nano(), st.Size}
	h := sha256.New()
	var n int64
	for {
		k, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return hashed{}, identity{}, fmt.Errorf("read: %w", err)
		}
		if k == 0 {
			break
		}
		h.Write(buf[:k])
		n += int64(k)
	}
	if err := syscall.Fstat(fd, &st); err != nil {
		return hashed{}, identity{}, fmt.Errorf("stat: %w", err)
	}
	if after := (identity{int64(st.Ino), st.Ctim.Nano(), st.Size}); after != before || n != st.Size {
		return hashed{}, identity{}, errors.New("changed while it was read")
	}
	return hashed{hex.EncodeToString(h.Sum(nil)), n}, before, nil
}

type rsyncStats struct {
	bytes       int64 // transferred so far, over all attempts
	files, size int64 // from --stats
}

// progressWriter turns rsync's --info=progress2 and --stats output into
// Progress reports.
type progressWriter struct {
	report func(Progress)
	done   func(name string) // hears each transferred item's name
	base   int64
	line   []byte
	stats  rsyncStats
}

var (
	progressRE = regexp.MustCompile(`^\s*([\d,]+)\s+(\d+)%.*?(?:to-chk=(\d+)/(\d+))?\)?\s*$`)
	filesRE    = regexp.MustCompile(`^Number of files: ([\d,]+) \(reg: ([\d,]+)`)
	sizeRE     = regexp.MustCompile(`^Total file size: ([\d,]+) bytes`)
)

func (w *progressWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\r' || c == '\n' {
			w.parse(string(w.line))
			w.line = w.line[:0]
			continue
		}
		w.line = append(w.line, c)
	}
	return len(p), nil
}

func (w *progressWriter) flush() { w.parse(string(w.line)); w.line = nil }

func (w *progressWriter) parse(line string) {
	if name, ok := strings.CutPrefix(line, doneMarker); ok {
		if w.done != nil {
			w.done(name)
		}
		return
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64); return n }
	if !strings.Contains(line, "%") && !strings.HasPrefix(line, "Number of files") && !strings.HasPrefix(line, "Total file size") {
		return // (a line per file: spare the regular expressions)
	}
	if m := progressRE.FindStringSubmatch(line); m != nil {
		b := num(m[1])
		w.stats.bytes = w.base + b
		pr := Progress{Bytes: w.stats.bytes, TotalBytes: -1, Files: -1, TotalFiles: -1}
		if pct := num(m[2]); pct > 0 && pct < 100 {
			pr.TotalBytes = w.base + b*100/pct
		} else if pct == 100 {
			pr.TotalBytes = pr.Bytes
		}
		if m[4] != "" {
			pr.TotalFiles = num(m[4])
			pr.Files = pr.TotalFiles - num(m[3])
		}
		if w.report != nil {
			w.report(pr)
		}
		return
	}
	if m := filesRE.FindStringSubmatch(line); m != nil {
		w.stats.files = num(m[2])
	}
	if m := sizeRE.FindStringSubmatch(line); m != nil {
		w.stats.size = num(m[1])
	}
}
