package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/handoff/creds"
	"golang.org/x/sys/unix"
)

// Where svn runs (Options.SVN).
const (
	// SVNAuto is the live system's svn when it has one, else the restored
	// system's.
	SVNAuto = ""
	// SVNLive is the live system's svn only.
	SVNLive = "live"
	// SVNRoot is the restored system's svn, chrooted into it.
	SVNRoot = "root"
)

// chrootDir is where the chrooted svn finds its private files, inside the
// root: a tmpfs mounted over the root's /run for the checkout.
const chrootDir = "/run/strata"

// svnChroot is what the restored system's svn needs to run chrooted into
// it: /dev (a tmpfs with null, zero, random, urandom and tty) and /proc
// when they are not mounted there already, a tmpfs over its /run holding svn's throw-away
// configuration, the live system's resolv.conf and copies of the CA, key
// and known_hosts files the credentials name, all in memory: nothing of it
// reaches the target's disk, and all of it goes when the checkout ends.
type svnChroot struct {
	root    string   // the root, symlinks resolved
	mounts  []string // host paths mounted, unmounted last first
	created []string // paths made on the target to mount on, removed after
	logf    func(string, ...any)
}

// chrootSVN prepares root for svn, and returns m with its files' paths as
// the chrooted svn sees them. The caller closes it.
func chrootSVN(root string, m creds.Match, logf func(string, ...any)) (c *svnChroot, _ creds.Match, err error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, m, fmt.Errorf("svn in the restored system: root %s: %w", root, err)
	}
	c = &svnChroot{root: real, logf: logf}
	if !c.hasSVN() {
		return nil, m, fmt.Errorf("svn is neither in the live image (built without the svn group) nor in the restored system (%s/usr/bin/svn): add subversion to the profile's packages, or build the live image with the svn group", real)
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if _, err := os.Stat(filepath.Join(real, "dev/null")); err != nil {
		if err := c.devices(); err != nil {
			return nil, m, err
		}
	}
	if _, err := os.Stat(filepath.Join(real, "proc/self")); err != nil {
		if err := c.mount("proc", "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
			return nil, m, err
		}
	}
	if err := c.mount("strata", "run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return nil, m, err
	}
	if err := os.MkdirAll(c.Host(chrootDir), 0o700); err != nil {
		return nil, m, fmt.Errorf("svn in the restored system: %w", err)
	}
	if err := c.resolvConf(); err != nil {
		return nil, m, err
	}
	// The credentials' files, copied into memory under the names the
	// chrooted programs see.
	for _, e := range []**creds.Entry{&m.CAFile, &m.SSHKey, &m.KnownHosts} {
		if *e == nil {
			continue
		}
		b, err := os.ReadFile((*e).Path)
		if err != nil {
			return nil, m, fmt.Errorf("%s (line %d of the credentials): %w", (*e).Kind, (*e).Line, err)
		}
		cp := **e
		cp.Path = chrootDir + "/" + cp.Kind
		if err := os.WriteFile(c.Host(cp.Path), b, 0o600); err != nil {
			return nil, m, fmt.Errorf("svn in the restored system: %w", err)
		}
		*e = &cp
	}
	return c, m, nil
}

// hasSVN says whether the root has an svn program.
func (c *svnChroot) hasSVN() bool {
	for _, p := range []string{"usr/bin/svn", "bin/svn", "usr/local/bin/svn"} {
		if _, err := os.Stat(filepath.Join(c.root, p)); err == nil {
			return true
		}
	}
	return false
}

// Host is the host path of a path inside the root (no symlinks on it).
func (c *svnChroot) Host(p string) string { return filepath.Join(c.root, p) }

// In is the path inside the root of a host path below it.
func (c *svnChroot) In(host string) (string, error) {
	rel, err := filepath.Rel(c.root, host)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is not inside the root %s", host, c.root)
	}
	return "/" + filepath.ToSlash(rel), nil
}

// devices mounts a tmpfs of its own on the root's /dev with the few device
// nodes svn and ssh open (not the live system's /dev: whatever happens to
// the root's /dev cannot reach the live system's devices).
func (c *svnChroot) devices() error {
	if err := c.mount("strata-dev", "dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
		return err
	}
	for name, dev := range map[string][2]uint32{"null": {1, 3}, "zero": {1, 5}, "full": {1, 7}, "random": {1, 8}, "urandom": {1, 9}, "tty": {5, 0}} {
		if err := unix.Mknod(c.Host("/dev/"+name), unix.S_IFCHR|0o666, int(unix.Mkdev(dev[0], dev[1]))); err != nil {
			return fmt.Errorf("svn in the restored system: mknod /dev/%s: %w", name, err)
		}
	}
	for name, to := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(to, c.Host("/dev/"+name)); err != nil {
			return fmt.Errorf("svn in the restored system: %w", err)
		}
	}
	return nil
}

// mount mounts src on the root's dir (made when missing, and removed after).
func (c *svnChroot) mount(src, dir, fstype string, flags uintptr) error {
	target := c.Host(dir)
	if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(target, 0o755); err != nil {
			return fmt.Errorf("svn in the restored system: %w", err)
		}
		c.created = append(c.created, target)
	}
	data := ""
	if fstype == "tmpfs" {
		data = "mode=0755,size=16m"
	}
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("svn in the restored system: mount %s on %s: %w", src, target, err)
	}
	c.mounts = append(c.mounts, target)
	return nil
}

// resolvConf gives the chroot the live system's name servers: the root's
// /etc/resolv.conf is covered by a copy in memory (a bind mount), or, when
// it is a link into /run (systemd-resolved's stub), the copy is put where it
// leads, on the tmpfs.
func (c *svnChroot) resolvConf() error {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		c.logf("svn in the restored system: no /etc/resolv.conf here (%v): host names may not resolve", err)
		return nil
	}
	etc := c.Host("/etc/resolv.conf")
	if link, err := os.Readlink(etc); err == nil {
		target := link
		if !filepath.IsAbs(target) {
			target = filepath.Join("/etc", target)
		}
		if target = filepath.Clean(target); strings.HasPrefix(target, "/run/") {
			if err := os.MkdirAll(filepath.Dir(c.Host(target)), 0o755); err != nil {
				return fmt.Errorf("svn in the restored system: %w", err)
			}
			if err := os.WriteFile(c.Host(target), b, 0o644); err != nil {
				return fmt.Errorf("svn in the restored system: %w", err)
			}
			return nil
		}
		c.logf("svn in the restored system: /etc/resolv.conf leads to %s, outside /run: left as it is", link)
		return nil
	}
	copyPath := c.Host(chrootDir + "/resolv.conf")
	if err := os.WriteFile(copyPath, b, 0o644); err != nil {
		return fmt.Errorf("svn in the restored system: %w", err)
	}
	if _, err := os.Lstat(etc); errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(etc, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("svn in the restored system: %w", err)
		}
		f.Close()
		c.created = append(c.created, etc)
	}
	if err := unix.Mount(copyPath, etc, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("svn in the restored system: bind %s on %s: %w", copyPath, etc, err)
	}
	c.mounts = append(c.mounts, etc)
	return nil
}

// close undoes what chrootSVN did, last first.
func (c *svnChroot) close() error {
	var errs []error
	for i := len(c.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(c.mounts[i], unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", c.mounts[i], err))
		}
	}
	for i := len(c.created) - 1; i >= 0; i-- {
		if err := os.Remove(c.created[i]); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.created[i], err))
		}
	}
	c.mounts, c.created = nil, nil
	return errors.Join(errs...)
}
