package capture

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

func dmi(vendor, product, serial string) profile.DMIMatch {
	return profile.DMIMatch{Vendor: vendor, Product: product, Serial: serial}
}

var hostLabel = regexp.MustCompile(`[^a-z0-9-]+`)

func (b *builder) host() {
	name := strings.ToLower(strings.TrimSpace(b.f.Hostname))
	name, _, _ = strings.Cut(name, ".") // the profile names the host, not its domain
	clean := strings.Trim(hostLabel.ReplaceAllString(name, "-"), "-")
	if len(clean) > 63 {
		clean = clean[:63]
	}
	if clean == "" {
		clean = "host"
		if len(b.f.Only) == 0 {
			b.note("host.name", "the host name could not be read: set it")
		}
	} else if clean != name {
		b.note("host.name", "the host name %q is not a DNS label: captured as %q", b.f.Hostname, clean)
	}
	b.p.Host.Name = clean
	if len(b.f.MACs) > 0 || b.f.DMI != (profile.DMIMatch{}) {
		m := &profile.HostMatch{MAC: b.f.MACs}
		if b.f.DMI != (profile.DMIMatch{}) {
			d := b.f.DMI
			m.DMI = &d
		}
		b.p.Host.Match = m
	}
}

// ---- bootloader ----

// cmdlineDrop are the kernel parameters the restored system's own tools add.
var cmdlineDrop = []string{"BOOT_IMAGE=", "root=", "initrd=", "rootfstype=", "rootflags=", "resume=", "cryptdevice=", "cryptkey=",
	"rd.luks", "rd.lvm", "rd.md", "luks.", "rd.auto"}

func (b *builder) bootloader() {
	f, bt := b.f, b.f.Boot
	bl := &profile.Bootloader{}
	switch {
	case f.UEFI && bt.SystemdBoot && (bt.LoaderDir || len(bt.GrubEFIIDs) == 0):
		bl.Type = "systemd-boot"
		bl.Removable = bt.Fallback == "systemd-boot"
	case f.UEFI && (len(bt.GrubEFIIDs) > 0 || bt.GrubEFI):
		bl.Type = "grub-efi"
		if len(bt.GrubEFIIDs) > 0 {
			bl.ID = bt.GrubEFIIDs[0]
			if len(bt.GrubEFIIDs) > 1 {
				b.note("bootloader.id", "the ESP has GRUB in %s: captured %s", strings.Join(bt.GrubEFIIDs, ", "), bl.ID)
			}
		}
		bl.Removable = bt.Fallback == "grub"
	case bt.GrubPC || len(bt.MBRGrub) > 0:
		bl.Type = "grub-bios"
		if f.UEFI {
			b.note("bootloader", "the machine booted through UEFI but only GRUB for BIOS was found")
		}
		for _, d := range bt.MBRGrub {
			if r := b.diskNames[d]; r != "" {
				bl.Disks = append(bl.Disks, r)
			}
		}
	default:
		what := "BIOS"
		if f.UEFI {
			what = "UEFI"
			if bt.ESPMount == "" {
				what += " (the ESP is not mounted, so its contents could not be read)"
			}
		}
		b.note("", "no bootloader recognised (booted through %s): bootloader not captured", what)
		return
	}
	if bt.ESPMount == "" && bl.Type != "grub-bios" {
		b.note("bootloader", "the ESP could not be read: the loader and fallback path are guessed from /boot")
	}
	if bl.Type == "grub-bios" {
		for _, d := range b.p.Disks {
			if d.Table == "gpt" && !hasBIOSBoot(d) {
				b.note("bootloader", "GRUB for BIOS on GPT disk %s without a bios-boot partition", d.Name)
			}
		}
	}
	// Kernel command line, without what the restored system's tools add.
	var words []string
	resumeCaptured := false
	for _, fs := range b.p.Filesystems {
		resumeCaptured = resumeCaptured || fs.Swap != nil && fs.Swap.Resume
	}
	for _, w := range parse.Cmdline(f.Cmdline) {
		drop := false
		for _, d := range cmdlineDrop {
			if strings.HasPrefix(w, d) && !(d == "resume=" && !resumeCaptured) {
				drop = true
			}
		}
		if w == "ro" && strings.HasPrefix(bl.Type, "grub") {
			drop = true // grub-mkconfig adds it
		}
		if !drop {
			words = append(words, w)
		}
	}
	bl.Cmdline = strings.Join(words, " ")
	if bl.Cmdline != "" && f.CmdlineSource != "" {
		b.note("bootloader.cmdline", "from %s", f.CmdlineSource)
	}
	t := bt.GrubTimeout
	if bl.Type == "systemd-boot" {
		t = bt.LoaderTimeout
	}
	if n, err := strconv.Atoi(strings.TrimSpace(t)); err == nil && n >= 0 {
		bl.Timeout = &n
	}
	// Further EFI boot entries: ones that start a file on a captured
	// partition, other than what the bootloader installs itself.
	if f.EFIBoot != nil {
		own := strings.ToLower(`\EFI\` + or(bl.ID, "debian") + `\`)
		for _, e := range f.EFIBoot.Entries {
			if e.PartUUID == "" || e.Loader == "" {
				continue
			}
			low := strings.ToLower(e.Loader)
			if strings.HasPrefix(low, own) || strings.HasPrefix(low, `\efi\boot\`) || strings.HasPrefix(low, `\efi\systemd\`) {
				continue
			}
			if b.partByUUID(e.PartUUID) == "" {
				continue
			}
			bl.EFIEntries = append(bl.EFIEntries, profile.EFIEntry{Label: e.Label, Loader: e.Loader})
		}
	}
	b.p.Bootloader = bl
}

func (b *builder) partByUUID(u string) string {
	for _, d := range b.p.Disks {
		for _, pt := range d.Partitions {
			if strings.EqualFold(pt.UUID, u) {
				return d.Name + "/" + pt.Name
			}
		}
	}
	return ""
}

func hasBIOSBoot(d profile.Disk) bool {
	for _, pt := range d.Partitions {
		if pt.Type == "bios-boot" {
			return true
		}
	}
	return false
}

// ---- system ----

// ZeroSHA256 marks an image checksum capture cannot know.
const ZeroSHA256 = "0000000000000000000000000000000000000000000000000000000000000000"

func (b *builder) system() {
	f := b.f
	s := &profile.System{}
	id, ver := f.OSRelease["ID"], f.OSRelease["VERSION_ID"]
	if id != "" {
		s.Distribution = id
		if ver != "" {
			s.Distribution += "-" + strings.SplitN(ver, ".", 2)[0]
		}
	}
	img := "images/" + or(s.Distribution, "system") + ".tar.zst"
	s.Image = profile.Image{URL: img, SHA256: ZeroSHA256}
	b.note("system.image", "the base system image is not on this machine: point url at your image and set its sha256")
	switch f.PackageManager {
	case "apt":
		s.PackageManager = "apt"
		s.Packages = f.Packages
	case "":
		b.note("system", "no package manager recognised: package list not captured")
	default:
		s.PackageManager = f.PackageManager
		b.note("system.packages", "the package list of %s is not captured yet (only apt's)", f.PackageManager)
	}
	b.p.System = s
}

// ---- repositories ----

func (b *builder) repos() {
	names := map[string]bool{}
	for _, r := range b.f.Repos {
		name := strings.Trim(strings.ReplaceAll(strings.TrimPrefix(r.Path, "/"), "/", "-"), "-.")
		name = strings.TrimPrefix(name, "home-")
		if name == "" {
			name = "root"
		}
		for base, i := name, 2; names[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if r.URL == "" {
			b.note("repos", "%s is a %s working copy without a remote: not captured (nothing to check it out from)", r.Path, r.Type)
			continue
		}
		u := repoURL(r.URL)
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" {
			b.note("repos", "%s: remote %q is not a URL restore can fetch: not captured", r.Path, r.URL)
			continue
		}
		names[name] = true
		x := profile.Repo{Name: name, Type: r.Type, URL: u, Branch: r.Branch, Revision: r.Revision, Path: path.Clean(r.Path)}
		if r.Owner != "root" && r.Owner != "0" {
			x.Owner = r.Owner
		}
		if r.Group != "root" && r.Group != "0" {
			x.Group = r.Group
		}
		if r.Mode != "" && r.Mode != "0755" {
			x.Mode = r.Mode
		}
		if r.Type == "git" && r.Revision == "(initial)" {
			b.note("repos", "%s has no commit yet: not captured", r.Path)
			continue
		}
		rp := "repos." + name
		if r.Changed > 0 {
			b.note(rp, "%d file(s) with uncommitted changes: restore checks out revision %s without them", r.Changed, short(r.Revision))
		}
		b.p.Repos = append(b.p.Repos, x)
	}
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

var scpLike = regexp.MustCompile(`^([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):(.+)$`)

// repoURL turns git's scp-like remotes (git@host:repo.git) into ssh URLs.
func repoURL(u string) string {
	if strings.Contains(u, "://") || strings.HasPrefix(u, "/") {
		if strings.HasPrefix(u, "/") {
			return "file://" + u
		}
		return u
	}
	if m := scpLike.FindStringSubmatch(u); m != nil {
		return "ssh://" + m[1] + m[2] + "/" + strings.TrimPrefix(m[3], "/")
	}
	return u
}

// ensureValid makes sure the profile loads: what validation rejects is
// taken out again, with a note, rather than written wrong.
func (b *builder) ensureValid() {
	for round := 0; round < 4; round++ {
		err := b.p.Validate()
		if err == nil {
			return
		}
		errs, _ := err.(profile.Errors)
		fixed := false
		for _, e := range errs {
			switch {
			case strings.HasPrefix(e.Path, "bootloader") && b.p.Bootloader != nil:
				b.note("", "bootloader not captured: %s", e.Msg)
				b.p.Bootloader = nil
				fixed = true
			case e.Path == "filesystems" && strings.Contains(e.Msg, "nothing is mounted at /") && b.p.System != nil:
				b.note("", "system not captured: no captured filesystem is mounted at /")
				b.p.System = nil
				fixed = true
			case strings.HasPrefix(e.Path, "repos."):
				name := strings.SplitN(strings.TrimPrefix(e.Path, "repos."), ".", 2)[0]
				for i, r := range b.p.Repos {
					if r.Name == name {
						b.note("repos", "%s not captured: %s", r.Path, e.Msg)
						b.p.Repos = append(b.p.Repos[:i], b.p.Repos[i+1:]...)
						fixed = true
						break
					}
				}
			}
		}
		if !fixed {
			for _, e := range errs {
				b.note(e.Path, "INVALID: %s (a capture bug: please report it)", e.Msg)
			}
			return
		}
	}
}
