// Package unpack extracts a base-system tar archive into a target root,
// keeping what a root filesystem needs (owners, modes, times, xattrs, POSIX
// ACLs, SELinux labels, device nodes, hard links, sparse files) and refusing
// anything that would land outside the root.
//
// Containment is enforced by the kernel: every parent directory is opened with
// openat2(RESOLVE_BENEATH), so neither "..", an absolute name, nor a symlink
// (planted earlier in the same archive or already on disk) can lead out of the
// root, and there is no window between a check and its use. Entries are then
// created relative to that directory's descriptor, never through a path.
//
// Per-file cost is what limits an archive of many small files, so the
// descriptor of the last parent directory is kept for the entries after it
// (a tar archive lists a directory's entries together), the copy buffer is
// reused, and a file costs five system calls (create, write, chmod, times,
// close; chown too when owners are kept). A kept descriptor stays valid: it
// names a directory inode that was beneath the root when it was opened, and
// the extractor never removes or renames directories; when an entry replaces
// the path it was opened by (or a path above it), it is dropped.
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// ErrEscape marks an entry that would be written outside the target root.
var ErrEscape = errors.New("entry would land outside the target root")

// Options tune an extraction.
type Options struct {
	// Progress, when set, is called after each entry with the count so far.
	Progress func(entries int64, name string)
	// NoOwners skips chown (for tests run as an unprivileged user).
	NoOwners bool
	// Owner, when set, owns every entry instead of the archive's owners
	// (a dataset's owner), given as each entry is made: no walk afterwards.
	Owner *Owner
}

// Owner is a numeric owner and group.
type Owner struct{ UID, GID int }

// Stats describe a finished extraction.
type Stats struct {
	Entries   int64
	Files     int64 // regular files, hard links included
	Size      int64 // their apparent size
	Bytes     int64 // file content written
	HardLinks int64
	Devices   int64
}

// Decompress detects zstd, xz or gzip by their magic bytes and returns a reader
// of the plain stream (plain tar passes through).
func Decompress(r io.Reader) (io.ReadCloser, string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("read archive header: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, "", fmt.Errorf("zstd: %w", err)
		}
		return d.IOReadCloser(), "zstd", nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		x, err := xz.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(x), "xz", nil
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		g, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("gzip: %w", err)
		}
		return g, "gzip", nil
	}
	return io.NopCloser(br), "none", nil
}

// Archive extracts a (possibly compressed) tar stream into root, which must
// exist. It stops at the first problem; the caller treats a failed extraction
// as not done, so a re-run starts it again.
func Archive(ctx context.Context, r io.Reader, root string, opt Options) (Stats, error) {
	plain, _, err := Decompress(r)
	if err != nil {
		return Stats{}, err
	}
	defer plain.Close()
	rootFD, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open target root %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	x := &extractor{root: root, rootFD: rootFD, opt: opt, dirFD: -1, buf: make([]byte, copyBlock), umask: processUmask(), chown: !opt.NoOwners}
	if o := opt.Owner; o != nil {
		// What the extractor creates is already the process's: a chown to
		// it would change nothing (no directory is set-gid until the end).
		x.chown = o.UID != os.Geteuid() || o.GID != os.Getegid()
	}
	defer x.dropDir()
	tr := tar.NewReader(plain)
	for {
		if err := ctx.Err(); err != nil {
			return x.stats, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return x.stats, fmt.Errorf("read archive after %d entries: %w", x.stats.Entries, err)
		}
		if err := x.entry(h, tr); err != nil {
			return x.stats, fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
		x.stats.Entries++
		if opt.Progress != nil {
			opt.Progress(x.stats.Entries, h.Name)
		}
	}
	// Directory modes and times last: writing children changes a directory's
	// mtime, and a read-only directory would block its own children.
	sort.Slice(x.dirs, func(i, j int) bool { return len(x.dirs[i].Name) > len(x.dirs[j].Name) })
	for _, d := range x.dirs {
		if err := x.finishDir(d); err != nil {
			return x.stats, fmt.Errorf("archive entry %q: %w", d.Name, err)
		}
	}
	return x.stats, nil
}

type extractor struct {
	root   string
	rootFD int
	opt    Options
	stats  Stats
	dirs   []*tar.Header
	ids    *idMap
	// dirRel and dirFD are the last parent directory opened beneath the
	// root (dirFD -1: none), kept for the entries that follow in it.
	dirRel string
	dirFD  int
	buf    []byte // the copy buffer, reused for every file
	umask  int    // the process's umask, -1 when unknown
	chown  bool   // entries are given owners
}

// owner is who owns an entry: Options.Owner, else the archive's.
func (x *extractor) owner(h *tar.Header) (int, int) {
	if o := x.opt.Owner; o != nil {
		return o.UID, o.GID
	}
	return h.Uid, h.Gid
}

// copyBlock is the unit of copying and of hole detection.
const copyBlock = 64 << 10

// zeroBlock is compared against to find holes.
var zeroBlock = make([]byte, copyBlock)

// processUmask reads the umask from /proc/self/status (setting and resetting
// it would race with other goroutines creating files); -1 when unknown.
func processUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return -1
			}
			return int(n)
		}
	}
	return -1
}

// clean turns an entry name into a path relative to the root, refusing
// absolute names and any ".." (tar writers never need them).
func clean(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute path: %w", ErrEscape)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("path with '..': %w", ErrEscape)
		}
	}
	p := path.Clean(name)
	if p == "." {
		return "", nil
	}
	return p, nil
}

// parent returns a descriptor of the directory that will hold rel, creating
// missing directories, never leaving the root. The descriptor belongs to the
// extractor (the root's, or the kept one): callers do not close it.
func (x *extractor) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return x.rootFD, base, nil
	}
	if x.dirFD >= 0 && x.dirRel == dir {
		return x.dirFD, base, nil
	}
	fd, err := x.openParent(dir)
	if err != nil {
		return -1, "", err
	}
	x.dropDir()
	x.dirRel, x.dirFD = dir, fd
	return fd, base, nil
}

// openParent opens dir beneath the root, creating it when missing; the
// caller closes the descriptor.
func (x *extractor) openParent(dir string) (int, error) {
	fd, err := x.openBeneath(dir)
	if errors.Is(err, unix.ENOENT) {
		if err := x.mkdirAll(dir); err != nil {
			return -1, err
		}
		fd, err = x.openBeneath(dir)
	}
	return fd, err
}

// dropDir closes the kept parent directory.
func (x *extractor) dropDir() {
	if x.dirFD >= 0 {
		unix.Close(x.dirFD)
	}
	x.dirRel, x.dirFD = "", -1
}

// replaced is called when the entry at rel was removed to make way for a new
// one: a kept directory opened by that path, or by a path below it, no
// longer is what the path names.
func (x *extractor) replaced(rel string) {
	if x.dirFD >= 0 && (x.dirRel == rel || strings.HasPrefix(x.dirRel, rel+"/")) {
		x.dropDir()
	}
}

// unlink removes what is at base in pfd to make way for rel's entry (never a
// directory: the extractor does not remove directories).
func (x *extractor) unlink(pfd int, base, rel string) error {
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return fmt.Errorf("replace existing: %w", err)
	}
	x.replaced(rel)
	return nil
}

// retry runs create; if something is in the way (EEXIST), it removes that
// and runs create once more. Creating first saves an unlink per entry in
// the common case, an empty target.
func (x *extractor) retry(pfd int, base, rel string, create func() error) error {
	err := create()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if uerr := x.unlink(pfd, base, rel); uerr != nil {
		return uerr
	}
	return create()
}

func (x *extractor) openBeneath(rel string) (int, error) {
	fd, err := unix.Openat2(x.rootFD, rel, &unix.OpenHow{
		Flags:   unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.EXDEV) {
		return -1, fmt.Errorf("%s leads out of the root through a symlink: %w", rel, ErrEscape)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", rel, err)
	}
	return fd, nil
}

// mkdirAll creates rel's missing directories one level at a time, beneath the root.
func (x *extractor) mkdirAll(rel string) error {
	cur := ""
	for _, c := range strings.Split(rel, "/") {
		next := path.Join(cur, c)
		fd, err := x.openBeneath(next)
		if err == nil {
			unix.Close(fd)
			cur = next
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		pfd := x.rootFD
		if cur != "" {
			if pfd, err = x.openBeneath(cur); err != nil {
				return err
			}
			defer unix.Close(pfd)
		}
		if err := unix.Mkdirat(pfd, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", next, err)
		}
		cur = next
	}
	return nil
}

func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	rel, err := clean(h.Name)
	if err != nil {
		return err
	}
	if rel == "" { // the root itself: only its metadata
		if h.Typeflag == tar.TypeDir {
			x.dirs = append(x.dirs, h)
		}
		return nil
	}
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeDir:
		err := unix.Mkdirat(pfd, base, 0o700)
		if errors.Is(err, unix.EEXIST) {
			var st unix.Stat_t
			if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err := x.unlink(pfd, base, rel); err != nil {
					return fmt.Errorf("replace %s with a directory: %w", rel, err)
				}
				err = unix.Mkdirat(pfd, base, 0o700)
			}
		}
		if err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		x.dirs = append(x.dirs, h)
		return nil
	case tar.TypeReg:
		// Created with its final permissions when that is exact (no set-id
		// or sticky bits, nothing the umask takes away), saving a chmod;
		// else private until chmod. Never through an existing symlink:
		// O_EXCL refuses one, and it is replaced like any other entry.
		perm, chmod := uint32(0o600), true
		if mode&^0o777 == 0 && x.umask >= 0 && int(mode)&x.umask == 0 {
			perm, chmod = mode, false
		}
		var fd int
		if err := x.retry(pfd, base, rel, func() (err error) {
			fd, err = unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
			return err
		}); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		n, werr := writeSparse(fd, r, h.Size, x.buf)
		x.stats.Bytes += n
		x.stats.Files++
		x.stats.Size += h.Size
		if werr == nil && (chmod || x.chown || len(h.PAXRecords) > 0) {
			werr = x.meta(fd, h, mode, chmod)
		}
		if werr == nil {
			werr = fdTimes(fd, h)
		}
		if cerr := unix.Close(fd); werr == nil && cerr != nil {
			werr = fmt.Errorf("close: %w", cerr)
		}
		return werr
	case tar.TypeSymlink:
		if err := x.retry(pfd, base, rel, func() error { return unix.Symlinkat(h.Linkname, pfd, base) }); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		if x.chown {
			uid, gid := x.owner(h)
			if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown symlink: %w", err)
			}
		}
		return x.times(pfd, base, h, unix.AT_SYMLINK_NOFOLLOW)
	case tar.TypeLink:
		target, err := clean(h.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("hard link to %q: %w", h.Linkname, ErrEscape)
		}
		tdir, tbase := path.Split(target)
		tfd := x.rootFD
		if tdir = strings.TrimSuffix(tdir, "/"); tdir != "" {
			if tfd, err = x.openParent(tdir); err != nil {
				return fmt.Errorf("hard link target %s: %w", target, err)
			}
			defer unix.Close(tfd)
		}
		if err := x.retry(pfd, base, rel, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) }); err != nil {
			return fmt.Errorf("hard link to %s: %w", target, err)
		}
		x.stats.HardLinks++
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			x.stats.Files++
			x.stats.Size += st.Size
		}
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := x.retry(pfd, base, rel, func() error { return unix.Mknodat(pfd, base, kind|mode, int(dev)) }); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		x.stats.Devices++
		if x.chown {
			uid, gid := x.owner(h)
			if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown: %w", err)
			}
		}
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		return x.times(pfd, base, h, 0)
	}
	return fmt.Errorf("unsupported entry type %q", string(h.Typeflag))
}

// meta applies owner, mode (after chown, which clears set-id bits) and xattrs.
func (x *extractor) meta(fd int, h *tar.Header, mode uint32, chmod bool) error {
	if x.chown {
		uid, gid := x.owner(h)
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		chmod = true // chown cleared any set-id bits
	}
	if chmod {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if len(h.PAXRecords) == 0 {
		return nil
	}
	xattrs, err := x.xattrs(h)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(xattrs) {
		if err := unix.Fsetxattr(fd, k, []byte(xattrs[k]), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}

// fdTimes sets an open file's access and modification times.
func fdTimes(fd int, h *tar.Header) error {
	at := h.AccessTime
	if at.IsZero() {
		at = h.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (x *extractor) times(pfd int, base string, h *tar.Header, flags int) error {
	at := h.AccessTime
	if at.IsZero() {
		at = h.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, base, ts, flags); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (x *extractor) finishDir(h *tar.Header) error {
	rel, _ := clean(h.Name)
	var fd int
	var err error
	if rel == "" {
		fd, err = unix.Dup(x.rootFD)
	} else {
		fd, err = x.openBeneath(rel)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := x.meta(fd, h, uint32(h.Mode&0o7777), true); err != nil {
		return err
	}
	at := h.AccessTime
	if at.IsZero() {
		at = h.ModTime
	}
	return unix.UtimesNanoAt(fd, "", []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}, unix.AT_EMPTY_PATH)
}

// writeSparse copies size bytes into fd with buf, seeking over all-zero
// blocks so sparse files stay sparse (and an image of zeros costs no disk).
func writeSparse(fd int, r io.Reader, size int64, buf []byte) (int64, error) {
	var off, written int64
	hole := false // the file ends in a hole: set its size
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if n > 0 {
			if n == len(buf) && bytes.Equal(buf[:n], zeroBlock[:n]) {
				if _, err := unix.Seek(fd, int64(n), io.SeekCurrent); err != nil {
					return written, fmt.Errorf("seek: %w", err)
				}
				hole = true
			} else {
				if err := writeAll(fd, buf[:n]); err != nil {
					return written, err
				}
				written += int64(n)
				hole = false
			}
			off += int64(n)
		}
		if err != nil {
			return written, fmt.Errorf("archive truncated at %d of %d bytes: %w", off, size, err)
		}
	}
	if hole {
		if err := unix.Ftruncate(fd, size); err != nil {
			return written, fmt.Errorf("truncate: %w", err)
		}
	}
	return written, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// xattrs collects the entry's extended attributes: PAX SCHILY.xattr.* (GNU tar
// --xattrs, also carrying security.selinux), RHT.security.selinux (GNU tar
// --selinux), and GNU tar --acls text ACLs converted to the kernel's format.
func (x *extractor) xattrs(h *tar.Header) (map[string]string, error) {
	var out map[string]string
	for k, v := range h.PAXRecords {
		if out == nil {
			out = map[string]string{}
		}
		switch {
		case strings.HasPrefix(k, "SCHILY.xattr."):
			out[strings.TrimPrefix(k, "SCHILY.xattr.")] = v
		case k == "RHT.security.selinux":
			out["security.selinux"] = v
		case k == "SCHILY.acl.access" || k == "SCHILY.acl.default":
			if x.ids == nil {
				x.ids = loadIDs(x.root)
			}
			b, err := aclXattr(v, x.ids)
			if err != nil {
				return nil, fmt.Errorf("ACL %q: %w", v, err)
			}
			name := "system.posix_acl_access"
			if k == "SCHILY.acl.default" {
				name = "system.posix_acl_default"
			}
			out[name] = string(b)
		}
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
