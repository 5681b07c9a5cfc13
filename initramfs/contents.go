package initramfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/initramfs/manifest"
)

// URootCommands are the u-root programs in the image (one busybox binary).
// Each must also be a `tool` directive in go.mod, or `go mod tidy` drops
// the requirement mkuimage needs to build it (a test checks this).
var URootCommands = []string{
	// mount, umount, losetup and chroot come from util-linux and coreutils
	// (see Tools): the restore needs --bind, -o subvol= and friends, and two
	// programs of one name on PATH would make it a matter of order.
	"core/init", "core/gosh",
	"core/cat", "core/chmod", "core/cp", "core/dd", "core/df",
	"core/dhclient", "core/dmesg", "core/echo", "core/find", "core/free",
	"core/grep", "core/gzip", "core/head", "core/hostname", "core/insmod",
	"core/ip", "core/kill", "core/ln", "core/ls", "core/lsdrivers",
	"core/lsmod", "core/mkdir", "core/mknod", "core/more", "core/mv",
	"core/pci", "core/poweroff", "core/ps", "core/pwd", "core/rm", "core/shutdown",
	"core/sleep", "core/strace", "core/switch_root", "core/sync", "core/tail",
	"core/tar", "core/uname", "core/wget", "core/which",
	"exp/dmidecode", "exp/modprobe", "exp/partprobe",
}

const urootModule = "github.com/u-root/u-root"

func urootPackages() []string {
	out := make([]string, len(URootCommands))
	for i, c := range URootCommands {
		out[i] = urootModule + "/cmds/" + c
	}
	return out
}

// ToolSpec is a program copied from the build host with its libraries.
type ToolSpec struct {
	Name    string   // looked up on the host in /usr/sbin, /usr/bin, /sbin, /bin
	Group   string   // storage, boot, fetch, svn
	Probe   []string // harmless arguments that prove it runs
	AnyExit bool     // the probe's exit status is not meaningful (usage → 1)
	Aliases []string // other names for it, as symlinks next to it
	// HostPath overrides the lookup (programs outside PATH).
	HostPath string
	// Needs lists other tools this one runs (xfs_admin runs xfs_db).
	Needs []string
	// Package is the Debian package to install when it is missing.
	Package string
	// Files are host files that come with it as they are, at the same
	// paths: shell libraries it sources, which are not run.
	Files []string
}

var lvmCommands = []string{
	"pvcreate", "pvremove", "pvs", "pvscan", "pvdisplay", "pvchange", "pvresize", "pvmove",
	"vgcreate", "vgremove", "vgs", "vgscan", "vgdisplay", "vgchange", "vgextend", "vgreduce",
	"vgcfgbackup", "vgcfgrestore", "vgrename", "vgimportclone",
	"lvcreate", "lvremove", "lvs", "lvscan", "lvdisplay", "lvchange", "lvextend", "lvreduce",
	"lvresize", "lvrename", "lvconvert",
}

// Tools are the host programs in the image. Groups: "storage" and "boot" are
// what a restore runs; "fetch" is what hands off to configs and datasets:
// git for config repositories (with git-remote-http: libcurl and its GnuTLS,
// Kerberos and LDAP libraries cost 4.3 MiB of the group's 6.1 MiB, but
// without it git could only clone file://, git:// and ssh URLs), git
// submodule, ssh, and rsync for datasets over rsync:// and ssh. "svn" is opt-in
// (Options.Extras) because APR, serf, sqlite and Berkeley DB add 3.3 MiB
// compressed, which would take the default image past 40 MB; without it the
// hand-off runs the restored system's own svn, chrooted (handoff/repo).
var Tools = []ToolSpec{
	{Name: "cryptsetup", Group: "storage", Probe: []string{"--version"}, Package: "cryptsetup-bin"},
	{Name: "lvm", Group: "storage", Probe: []string{"version"}, Aliases: lvmCommands, Package: "lvm2"},
	{Name: "dmsetup", Group: "storage", Probe: []string{"--version"}, Package: "dmsetup"},
	{Name: "mdadm", Group: "storage", Probe: []string{"--version"}, Package: "mdadm"},
	// lvm runs thin_check when it activates a thin pool, and refuses without it.
	{Name: "thin_check", Group: "storage", Probe: []string{"-V"}, Aliases: []string{"thin_repair", "thin_dump", "thin_restore"}, Package: "thin-provisioning-tools"},
	{Name: "mke2fs", Group: "storage", Probe: []string{"-V"}, Aliases: []string{"mkfs.ext2", "mkfs.ext3", "mkfs.ext4"}, Package: "e2fsprogs"},
	{Name: "tune2fs", Group: "storage", AnyExit: true, Aliases: []string{"e2label"}, Package: "e2fsprogs"},
	{Name: "e2fsck", Group: "storage", Probe: []string{"-V"}, Aliases: []string{"fsck.ext2", "fsck.ext3", "fsck.ext4"}, Package: "e2fsprogs"},
	{Name: "resize2fs", Group: "storage", AnyExit: true, Package: "e2fsprogs"},
	{Name: "dumpe2fs", Group: "storage", Probe: []string{"-V"}, Package: "e2fsprogs"},
	{Name: "mkfs.xfs", Group: "storage", Probe: []string{"-V"}, Package: "xfsprogs"},
	{Name: "xfs_admin", Group: "storage", Probe: []string{"-V"}, Needs: []string{"xfs_db"}, Package: "xfsprogs"},
	{Name: "xfs_db", Group: "storage", Probe: []string{"-V"}, Package: "xfsprogs"},
	{Name: "xfs_repair", Group: "storage", Probe: []string{"-V"}, Package: "xfsprogs"},
	{Name: "xfs_growfs", Group: "storage", Probe: []string{"-V"}, Package: "xfsprogs"},
	{Name: "mkfs.fat", Group: "storage", Probe: []string{"--help"}, AnyExit: true, Aliases: []string{"mkfs.vfat", "mkfs.msdos"}, Package: "dosfstools"},
	{Name: "fsck.fat", Group: "storage", Probe: []string{"--help"}, AnyExit: true, Aliases: []string{"fsck.vfat"}, Package: "dosfstools"},
	{Name: "mkfs.btrfs", Group: "storage", Probe: []string{"--version"}, Package: "btrfs-progs"},
	{Name: "btrfs", Group: "storage", Probe: []string{"--version"}, Package: "btrfs-progs"},
	{Name: "mkswap", Group: "storage", Probe: []string{"--version"}, Package: "util-linux"},
	{Name: "wipefs", Group: "storage", Probe: []string{"--version"}, Package: "util-linux"},
	{Name: "blkid", Group: "storage", Probe: []string{"--version"}, Package: "util-linux"},
	{Name: "lsblk", Group: "storage", Probe: []string{"--version"}, Package: "util-linux"},
	{Name: "sfdisk", Group: "storage", Probe: []string{"--version"}, Package: "fdisk"},
	{Name: "sgdisk", Group: "storage", Probe: []string{"--version"}, Package: "gdisk"},
	{Name: "partx", Group: "storage", Probe: []string{"--version"}, Package: "util-linux"},
	{Name: "findmnt", Group: "storage", Probe: []string{"--version"}, Package: "util-linux"},
	{Name: "mount", Group: "storage", Probe: []string{"--version"}, Package: "mount"},
	{Name: "umount", Group: "storage", Probe: []string{"--version"}, Package: "mount"},
	{Name: "losetup", Group: "storage", Probe: []string{"--version"}, Package: "mount"},
	{Name: "chroot", Group: "storage", Probe: []string{"--version"}, Package: "coreutils"},
	// A POSIX shell for the tools' shell scripts (gosh, the image's /bin/sh,
	// drops a script's arguments) and editors/pagers for rescue work, run
	// as `busybox vi`; its applets are not linked into PATH so they do not
	// shadow u-root's commands.
	{Name: "busybox", Group: "storage", Probe: []string{"sh", "-c", "echo busybox sh ok"}, Package: "busybox-static"},
	{Name: "efibootmgr", Group: "boot", Probe: []string{"--version"}, Package: "efibootmgr"},
	{Name: "git", Group: "fetch", Probe: []string{"--version"}, Package: "git"},
	// git runs git-remote-http for http(s) remotes; it carries libcurl.
	{Name: "git-remote-http", Group: "fetch", HostPath: "/usr/lib/git-core/git-remote-http", AnyExit: true, Aliases: []string{"git-remote-https"}, Package: "git"},
	// git submodule is a shell script in Debian 12's git (2.39), run under
	// busybox sh (its basename, sed and uname are busybox applets there): it
	// sources git-sh-setup and git-sh-i18n from git's exec path, and
	// gettext.sh, with gettext and envsubst, for its messages (without them
	// git-sh-i18n falls back on git-sh-i18n--envsubst, a 2.1 MB program).
	// Run directly, without git's exec path on PATH, it stops at sourcing
	// git-sh-setup (exit 2): the probe proves its interpreter runs.
	{Name: "git-submodule", Group: "fetch", HostPath: "/usr/lib/git-core/git-submodule", Probe: []string{"-h"}, AnyExit: true, Package: "git",
		Files: []string{"/usr/lib/git-core/git-sh-setup", "/usr/lib/git-core/git-sh-i18n", "/usr/bin/gettext.sh"}, Needs: []string{"git", "gettext", "envsubst", "busybox"}},
	{Name: "gettext", Group: "fetch", Probe: []string{"--version"}, Package: "gettext-base"},
	{Name: "envsubst", Group: "fetch", Probe: []string{"--version"}, Package: "gettext-base"},
	// The ssh client for git, rsync and svn over ssh (handoff passes the key
	// and known_hosts on its command line); its libraries are already here
	// for git-remote-http and cryptsetup: it adds 0.4 MB compressed.
	{Name: "ssh", Group: "fetch", Probe: []string{"-V"}, Package: "openssh-client"},
	{Name: "rsync", Group: "fetch", Probe: []string{"--version"}, Package: "rsync"},
	{Name: "svn", Group: "svn", Probe: []string{"--version", "--quiet"}, Package: "subversion"},
}

// DefaultGroups are the tool groups in every image; Options.Extras adds more.
var DefaultGroups = []string{"storage", "boot", "fetch"}

// gitExecLinks make git's exec path (/usr/lib/git-core) find the programs it
// runs by dashed name; they are all the one git binary.
var gitExecLinks = map[string]string{
	"usr/lib/git-core/git":                "../../bin/git",
	"usr/lib/git-core/git-upload-pack":    "../../bin/git",
	"usr/lib/git-core/git-receive-pack":   "../../bin/git",
	"usr/lib/git-core/git-upload-archive": "../../bin/git",
}

// DlopenLibraries are loaded at run time by name, so ELF dependencies do not
// show them: libgcc_s (glibc loads it for pthread_cancel/exit unwinding:
// cryptsetup's argon2 threads abort without it), and the iconv modules
// mkfs.fat uses to encode volume labels in DOS code pages.
var DlopenLibraries = []string{
	"libgcc_s.so.1",
	"gconv/gconv-modules",
	"gconv/gconv-modules.cache",
	"gconv/IBM850.so",
	"gconv/IBM437.so",
}

var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

var hostBinDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// hostTool is a resolved ToolSpec.
type hostTool struct {
	ToolSpec
	Src string // regular file on the host
	Dst string // path in the archive, without leading slash
}

// resolveTools finds the selected groups' programs on the host. All missing
// programs are reported at once, with the packages that provide them.
func resolveTools(groups []string) ([]hostTool, error) {
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	var out []hostTool
	var missing []string
	for _, t := range Tools {
		if !want[t.Group] {
			continue
		}
		src := t.HostPath
		if src == "" {
			for _, d := range hostBinDirs {
				if fi, err := os.Stat(filepath.Join(d, t.Name)); err == nil && fi.Mode().IsRegular() {
					src = filepath.Join(d, t.Name)
					break
				}
			}
		}
		if src == "" {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t.Name, t.Package))
			continue
		}
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", t.Name, err))
			continue
		}
		// Keep the name under which it was found; the content is the real file.
		dst := strings.TrimPrefix(filepath.Join(filepath.Dir(src), t.Name), "/")
		out = append(out, hostTool{ToolSpec: t, Src: real, Dst: dst})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("initramfs: tools missing on the build host: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// resolveDlopen finds the DlopenLibraries on the host.
func resolveDlopen() (map[string]string, error) {
	out := map[string]string{} // archive path → host path
	var missing []string
	for _, lib := range DlopenLibraries {
		found := false
		for _, d := range libDirs {
			p := filepath.Join(d, lib)
			if _, err := os.Stat(p); err == nil {
				out[strings.TrimPrefix(p, "/")] = p
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, lib)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("initramfs: libraries missing on the build host: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

func manifestTools(ts []hostTool) []manifest.Tool {
	out := make([]manifest.Tool, len(ts))
	for i, t := range ts {
		out[i] = manifest.Tool{Name: t.Name, Path: "/" + t.Dst, Group: t.Group, Probe: t.Probe, AnyExit: t.AnyExit, Aliases: t.Aliases}
	}
	return out
}

// Static files of the live environment.
const (
	// No udev in the live image: LVM must create /dev nodes itself and not
	// wait for udev (else lvcreate fails "device not cleared"), and there is
	// no dmeventd or lvmpolld to talk to.
	lvmConf = `# strata live image: no udev, no dmeventd, no lvmpolld.
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	use_lvmpolld = 0
}
`
	// The interactive shells strata starts are busybox ash (ENV points
	// here). Debian's busybox-static prefers its own applets to programs
	// on PATH, and its poweroff/reboot/halt signal init, which u-root's
	// init ignores: make those act at once.
	shrc = `# strata live: interactive busybox ash.
# Busybox's own applets (mount, ip, ls, ...) run in preference to programs of
# the same name; use full paths (/usr/bin/mount) or gosh for the others.
poweroff() { sync; busybox poweroff -f; }
reboot() { sync; busybox reboot -f; }
halt() { sync; busybox halt -f; }
PS1='strata-live:$PWD# '
`
	passwd    = "root:x:0:0:root:/root:/bin/sh\n"
	group     = "root:x:0:\ndisk:x:6:\ntty:x:5:\n"
	osRelease = "NAME=\"strata live\"\nID=strata-live\nPRETTY_NAME=\"strata live environment\"\n"
)

// caBundle is copied when the host has it, so git and wget can verify https.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"
