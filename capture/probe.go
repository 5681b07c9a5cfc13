package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/internal/run"
)

// Options says what to capture and how to reach the machine.
type Options struct {
	// Root is where the captured system's files are (/etc/fstab, crypttab,
	// os-release, the dpkg database, repositories): "/" (the default) on a
	// running host, or the mount point of a dead machine's root opened from
	// the live image. Kernel state (/proc, /sys, devices) is always this
	// machine's.
	Root string
	// Disks restricts the capture to these disks (device paths) and what is
	// built on them. Empty: every disk of the machine.
	Disks []string
	// Storage leaves out the system, bootloader, host identity and
	// repositories: only disks, RAID, LUKS, LVM and filesystems. Implied by
	// Disks.
	Storage bool
	Runner  run.Runner // default run.Exec{Log: Log}
	FS      FS         // default OSFS{}
	Log     run.Logger
	// Parallel is how many commands run at once; default 8.
	Parallel int
}

type prober struct {
	o    Options
	f    *Facts
	mu   sync.Mutex
	sem  chan struct{}
	wg   sync.WaitGroup
	ctx  context.Context
	root string
}

// Probe asks the machine's tools and files everything Build needs.
// It fails only when nothing sensible can be captured (lsblk fails);
// everything else that cannot be read becomes a Facts.Problems note.
func Probe(ctx context.Context, o Options) (*Facts, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Runner == nil {
		o.Runner = run.Exec{Log: o.Log}
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if len(o.Disks) > 0 {
		o.Storage = true
	}
	p := &prober{o: o, ctx: ctx, root: o.Root, sem: make(chan struct{}, o.Parallel), f: &Facts{
		Root: o.Root, Only: o.Disks,
		Probe: map[string]map[string]string{}, Tables: map[string]*parse.Table{}, Ext: map[string]*parse.ExtSuper{},
		XFS: map[string]*parse.XFSInfo{}, FAT: map[string]*parse.FATInfo{}, Btrfs: map[string]*BtrfsFacts{},
		LUKS: map[string]*parse.LUKS{}, MD: map[string]*MDFacts{}, Unreadable: map[string]string{},
	}}
	// Files first (fast), in parallel with the block device tree.
	p.goDo(p.files)
	if !o.Storage {
		p.goDo(p.identity)
	}
	if err := p.blockDevices(); err != nil {
		p.wg.Wait()
		return nil, err
	}
	p.wg.Wait()
	p.devices()
	p.wg.Wait()
	if !o.Storage {
		p.boot()
		p.repos()
		p.wg.Wait()
	}
	sort.Slice(p.f.Problems, func(i, j int) bool { return p.f.Problems[i].Msg < p.f.Problems[j].Msg })
	return p.f, nil
}

func (p *prober) goDo(fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
	}()
}

func (p *prober) problem(path, format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f.Problems = append(p.f.Problems, Note{Path: path, Msg: fmt.Sprintf(format, a...)})
}

// run executes a command with bounded parallelism. okCodes are exit codes
// that still carry usable output.
func (p *prober) run(name string, args []string, okCodes ...int) ([]byte, error) {
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	res, err := p.o.Runner.Run(p.ctx, run.Cmd{Name: name, Args: args})
	if err != nil {
		var ee *run.ExitError
		if errors.As(err, &ee) {
			for _, c := range okCodes {
				if ee.Code == c && len(res.Stdout) > 0 {
					return res.Stdout, nil
				}
			}
		}
		return res.Stdout, err
	}
	return res.Stdout, nil
}

// async runs fn(out) for a command in the background; failures become problems.
func (p *prober) async(what, name string, args []string, fn func([]byte) error, okCodes ...int) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		out, err := p.run(name, args, okCodes...)
		if err == nil {
			err = fn(out)
		}
		if err != nil {
			p.problem("", "%s not captured: %v", what, shortErr(err))
		}
	}()
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (p *prober) read(name string) ([]byte, bool) {
	b, err := p.o.FS.ReadFile(name)
	if err != nil {
		if !notExist(err) && !errors.Is(err, ErrNotRecorded) {
			p.problem("", "cannot read %s: %v", name, err)
		}
		return nil, false
	}
	return b, true
}

func (p *prober) exists(name string) bool {
	_, err := p.o.FS.Stat(name)
	return err == nil
}

// files reads the kernel's tables and the system's configuration.
func (p *prober) files() {
	f := p.f
	live := p.root == "/"
	if b, ok := p.read("/proc/self/mountinfo"); ok {
		f.Mounts, _ = parse.Mountinfo(b)
	}
	if b, ok := p.read("/proc/swaps"); ok {
		f.Swaps = parse.Swaps(b)
	}
	if b, ok := p.read(under(p.root, "/etc/fstab")); ok {
		var err error
		if f.Fstab, err = parse.Fstab(b); err != nil {
			p.problem("", "/etc/fstab: %v", err)
		}
	}
	if b, ok := p.read(under(p.root, "/etc/crypttab")); ok {
		var err error
		if f.Crypttab, err = parse.Crypttab(b); err != nil {
			p.problem("", "/etc/crypttab: %v", err)
		}
	}
	if p.o.Storage {
		return
	}
	f.UEFI = p.exists("/sys/firmware/efi")
	if b, ok := p.read(under(p.root, "/etc/os-release")); ok {
		f.OSRelease = parse.OSRelease(b)
	} else if b, ok := p.read(under(p.root, "/usr/lib/os-release")); ok {
		f.OSRelease = parse.OSRelease(b)
	}
	if b, ok := p.read(under(p.root, "/etc/hostname")); ok {
		f.Hostname = strings.TrimSpace(string(b))
	} else if live {
		if b, ok := p.read("/proc/sys/kernel/hostname"); ok {
			f.Hostname = strings.TrimSpace(string(b))
		}
	}
	// GRUB's settings as grub-mkconfig sources them: /etc/default/grub,
	// then /etc/default/grub.d/*.cfg in order, a later value winning
	// (strata's restore writes its own as 50-strata.cfg).
	if b, ok := p.read(under(p.root, "/etc/default/grub")); ok {
		f.GrubDefault = parse.ShellVars(b)
	}
	if names, err := p.o.FS.ReadDir(under(p.root, "/etc/default/grub.d")); err == nil {
		for _, n := range names {
			if !strings.HasSuffix(n, ".cfg") {
				continue
			}
			if b, ok := p.read(under(p.root, "/etc/default/grub.d/"+n)); ok {
				if f.GrubDefault == nil {
					f.GrubDefault = map[string]string{}
				}
				for k, v := range parse.ShellVars(b) {
					f.GrubDefault[k] = v
				}
			}
		}
	}
	if b, ok := p.read(under(p.root, "/etc/initramfs-tools/conf.d/resume")); ok {
		f.Resume = parse.ShellVars(b)["RESUME"]
	}
	switch {
	case live:
		if b, ok := p.read("/proc/cmdline"); ok {
			f.Cmdline, f.CmdlineSource = strings.TrimSpace(string(b)), "/proc/cmdline"
		}
	default:
		if b, ok := p.read(under(p.root, "/etc/kernel/cmdline")); ok {
			f.Cmdline, f.CmdlineSource = strings.TrimSpace(string(b)), "/etc/kernel/cmdline"
		} else if f.GrubDefault != nil {
			f.Cmdline = strings.TrimSpace(f.GrubDefault["GRUB_CMDLINE_LINUX"] + " " + f.GrubDefault["GRUB_CMDLINE_LINUX_DEFAULT"])
			f.CmdlineSource = "/etc/default/grub"
		}
	}
	// Packages: dpkg's database and apt's auto marks (what apt-mark
	// showmanual reads), without running apt: faster, and works on --root.
	if b, ok := p.read(under(p.root, "/var/lib/dpkg/status")); ok {
		f.PackageManager = "apt"
		ext, _ := p.read(under(p.root, "/var/lib/apt/extended_states"))
		f.Packages = parse.ManualPackages(parse.DpkgStatus(b), parse.AptAuto(ext))
		f.PackagesRead = true
	} else if p.exists(under(p.root, "/var/lib/pacman/local")) {
		f.PackageManager = "pacman"
	} else if p.exists(under(p.root, "/var/lib/rpm")) || p.exists(under(p.root, "/usr/lib/sysimage/rpm")) {
		f.PackageManager = "dnf"
	}
}

// identity reads the machine's NICs and firmware identity for host.match.
func (p *prober) identity() {
	names, err := p.o.FS.ReadDir("/sys/class/net")
	if err == nil {
		for _, n := range names {
			if !p.exists("/sys/class/net/" + n + "/device") { // virtual: lo, bridges, tunnels
				continue
			}
			if b, ok := p.read("/sys/class/net/" + n + "/address"); ok {
				if mac := strings.TrimSpace(string(b)); mac != "" && mac != "00:00:00:00:00:00" {
					p.f.MACs = append(p.f.MACs, mac)
				}
			}
		}
		sort.Strings(p.f.MACs)
	}
	val := func(n string) string {
		b, err := p.o.FS.ReadFile("/sys/class/dmi/id/" + n)
		if err != nil {
			return ""
		}
		v := strings.TrimSpace(string(b))
		switch strings.ToLower(v) {
		case "", "to be filled by o.e.m.", "default string", "system serial number", "not specified", "0123456789":
			return ""
		}
		return v
	}
	p.f.DMI = dmi(val("sys_vendor"), val("product_name"), val("product_serial"))
}

// blockDevices reads the device tree and every device's signature.
func (p *prober) blockDevices() error {
	args := []string{"--json", "--bytes", "--output", parse.LsblkColumns}
	args = append(args, p.o.Disks...)
	out, err := p.run("lsblk", args)
	if err != nil {
		return fmt.Errorf("capture: list block devices: %w", err)
	}
	devs, err := parse.Lsblk(out)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	var keep []parse.BlockDevice
	for _, d := range devs {
		if len(p.o.Disks) == 0 && skipDisk(d) {
			continue
		}
		keep = append(keep, d)
	}
	p.f.Blocks = keep
	seen := map[string]bool{}
	var paths []string
	parse.Walk(keep, func(d, _ *parse.BlockDevice) {
		if !seen[d.Path] && d.Path != "" {
			seen[d.Path] = true
			paths = append(paths, d.Path)
		}
	})
	if len(paths) == 0 {
		return nil
	}
	// blkid --probe stops at the first device it finds nothing on (an
	// empty partition, an unformatted array) or cannot open: go on after it.
	for rest := paths; len(rest) > 0; {
		res, err := p.o.Runner.Run(p.ctx, run.Cmd{Name: "blkid", Args: append([]string{"--probe", "--output", "export"}, rest...)})
		got := parse.Blkid(res.Stdout)
		for dev, kv := range got {
			if dev != "" {
				p.f.Probe[dev] = kv
			}
		}
		if err == nil {
			break
		}
		var ee *run.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("capture: blkid: %w", err)
		}
		// blkid reports the devices it cannot open on stderr.
		for _, l := range strings.Split(ee.Stderr, "\n") {
			l = strings.TrimPrefix(strings.TrimSpace(l), "blkid: error: ")
			if dev, msg, ok := strings.Cut(l, ": "); ok && strings.HasPrefix(dev, "/dev/") {
				p.f.Unreadable[dev] = msg
			} else if l != "" {
				p.problem("", "blkid: %s", l)
			}
		}
		last := -1
		for i, d := range rest {
			if _, ok := got[d]; ok {
				last = i
			}
		}
		rest = rest[min(last+2, len(rest)):] // past the one it stopped at
	}
	return nil
}

// skipDisk leaves out what is not a disk of the machine: CD-ROMs, RAM and
// compressed-RAM disks, loop devices, empty card readers.
func skipDisk(d parse.BlockDevice) bool {
	switch {
	case d.Type != "disk":
		return true
	case d.Size == 0:
		return true
	case strings.HasPrefix(d.Name, "zram"), strings.HasPrefix(d.Name, "ram"):
		return true
	}
	return false
}

// devices runs the per-device tools.
func (p *prober) devices() {
	f := p.f
	var mdPaths []string
	lvm := false
	btrfsDevs := map[string][]string{}
	parse.Walk(f.Blocks, func(d, parent *parse.BlockDevice) {
		if strings.HasPrefix(d.Type, "raid") || d.Type == "md" || d.Type == "linear" {
			mdPaths = append(mdPaths, d.Path)
		}
		if d.Type == "lvm" {
			lvm = true
		}
	})
	mdPaths = dedupe(mdPaths)
	for _, dev := range sortedKeys(f.Probe) {
		kv := f.Probe[dev]
		if pt := kv["PTTYPE"]; (pt == "gpt" || pt == "dos") && kv["PART_ENTRY_NUMBER"] == "" {
			p.table(dev)
		}
		switch kv["TYPE"] {
		case "ext2", "ext3", "ext4":
			p.async("the ext superblock of "+dev, "dumpe2fs", []string{"-h", dev}, func(b []byte) error {
				s, err := parse.Dumpe2fs(b)
				if err == nil {
					p.mu.Lock()
					f.Ext[dev] = s
					p.mu.Unlock()
				}
				return err
			})
		case "xfs":
			p.async("the xfs geometry of "+dev, "xfs_db", []string{"-r", "-c", "info", "-c", "version", "-c", "uuid", "-c", "label", dev}, func(b []byte) error {
				x, err := parse.XFSDB(b)
				if err == nil {
					p.mu.Lock()
					f.XFS[dev] = x
					p.mu.Unlock()
				}
				return err
			})
		case "vfat":
			// fsck.fat exits 1 when it finds (and, with -n, leaves) problems.
			p.async("the FAT boot sector of "+dev, "fsck.fat", []string{"-n", "-v", dev}, func(b []byte) error {
				x, err := parse.FsckFat(b)
				if err == nil {
					p.mu.Lock()
					f.FAT[dev] = x
					p.mu.Unlock()
				}
				return err
			}, 1)
		case "btrfs":
			btrfsDevs[kv["UUID"]] = append(btrfsDevs[kv["UUID"]], dev)
		case "crypto_LUKS":
			if kv["VERSION"] == "1" {
				p.async("the LUKS1 header of "+dev, "cryptsetup", []string{"luksDump", dev}, func(b []byte) error {
					l, err := parse.LuksDump1(b)
					if err == nil {
						p.mu.Lock()
						f.LUKS[dev] = l
						p.mu.Unlock()
					}
					return err
				})
			} else {
				p.async("the LUKS2 header of "+dev, "cryptsetup", []string{"luksDump", "--dump-json-metadata", dev}, func(b []byte) error {
					l, err := parse.LUKS2JSON(b)
					if err == nil {
						p.mu.Lock()
						f.LUKS[dev] = l
						p.mu.Unlock()
					}
					return err
				})
			}
		case "LVM2_member":
			lvm = true
		}
	}
	for _, md := range mdPaths {
		md := md
		mf := &MDFacts{}
		f.MD[md] = mf
		p.async("md array "+md, "mdadm", []string{"--detail", "--export", md}, func(b []byte) error {
			e, err := parse.MdadmExport(b)
			mf.Export = e
			return err
		})
		p.async("md array "+md, "mdadm", []string{"--detail", md}, func(b []byte) error {
			d, err := parse.MdadmDetail(b)
			mf.Detail = d
			return err
		})
	}
	if lvm {
		f.LVMSeen = true
		common := []string{"--reportformat", "json", "--units", "b", "--nosuffix", "-o"}
		p.async("LVM physical volumes", "pvs", append(append([]string{}, common...), parse.PVFields), func(b []byte) error {
			v, err := parse.PVs(b)
			f.PVs = v
			return err
		})
		p.async("LVM volume groups", "vgs", append(append([]string{}, common...), parse.VGFields), func(b []byte) error {
			v, err := parse.VGs(b)
			f.VGs = v
			return err
		})
		p.async("LVM logical volumes", "lvs", append(append([]string{"-a"}, common...), parse.LVFields), func(b []byte) error {
			v, err := parse.LVs(b)
			f.LVs = v
			return err
		})
	}
	for _, uuid := range sortedKeys(btrfsDevs) {
		p.btrfs(uuid, btrfsDevs[uuid])
	}
}

// table reads a disk's partition table with sfdisk, or directly where there
// is no sfdisk (the live image).
func (p *prober) table(dev string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		out, err := p.run("sfdisk", []string{"--json", dev})
		var t *parse.Table
		switch {
		case errors.Is(err, run.ErrNotFound):
			var ss int64 = 512
			if bd := findDev(p.f.Blocks, dev); bd != nil && bd.LogicalSec > 0 {
				ss = bd.LogicalSec
			}
			t, err = parse.RawTable(dev, ss, func(off int64, n int) ([]byte, error) { return p.o.FS.ReadAt(dev, off, n) })
		case err == nil:
			t, err = parse.Sfdisk(out)
		}
		if err != nil {
			p.problem("", "the partition table of %s not captured: %v", dev, shortErr(err))
			return
		}
		p.mu.Lock()
		p.f.Tables[dev] = t
		p.mu.Unlock()
	}()
}

func findDev(ds []parse.BlockDevice, path string) *parse.BlockDevice {
	var hit *parse.BlockDevice
	parse.Walk(ds, func(d, _ *parse.BlockDevice) {
		if hit == nil && d.Path == path {
			hit = d
		}
	})
	return hit
}

func (p *prober) btrfs(uuid string, devs []string) {
	bf := &BtrfsFacts{Devices: devs}
	p.f.Btrfs[uuid] = bf
	first := devs[0]
	for _, m := range p.f.Mounts {
		if m.FSType == "btrfs" && (contains(devs, m.Source) || m.Source == first) {
			if bf.Mount == "" || m.Root == "/" {
				bf.Mount = m.MountPoint
			}
		}
	}
	p.async("the btrfs superblock of "+first, "btrfs", []string{"inspect-internal", "dump-super", first}, func(b []byte) error {
		s, err := parse.DumpSuper(b)
		bf.Super = s
		return err
	})
	p.async("the btrfs subvolumes of "+first, "btrfs", []string{"inspect-internal", "dump-tree", "-t", "root", first}, func(b []byte) error {
		t, err := parse.DumpTreeRoot(b)
		bf.Tree = t
		return err
	})
	p.async("the btrfs block group profiles of "+first, "btrfs", []string{"inspect-internal", "dump-tree", "-t", "chunk", first}, func(b []byte) error {
		c, err := parse.DumpTreeChunk(b)
		bf.Profiles = c
		return err
	})
	if bf.Mount != "" {
		p.async("the btrfs subvolume list of "+bf.Mount, "btrfs", []string{"subvolume", "list", bf.Mount}, func(b []byte) error {
			s, err := parse.SubvolumeList(b)
			bf.Subvols = s
			return err
		})
	}
}

// boot looks at how the system boots: firmware, ESP contents, GRUB's
// directories, the boot code in each disk's MBR, EFI boot entries.
func (p *prober) boot() {
	f := p.f
	b := &f.Boot
	b.GrubPC = p.exists(under(p.root, "/boot/grub/i386-pc"))
	b.GrubEFI = p.exists(under(p.root, "/boot/grub/x86_64-efi"))
	b.LoaderDir = p.exists(under(p.root, "/boot/loader/entries")) || p.exists(under(p.root, "/efi/loader/entries"))
	if g := f.GrubDefault; g != nil {
		b.GrubTimeout = g["GRUB_TIMEOUT"]
	}
	// The ESP: where a vfat filesystem with the ESP type is mounted.
	for _, esp := range p.espMounts() {
		dirs, err := p.o.FS.ReadDir(path.Join(esp, "EFI"))
		if err != nil {
			continue
		}
		b.ESPMount = esp
		for _, d := range dirs {
			b.ESPDirs = append(b.ESPDirs, d)
			low := strings.ToLower(d)
			switch {
			case low == "systemd":
				b.SystemdBoot = p.exists(path.Join(esp, "EFI", d, "systemd-bootx64.efi"))
			case low == "boot":
				if head, err := p.o.FS.ReadAt(path.Join(esp, "EFI", d, "BOOTX64.EFI"), 0, 2<<20); err == nil {
					switch {
					case bytes.Contains(head, []byte("systemd-boot")):
						b.Fallback = "systemd-boot"
					case bytes.Contains(head, []byte("GRUB")) || bytes.Contains(head, []byte("shim")):
						b.Fallback = "grub"
					default:
						b.Fallback = "other"
					}
				}
			default:
				if p.exists(path.Join(esp, "EFI", d, "grubx64.efi")) || p.exists(path.Join(esp, "EFI", d, "shimx64.efi")) {
					b.GrubEFIIDs = append(b.GrubEFIIDs, d)
				}
			}
		}
		if lc, ok := p.read(path.Join(esp, "loader", "loader.conf")); ok {
			f.LoaderConf = map[string]string{}
			for _, l := range strings.Split(string(lc), "\n") {
				if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok && !strings.HasPrefix(k, "#") {
					f.LoaderConf[k] = strings.TrimSpace(v)
				}
			}
			b.LoaderTimeout = f.LoaderConf["timeout"]
		}
		break
	}
	if !f.UEFI || b.GrubPC {
		for _, d := range f.Blocks {
			head, err := p.o.FS.ReadAt(d.Path, 0, 512)
			if err == nil && len(head) == 512 && parse.MBRBootCode(head) == "grub" {
				b.MBRGrub = append(b.MBRGrub, d.Path)
			}
		}
	}
	if f.UEFI {
		p.async("the EFI boot entries", "efibootmgr", []string{"-v"}, func(out []byte) error {
			f.EFIBoot = parse.EfibootmgrV(out)
			return nil
		})
	}
}

// espMounts lists where the machine's ESP candidates can be read: on a
// running host their mount points; under --root, the fstab mount point
// below the root.
func (p *prober) espMounts() []string {
	var out []string
	if p.root == "/" {
		for _, m := range p.f.Mounts {
			if m.FSType == "vfat" {
				out = append(out, m.MountPoint)
			}
		}
		return out
	}
	for _, e := range p.f.Fstab {
		if e.VfsType == "vfat" {
			out = append(out, under(p.root, e.File))
		}
	}
	return out
}

// repoCandidates are the usual places of configuration working copies.
func (p *prober) repoCandidates() []string {
	c := []string{"/etc", "/usr/local/etc", "/root", "/root/.config", "/srv"}
	if homes, err := p.o.FS.ReadDir(under(p.root, "/home")); err == nil {
		for _, h := range homes {
			base := "/home/" + h
			c = append(c, base, base+"/.config", base+"/.dotfiles", base+"/dotfiles")
		}
	}
	return c
}

// repos finds git and svn working copies at the usual places.
func (p *prober) repos() {
	var users, groups map[int]parse.PasswdEntry
	if b, ok := p.read(under(p.root, "/etc/passwd")); ok {
		users = parse.Passwd(b)
	}
	if b, ok := p.read(under(p.root, "/etc/group")); ok {
		groups = parse.Passwd(b)
	}
	var mu sync.Mutex
	for _, dir := range p.repoCandidates() {
		abs := under(p.root, dir)
		isGit := p.exists(abs + "/.git")
		isSvn := !isGit && p.exists(abs+"/.svn")
		if !isGit && !isSvn {
			continue
		}
		r := RepoFacts{Path: dir}
		if st, err := p.o.FS.Stat(abs); err == nil {
			r.Owner, r.Group = nameOf(users, st.UID), nameOf(groups, st.GID)
			r.Mode = fmt.Sprintf("%04o", st.Mode)
		}
		add := func(r RepoFacts) {
			mu.Lock()
			p.f.Repos = append(p.f.Repos, r)
			mu.Unlock()
		}
		if isGit {
			r.Type = "git"
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				out, err := p.run("git", []string{"-C", abs, "status", "--porcelain=v2", "--branch"})
				if err != nil {
					p.problem("", "git working copy %s not captured: %v", dir, shortErr(err))
					return
				}
				st, err := parse.GitStatusV2(out)
				if err != nil {
					p.problem("", "git working copy %s not captured: %v", dir, err)
					return
				}
				r.Revision, r.Changed, r.Untracked = st.OID, st.Changed, st.Untracked
				if st.Head != "(detached)" {
					r.Branch = st.Head
				}
				remote := "origin"
				if st.Upstream != "" {
					rm, br, _ := strings.Cut(st.Upstream, "/")
					remote, r.Branch = rm, br
				}
				if u, err := p.run("git", []string{"-C", abs, "remote", "get-url", remote}); err == nil {
					r.URL = strings.TrimSpace(string(u))
				}
				add(r)
			}()
			continue
		}
		r.Type = "svn"
		p.async("svn working copy "+dir, "svn", []string{"info", abs}, func(out []byte) error {
			s, err := parse.SvnInfoText(out)
			if err != nil {
				return err
			}
			r.URL, r.Branch, r.Revision = s.Root, s.Branch(), s.Revision
			if s.Root == "" {
				r.URL = s.URL
			}
			add(r)
			return nil
		})
	}
}

func nameOf(m map[int]parse.PasswdEntry, id int) string {
	if e, ok := m[id]; ok {
		return e.Name
	}
	return fmt.Sprint(id)
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
