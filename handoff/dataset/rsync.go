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
	"path"
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
	"golang.org/x/sys/unix"
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
//
// staged is a transfer into the staging tree (see fetchRsync): rsync writes
// files in place there (no temporary file and rename per file; a cut
// transfer's partial file is continued where it is) and makes the tree the
// selection exactly, whatever an earlier run left in it. Otherwise rsync
// writes into the destination itself, each file under a temporary name,
// and keeps partial files in .strata-partial directories.
func RsyncArgs(src, dest string, sel pattern.Set, o place.Owner, ssh []string, manifest, staged bool) []string {
	args := []string{"-rlpt", "--numeric-ids", fmt.Sprintf("--chown=%d:%d", o.UID, o.GID)}
	if staged {
		args = append(args, "--inplace", "--delete", "--delete-excluded")
	} else {
		args = append(args, "--partial", "--partial-dir="+PartialDir)
	}
	args = append(args, "--timeout=120",
		"--info=progress2", "--no-inc-recursive", "--stats", "--out-format="+doneMarker+"%l %n",
		"--exclude=/"+place.StagingName)
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
	// Into a destination that holds nothing yet (a restore's usual case),
	// rsync writes into the staging directory's tree/, which moves into
	// place once verified: no file shows under its final name before the
	// whole dataset is, and rsync writes each file in place, which saves
	// it a temporary file and a rename per file. A failed run keeps tree/,
	// and the next continues it. A destination with files in it is updated
	// where it is, so rsync's quick check keeps what is already right.
	stage := filepath.Join(dest, place.StagingName)
	staged, err := holdsNothing(dest)
	if err != nil {
		return res, err
	}
	target, tree := dest, filepath.Join(stage, "tree")
	treeWasEmpty := true
	if staged {
		target = tree
		if err := clearStageBut(stage, "tree"); err != nil {
			return res, err
		}
		_, serr := os.Stat(tree) // (kept only with something in it)
		treeWasEmpty = errors.Is(serr, os.ErrNotExist)
		if err := os.MkdirAll(tree, 0o700); err != nil {
			return res, fmt.Errorf("staging: %w", err)
		}
	} else {
		if err := os.RemoveAll(stage); err != nil {
			return res, fmt.Errorf("clear staging %s: %w", stage, err)
		}
		if err := os.Mkdir(stage, 0o700); err != nil {
			return res, fmt.Errorf("staging: %w", err)
		}
	}
	keepStage := false
	defer func() {
		if !keepStage {
			os.RemoveAll(stage)
		}
	}()

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
	topManifest := filepath.Join(target, DefaultManifest)
	aside := filepath.Join(stage, DefaultManifest+".before")
	hadOwn := false
	if p.Manifest == "" && !staged {
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

	args := RsyncArgs(src, target, sel, opt.Owner, ssh, p.Manifest == "", staged)
	var stats rsyncStats
	t, err := openTree(target)
	if err != nil {
		return res, err
	}
	defer t.close()
	early := newEarlyHasher(t)
	early.inPlace = staged
	early.followNew = !staged || treeWasEmpty
	defer early.stop()
	// A failed transfer into the staging tree is kept for the next run
	// (cleared below once the dataset is in place).
	keepStage = staged
	for attempt := 0; ; attempt++ {
		pw := &progressWriter{report: opt.Progress, base: stats.bytes, done: early.add}
		out, err := newPacedOutput(pw)
		if err != nil {
			return res, err
		}
		_, err = opt.Runner.Run(ctx, run.Cmd{Name: "rsync", Args: args, Stdin: strings.NewReader(password), Stdout: out.w})
		out.close()
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
		// Written in place, a partial file is continued where it is:
		// bytes already read could be written again, so no file is
		// followed from here on.
		early.followNew = early.followNew && !staged
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
		n, size, fromEarly, err := t.verify(ctx, entries, opt.FileJobs, early.stop())
		if err != nil {
			return res, err
		}
		opt.Log("dataset: %s: %d of %d files hashed as they arrived, the rest after the transfer", src, fromEarly, n)
		res.Files, res.Bytes = n, size
	}
	if staged {
		if err := moveTree(tree, stage, dest); err != nil {
			return res, err
		}
		keepStage = false
	}
	return res, nil
}

// holdsNothing says whether dir has nothing in it but strata's staging
// directory and a new filesystem's lost+found.
func holdsNothing(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		if n := e.Name(); n != place.StagingName && n != "lost+found" {
			return false, nil
		}
	}
	return true, nil
}

// moveTree moves the verified staging tree's content into dest (which holds
// nothing else: a rename each at the top), removes the staging directory,
// and gives dest the mode, owner and times rsync gave the tree from the
// source's top directory.
func moveTree(tree, stage, dest string) error {
	st, err := os.Lstat(tree)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if err := place.Merge(tree, dest, place.MergeOptions{}); err != nil {
		return err
	}
	if err := os.RemoveAll(stage); err != nil {
		return fmt.Errorf("clear staging %s: %w", stage, err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Lchown(dest, int(sys.Uid), int(sys.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dest, err)
	}
	if err := os.Chmod(dest, st.Mode()&os.ModePerm); err != nil {
		return fmt.Errorf("chmod %s: %w", dest, err)
	}
	if err := os.Chtimes(dest, st.ModTime(), st.ModTime()); err != nil {
		return fmt.Errorf("times of %s: %w", dest, err)
	}
	return nil
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

// doneMarker starts the line rsync prints for each item it transfers
// (--out-format), so files are hashed while the transfer goes on. Without
// transfer statistics in the format (%b, %c), rsync prints the line as it
// starts the item; the receiver takes files one at a time, so a file's line
// also means the file before it is complete and in place (renamed there, or
// written there with --inplace).
const doneMarker = "strata-done:"

// followMin is the size from which a file is hashed as rsync writes it
// (following the file it writes) rather than once it is in place.
const followMin = 8 << 20

// earlyHasher hashes the files rsync transfers while the transfer goes on,
// on another core, so that verifying the dataset afterwards is mostly a
// stat per file instead of a second pass over the data: a small file once
// the next line shows it is in place, a large one as it is written, by
// reading rsync's temporary file (.NAME.XXXXXX next to it, renamed into
// place when complete) as it grows. A hash only counts if, at the end, the
// file is the inode that was hashed, with the same ctime and size (rsync
// replaces a file by renaming a new one over it); otherwise it is hashed
// again then. So a guess that is wrong costs time, never correctness.
type earlyHasher struct {
	tree tree
	// inPlace: rsync writes each file under its own name (--inplace), not
	// a temporary one. followNew: a large file may be followed as it is
	// written, which is only safe for a file rsync writes once, front to
	// back: a new one (a partial file continued in place may have bytes
	// written again after they were read).
	inPlace, followNew bool
	queue              chan []string
	batch              []string  // files in place, not yet handed to the hashing goroutine
	pending            string    // the last small file printed, not yet known to be in place
	follow             chan bool // closed when the followed file is complete
	mu                 sync.Mutex
	sums               map[string]earlySum
	wg                 sync.WaitGroup
	once               sync.Once
}

type earlySum struct {
	hashed
	ino, ctimeNs int64
}

func newEarlyHasher(t tree) *earlyHasher {
	e := &earlyHasher{tree: t, queue: make(chan []string, 1<<10), sums: map[string]earlySum{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		buf := make([]byte, 1<<20)
		for batch := range e.queue {
			for _, rel := range batch {
				// (no second look: the identity is checked at the end)
				h, id, err := e.tree.hash(rel, buf, false)
				if err == nil {
					e.record(rel, h, id)
				}
			}
		}
	}()
	return e
}

// earlyBatch is how many small files are handed to the hashing goroutine at
// once: one wake-up for many files, not one each.
const earlyBatch = 64

// hand passes the batch to the hashing goroutine.
func (e *earlyHasher) hand() {
	if len(e.batch) == 0 {
		return
	}
	select {
	case e.queue <- e.batch:
	default: // the hasher is behind: these are hashed at the end
	}
	e.batch = nil
}

func (e *earlyHasher) record(rel string, h hashed, id identity) {
	e.mu.Lock()
	e.sums[rel] = earlySum{h, id.ino, id.ctimeNs}
	e.mu.Unlock()
}

// add hears each line rsync prints ("SIZE NAME"): the file before it is now
// in place.
func (e *earlyHasher) add(line string) {
	size, name := int64(-1), line
	if n, rest, ok := strings.Cut(line, " "); ok {
		if v, err := strconv.ParseInt(strings.ReplaceAll(n, ",", ""), 10, 64); err == nil {
			size, name = v, rest
		}
	}
	if e.follow != nil {
		close(e.follow)
		e.follow = nil
	}
	if e.pending != "" {
		e.batch = append(e.batch, e.pending)
		if len(e.batch) >= earlyBatch {
			e.hand()
		}
	}
	e.pending = ""
	switch {
	case strings.HasSuffix(name, "/"):
	case size >= followMin && e.followNew:
		e.hand() // (the files before it, while rsync writes this one)
		e.follow = make(chan bool)
		e.wg.Add(1)
		go func(done chan bool) {
			defer e.wg.Done()
			e.followFile(name, size, done)
		}(e.follow)
	default:
		e.pending = name
	}
}

// followFile hashes rel's temporary file as rsync writes it, until done
// (rsync has moved on: the file is complete and in place), then reads what
// is left and records the sum with the inode's final identity.
func (e *earlyHasher) followFile(rel string, size int64, done <-chan bool) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	// Only a temporary file, which rsync writes once, front to back. (A
	// partial file it continues is updated in place in the partial
	// directory, where bytes already read could be written again: such a
	// file is hashed once in place.)
	var f *os.File
	for f == nil {
		if e.inPlace {
			if fd, err := e.tree.open(rel, false); err == nil {
				f = os.NewFile(uintptr(fd), rel)
				break
			}
		} else if f = e.tree.openTemp(rel); f != nil {
			break
		}
		select {
		case <-done: // never saw it being written: hashed at the end
			return
		case <-tick.C:
		}
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	complete := false
	for {
		k, err := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if complete {
			break
		}
		select {
		case <-done:
			complete = true // read to the end once more
		case <-tick.C:
		}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Size != n || n != size {
		return
	}
	e.record(rel, hashed{hex.EncodeToString(h.Sum(nil)), n}, identity{int64(st.Ino), st.Ctim.Nano(), st.Size})
}

// openTemp opens rsync's temporary file for rel, if there is one.
func (t tree) openTemp(rel string) *os.File {
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	dfd, err := t.open(dir, true)
	if err != nil {
		return nil
	}
	d := os.NewFile(uintptr(dfd), dir)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "."+base+".") || len(n) != len(base)+8 {
			continue
		}
		fd, err := unix.Openat(dfd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			return os.NewFile(uintptr(fd), n)
		}
		unix.Close(fd)
	}
	return nil
}

// stop is called once rsync has exited: it lets a followed file finish,
// waits for the hashing, and returns the sums (the last small file printed
// is in place too: the caller verifies it).
func (e *earlyHasher) stop() map[string]earlySum {
	e.once.Do(func() {
		if e.follow != nil {
			close(e.follow)
			e.follow = nil
		}
		e.hand()
		close(e.queue)
	})
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sums
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
	// The last progress line, and when one was last parsed: rsync prints
	// one per file, parsed at most every progressEvery.
	last   string
	parsed time.Time
}

const progressEvery = 50 * time.Millisecond

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

func (w *progressWriter) flush() {
	w.parse(string(w.line))
	w.line = nil
	if w.last != "" {
		w.progress(w.last)
	}
}

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
	if strings.Contains(line, "%") {
		now := time.Now()
		if now.Sub(w.parsed) < progressEvery {
			w.last = line
			return
		}
		w.parsed, w.last = now, ""
		if w.progress(line) {
			return
		}
	}
	if m := filesRE.FindStringSubmatch(line); m != nil {
		w.stats.files = num(m[2])
	}
	if m := sizeRE.FindStringSubmatch(line); m != nil {
		w.stats.size = num(m[1])
	}
}

// progress parses a progress line and reports it; false if it is not one.
func (w *progressWriter) progress(line string) bool {
	num := func(s string) int64 { n, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64); return n }
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
		return true
	}
	return false
}
