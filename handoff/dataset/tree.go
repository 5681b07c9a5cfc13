package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"

	"github.com/stratahq/strata/handoff/manifest"
	"golang.org/x/sys/unix"
)

// tree is a dataset's directory, opened once. Files named by a manifest are
// opened and removed relative to it and beneath it: an rsync source may
// carry symlinks, and a manifest line that leads through one out of the
// dataset (a -> /etc, "a/passwd") must not have strata hash, vouch for or
// remove a file there. (A symlink that stays inside, latest -> 2024, is
// followed.) Relative names also keep the kernel's path walk short, which
// counts with many small files.
type tree struct {
	fd  int
	dir string
}

func openTree(dir string) (tree, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return tree{}, fmt.Errorf("open %s: %w", dir, err)
	}
	return tree{fd: fd, dir: dir}, nil
}

func (t tree) close() { unix.Close(t.fd) }

// beneath is how every name in the tree is resolved.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// open opens rel (slash-separated) for reading, or with dir as a directory.
func (t tree) open(rel string, dir bool) (int, error) {
	flags := uint64(unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW)
	if dir {
		flags |= unix.O_DIRECTORY
	}
	for {
		fd, err := unix.Openat2(t.fd, rel, &unix.OpenHow{Flags: flags, Resolve: beneath})
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue // (EAGAIN: a rename elsewhere raced the walk)
		}
		return fd, explainOpen(err)
	}
}

func explainOpen(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP):
		return errors.New("not a regular file (a symlink)")
	case errors.Is(err, unix.EXDEV):
		return errors.New("leads out of the dataset's directory through a symlink (not followed)")
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("missing after the transfer: %w", err)
	}
	return err
}

// stat is rel's identity. (It does not refuse a symlink on the way out:
// an identity only ever confirms a sum taken from an inode opened with open,
// so the same inode is the same bytes.)
func (t tree) stat(rel string) (identity, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(t.fd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return identity{}, err
	}
	return identity{int64(st.Ino), st.Ctim.Nano(), st.Size}, nil
}

// remove unlinks rel, found the same way as open finds it.
func (t tree) remove(rel string) error {
	dir, base := path.Split(rel)
	pfd := t.fd
	if dir != "" {
		fd, err := t.open(dir, true)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pfd = fd
	}
	return unix.Unlinkat(pfd, base, 0)
}

type identity struct{ ino, ctimeNs, size int64 }

// confirms says whether rel is still the inode an early sum was taken from.
func (t tree) confirms(rel string, s earlySum) bool {
	id, err := t.stat(rel)
	return err == nil && id == identity{s.ino, s.ctimeNs, s.size}
}

type hashed struct {
	sum  string
	size int64
}

// hash hashes the regular file rel with buf, and says which inode it
// hashed. With recheck, the inode must be as it was before afterwards too;
// without, the caller compares the identity with the file's later on (a
// write changes the ctime).
func (t tree) hash(rel string, buf []byte, recheck bool) (hashed, identity, error) {
	fd, err := t.open(rel, false)
	if err != nil {
		return hashed{}, identity{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return hashed{}, identity{}, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return hashed{}, identity{}, fmt.Errorf("not a regular file (mode %o)", st.Mode&unix.S_IFMT)
	}
	before := identity{int64(st.Ino), st.Ctim.Nano(), st.Size}
	h := sha256.New()
	var n int64
	for {
		k, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
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
		if k < len(buf) && n >= before.size {
			break // a short read of a regular file: its end (no read for the 0)
		}
	}
	if !recheck {
		if n != before.size {
			return hashed{}, identity{}, errors.New("changed while it was read")
		}
		return hashed{hex.EncodeToString(h.Sum(nil)), n}, before, nil
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return hashed{}, identity{}, fmt.Errorf("stat: %w", err)
	}
	if after := (identity{int64(st.Ino), st.Ctim.Nano(), st.Size}); after != before || n != st.Size {
		return hashed{}, identity{}, errors.New("changed while it was read")
	}
	return hashed{hex.EncodeToString(h.Sum(nil)), n}, before, nil
}

// verify checks the files a manifest lists against their SHA-256, using
// the sums hashed during the transfer; with confirm, only where the file
// is still the inode that was hashed, with the same ctime and size (a stat
// each). A file that does not match is removed, so the next run fetches it
// again (rsync's quick check would otherwise keep it).
// It also says how many sums came from the transfer.
func (t tree) verify(ctx context.Context, entries []manifest.Entry, jobs int, early map[string]earlySum, confirm bool) (int64, int64, int64, error) {
	var mu sync.Mutex
	var errs []error
	var size, fromEarly int64
	// Workers take the entries a chunk at a time: most cost a look-up of
	// their early sum (and with confirm a stat), less than handing them
	// over one by one would.
	const chunk = 256
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < max(1, min(jobs, 4)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for {
				i := int(next.Add(chunk)) - chunk
				if i >= len(entries) || ctx.Err() != nil {
					return
				}
				sz, fe, bad := t.verifyChunk(entries[i:min(i+chunk, len(entries))], buf, early, confirm)
				mu.Lock()
				errs = append(errs, bad...)
				size += sz
				fromEarly += fe
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = append(errs[:10], fmt.Errorf("... and %d more", len(errs)-10))
		}
		return 0, 0, 0, errors.Join(errs...)
	}
	return int64(len(entries)), size, fromEarly, nil
}

// verifyChunk checks some of verify's entries: their bytes, how many sums
// came from the transfer, and what is wrong.
func (t tree) verifyChunk(entries []manifest.Entry, buf []byte, early map[string]earlySum, confirm bool) (size, fromEarly int64, bad []error) {
	for _, e := range entries {
		var n hashed
		var err error
		if es, ok := early[e.Path]; ok {
			if !confirm || t.confirms(e.Path, es) {
				n = es.hashed
				fromEarly++
			}
		}
		if n.sum == "" {
			n, _, err = t.hash(e.Path, buf, true)
		}
		switch {
		case err != nil:
			bad = append(bad, fmt.Errorf("file %s (manifest line %d): %w", e.Path, e.Line, err))
		case n.sum != e.SHA256:
			t.remove(e.Path)
			bad = append(bad, fmt.Errorf("file %s (manifest line %d): checksum mismatch: got sha256 %s, the manifest says %s (removed; a re-run fetches it again)", e.Path, e.Line, n.sum, e.SHA256))
		default:
			size += n.size
		}
	}
	return size, fromEarly, bad
}
