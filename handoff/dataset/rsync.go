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
	args = append(args, "--stats", "--out-format="+doneMarker+"%i %l %n",
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
	if p.Manifest == "" {
		early.manifest = DefaultManifest
		early.manifestSrc = src + DefaultManifest
	}
	early.inPlace = staged
	early.followNew = !staged || treeWasEmpty
	defer early.stop()
	// A failed transfer into the staging tree is kept for the next run
	// (cleared below once the dataset is in place).
	keepStage = staged
	// How much of the file rsync is writing is in place: the file itself
	// in the staging tree, its temporary file otherwise.
	live := func(rel string) int64 {
		if staged {
			id, err := t.stat(rel)
			if err != nil {
				return 0
			}
			return id.size
		}
		return t.tempSize(rel)
	}
	for attempt := 0; ; attempt++ {
		// (The dataset's count is the manifest's files: the manifest that
		// comes with the transfer is not counted, whether it stays or not.)
		pw := &progressWriter{report: opt.Progress, done: early.add, live: live, uncounted: early.manifest,
			stats: rsyncStats{bytes: stats.bytes, done: stats.done, shown: stats.shown}}
		out, err := newPacedOutput(pw)
		if err != nil {
			return res, err
		}
		stopTicks := pw.tickEvery(liveEvery)
		var watch *stallWatch
		started := func(pid int) { watch = watchStall(pid, opt.StallLimit, opt.Log) }
		_, err = opt.Runner.Run(ctx, run.Cmd{Name: "rsync", Args: args, Stdin: strings.NewReader(password), Stdout: out.w, Started: started})
		stalled := watch.end()
		out.close()
		stopTicks()
		pw.flush(err == nil)
		stats = pw.stats
		if err == nil {
			break
		}
		var ee *run.ExitError
		why := ""
		switch {
		case stalled && ctx.Err() == nil:
			err = fmt.Errorf("no byte moved for %s: %w", opt.StallLimit, errStalled)
			why = err.Error()
		case errors.As(err, &ee) && retryable[ee.Code]:
			why = fmt.Sprintf("exit %d", ee.Code)
		default:
			return res, fmt.Errorf("rsync %s: %w", src, explainRsync(err))
		}
		if attempt >= opt.Retries || ctx.Err() != nil {
			return res, fmt.Errorf("rsync %s: %w", src, explainRsync(err))
		}
		res.Resumes++
		// Written in place, a partial file is continued where it is:
		// bytes already read could be written again, so no file is
		// followed from here on.
		early.followNew = early.followNew && !staged
		opt.Log("dataset: rsync %s broke (%s); resuming with the partial files (%d/%d)", src, why, attempt+1, opt.Retries)
		select {
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Files, res.Bytes = stats.files, stats.size
	sums, read := early.stop()
	mr := <-mch
	if mr.err != nil {
		return res, mr.err
	}
	if p.Manifest == "" {
		// Read during the transfer if it is still that file, else now.
		if id, err := t.stat(DefaultManifest); read == nil || err != nil || id != read.id {
			read, err = t.readManifest(DefaultManifest, early.manifestSrc)
			switch {
			case errors.Is(err, unix.ENOENT):
				opt.Log("dataset: %s has no %s; rsync's own checksums verify the transfer", src, DefaultManifest)
			case err != nil:
				return res, fmt.Errorf("manifest %s: %w", topManifest, err)
			}
		}
		if read != nil {
			hadOwn = false // the source's replaces the destination's
			mr.entries, mr.digest, mr.verified = read.entries, read.digest, "sha256 manifest "+src+DefaultManifest
			if !sel.Selected(DefaultManifest) {
				// Not part of the selection: it only came to verify it.
				os.Remove(topManifest)
				res.Files--
				res.Bytes -= read.size
			}
		}
	}
	entries := mr.entries
	if entries != nil {
		res.Digest, res.Verified = mr.digest, mr.verified
		var err error
		if entries, err = selectEntries(entries, sel, "the manifest"); err != nil {
			return res, err
		}
		// An early sum is taken on rsync's word (see earlyHasher) after one
		// clean run with the source's own manifest: a server that could
		// trick the receiver could as well send a matching manifest. Each
		// is confirmed by the file's identity after a resume (a run cut at
		// any point) and against the profile's manifest, which vouches for
		// the bytes independently of the rsync server.
		confirm := res.Resumes > 0 || p.Manifest != ""
		n, size, fromEarly, err := t.verify(ctx, entries, opt.FileJobs, sums, confirm)
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

// doneMarker starts the line rsync prints for each item it changes
// (--out-format "%i %l %n": what changed, the size, the name), so files are
// hashed while the transfer goes on and progress is told in bytes and files.
// Without transfer statistics in the format (%b, %c), rsync prints a
// received file's line (">f...") as it starts the file; the receiver takes
// files one at a time, so such a line also means the file received before
// it is complete and in place (renamed there, or written there with
// --inplace). Directories, symlinks and deletions are the generator's lines,
// which run ahead of the receiver: they say nothing of the files.
const doneMarker = "strata-done:"

// rsyncItem is one of those lines.
type rsyncItem struct {
	received bool // a regular file whose data rsync is receiving
	size     int64
	name     string
}

// parseItem reads "%i %l %n" (the itemize string is "*deleting" for a
// deletion, padded to its width).
func parseItem(line string) (rsyncItem, bool) {
	flags, rest, ok := strings.Cut(line, " ")
	if !ok {
		return rsyncItem{}, false
	}
	n, name, ok := strings.Cut(strings.TrimLeft(rest, " "), " ")
	if !ok {
		return rsyncItem{}, false
	}
	size, err := strconv.ParseInt(strings.ReplaceAll(n, ",", ""), 10, 64)
	if err != nil {
		return rsyncItem{}, false
	}
	return rsyncItem{received: strings.HasPrefix(flags, ">f"), size: size, name: name}, true
}

// followMin is the size from which a file is hashed as rsync writes it
// (following the file it writes) rather than once it is in place.
const followMin = 8 << 20

// earlyHasher hashes the files rsync transfers while the transfer goes on,
// on another core, so that verifying the dataset afterwards is not a
// second pass over the data: a small file once the next line shows it is
// in place, a large one as it is written, by reading rsync's temporary
// file (.NAME.XXXXXX next to it, renamed into place when complete) as it
// grows.
//
// rsync's receiver prints a file's line before it receives it (the format
// has no %b or %c), finishes it (rename, times, owner) before the next
// file's line, and writes a file again only by receiving it again, which
// prints its line again: a file whose verification failed is received
// once more in rsync's redo phase. So a sum counts only if it hashed the
// file as of its last line (its generation); a file printed again after
// it was hashed is hashed again. Where that reasoning is not enough (see
// verify's confirm), a sum also counts only if the file is still the inode
// that was hashed, with the same ctime and size.
type earlyHasher struct {
	tree tree
	// inPlace: rsync writes each file under its own name (--inplace), not
	// a temporary one. followNew: a large file may be followed as it is
	// written, which is only safe for a file rsync writes once, front to
	// back: a new one (a partial file continued in place may have bytes
	// written again after they were read).
	inPlace, followNew bool
	// manifest, when set, is the source's manifest coming with the
	// transfer: it is read (not hashed) as soon as it is in place, so the
	// check after the transfer need not wait for it. manifestSrc names it.
	manifest, manifestSrc string
	read                  *manifestRead
	queue                 chan []queued
	batch                 []queued  // files in place, not yet handed to the hashing goroutine
	pending               queued    // the last small file printed, not yet known to be in place
	follow                chan bool // closed when the followed file is complete
	// lines counts rsync's lines per file: a file's generation. (Only add
	// and stop use it, one after the other.)
	lines map[string]int
	mu    sync.Mutex
	sums  map[string]earlySum
	wg    sync.WaitGroup
	once  sync.Once
}

// queued is a file to hash, as of one of its lines.
type queued struct {
	rel string
	gen int
}

// manifestRead is a manifest read from the tree: what it lists, its size
// and digest, and the inode it was read from.
type manifestRead struct {
	entries []manifest.Entry
	size    int64
	digest  string
	id      identity
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// readManifest reads and parses the manifest rel, a regular file beneath
// the tree (src names it in errors).
func (t tree) readManifest(rel, src string) (*manifestRead, error) {
	fd, err := t.open(rel, false)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("not a regular file (mode %o)", st.Mode&unix.S_IFMT)
	case st.Size > maxManifest:
		return nil, fmt.Errorf("larger than %d bytes", maxManifest)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if int64(len(data)) != st.Size {
		return nil, errors.New("changed while it was read")
	}
	entries, err := manifest.Parse(src, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return &manifestRead{entries, st.Size, digest(data), identity{int64(st.Ino), st.Ctim.Nano(), st.Size}}, nil
}

type earlySum struct {
	hashed
	ino, ctimeNs int64
	gen          int // the line it hashed the file as of (see earlyHasher)
}

func newEarlyHasher(t tree) *earlyHasher {
	e := &earlyHasher{tree: t, queue: make(chan []queued, 1<<10), sums: map[string]earlySum{}, lines: map[string]int{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		buf := make([]byte, 1<<20)
		for batch := range e.queue {
			for _, q := range batch {
				rel := q.rel
				if rel == e.manifest {
					// (one that cannot be read or parsed is read again after
					// the transfer, which says what is wrong)
					if m, err := e.tree.readManifest(rel, e.manifestSrc); err == nil {
						e.mu.Lock()
						e.read = m
						e.mu.Unlock()
					}
					continue
				}
				// (no second look: the generation, and where it must be,
				// the identity are checked at the end)
				h, id, err := e.tree.hash(rel, buf, false)
				if err == nil {
					e.record(q, h, id)
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

func (e *earlyHasher) record(q queued, h hashed, id identity) {
	e.mu.Lock()
	if s, ok := e.sums[q.rel]; !ok || s.gen < q.gen {
		e.sums[q.rel] = earlySum{h, id.ino, id.ctimeNs, q.gen}
	}
	e.mu.Unlock()
}

// add hears each file rsync starts to receive: the one before it is now
// in place.
func (e *earlyHasher) add(size int64, name string) {
	if e.follow != nil {
		close(e.follow)
		e.follow = nil
	}
	if e.pending.rel != "" {
		e.batch = append(e.batch, e.pending)
		if len(e.batch) >= earlyBatch {
			e.hand()
		}
	}
	e.pending = queued{}
	e.lines[name]++
	q := queued{name, e.lines[name]}
	if size >= followMin && e.followNew {
		e.hand() // (the files before it, while rsync writes this one)
		e.follow = make(chan bool)
		e.wg.Add(1)
		go func(done chan bool) {
			defer e.wg.Done()
			e.followFile(q, size, done)
		}(e.follow)
		return
	}
	e.pending = q
}

// followFile hashes rel's temporary file as rsync writes it, until done
// (rsync has moved on: the file is complete and in place), then reads what
// is left and records the sum with the inode's final identity.
func (e *earlyHasher) followFile(q queued, size int64, done <-chan bool) {
	rel := q.rel
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
	e.record(q, hashed{hex.EncodeToString(h.Sum(nil)), n}, identity{int64(st.Ino), st.Ctim.Nano(), st.Size})
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

// tempSize is the size of rsync's temporary file for rel (0 if none).
func (t tree) tempSize(rel string) int64 {
	f := t.openTemp(rel)
	if f == nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

// stop is called once rsync has exited: it lets a followed file finish,
// waits for the hashing, and returns the sums of files as of their last
// line (the last small file printed is in place too: the caller verifies
// it) and the manifest if it was read.
func (e *earlyHasher) stop() (map[string]earlySum, *manifestRead) {
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
	for rel, s := range e.sums {
		if s.gen != e.lines[rel] {
			delete(e.sums, rel) // printed again after it was hashed
		}
	}
	return e.sums, e.read
}

type rsyncStats struct {
	bytes, done int64 // in place so far, over all attempts: bytes, and files complete
	shown       int64 // the bytes last reported (reports never go back)
	files, size int64 // from --stats
}

// progressWriter turns rsync's per-item lines and --stats into Progress
// reports: bytes and files in place so far (the files received complete,
// and as much of the one being received as is written). rsync's own
// progress (--info=progress2) would give totals up front, but it writes a
// line per file, which made 10,000 small files 15% slower than plain rsync
// (see docs/handoff.md); the totals come with --stats at the end.
type progressWriter struct {
	report func(Progress)
	done   func(size int64, name string) // hears each file rsync starts to receive
	live   func(name string) int64       // how much of the file being received is written
	// uncounted is a file received but not counted (the manifest).
	uncounted string

	mu       sync.Mutex // Write and the ticks
	line     []byte
	stats    rsyncStats // (from earlier attempts at first)
	cur      string     // the file being received, if any
	curSize  int64
	reported time.Time
}

const (
	// progressEvery is how often a report goes out at most.
	progressEvery = 50 * time.Millisecond
	// liveEvery is how often, between rsync's lines, the file being
	// received is looked at (a large file takes minutes).
	liveEvery = 250 * time.Millisecond
	// liveMin is the size from which that look is worth a stat.
	liveMin = 1 << 20
)

var (
	filesRE = regexp.MustCompile(`^Number of files: ([\d,]+) \(reg: ([\d,]+)`)
	sizeRE  = regexp.MustCompile(`^Total file size: ([\d,]+) bytes`)
)

func (w *progressWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range p {
		if c == '\r' || c == '\n' {
			w.parse(string(w.line))
			w.line = w.line[:0]
			continue
		}
		w.line = append(w.line, c)
	}
	w.maybeReport()
	return len(p), nil
}

// tickEvery reports the file being received every d until the returned
// func is called.
func (w *progressWriter) tickEvery(d time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				w.mu.Lock()
				w.maybeReport()
				w.mu.Unlock()
			}
		}
	}()
	return func() { close(quit); <-done }
}

// flush takes what is left of the output once rsync has exited; complete
// says it succeeded, so the file it received last is in place too.
func (w *progressWriter) flush(complete bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parse(string(w.line))
	w.line = nil
	if complete {
		w.finishCur()
	}
	w.reported = time.Time{}
	w.maybeReport()
}

func (w *progressWriter) finishCur() {
	if w.cur != "" && w.cur != w.uncounted {
		w.stats.bytes += w.curSize
		w.stats.done++
		w.cur, w.curSize = "", 0
	}
}

func (w *progressWriter) parse(line string) {
	if rest, ok := strings.CutPrefix(line, doneMarker); ok {
		it, ok := parseItem(rest)
		if !ok || !it.received {
			return
		}
		w.finishCur()
		w.cur, w.curSize = it.name, it.size
		if w.done != nil {
			w.done(it.size, it.name)
		}
		return
	}
	if !strings.HasPrefix(line, "Number of files") && !strings.HasPrefix(line, "Total file size") {
		return // (spare the regular expressions)
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64); return n }
	if m := filesRE.FindStringSubmatch(line); m != nil {
		w.stats.files = num(m[2])
	}
	if m := sizeRE.FindStringSubmatch(line); m != nil {
		w.stats.size = num(m[1])
	}
}

// maybeReport reports unless one went out less than progressEvery ago.
func (w *progressWriter) maybeReport() {
	now := time.Now()
	if w.report == nil || now.Sub(w.reported) < progressEvery {
		return
	}
	w.reported = now
	b := w.stats.bytes
	if w.cur != "" && w.cur != w.uncounted && w.curSize >= liveMin && w.live != nil {
		b += min(w.live(w.cur), w.curSize)
	}
	w.stats.shown = max(w.stats.shown, b)
	w.report(Progress{Bytes: w.stats.shown, TotalBytes: -1, Files: w.stats.done, TotalFiles: -1})
}
