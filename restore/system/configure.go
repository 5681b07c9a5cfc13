package system

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/profile"
)

// Configure writes the host identity and the initramfs settings the profile
// implies, before the initramfs is regenerated: /etc/hostname, /etc/hosts,
// resume= for hibernation, and cryptsetup in the initramfs when the root
// stack has LUKS (the hook's autodetection cannot see through a chroot).
// uuid gives the real UUID on a device, as for KernelArgs.
func Configure(root string, p *profile.Profile, uuid func(device string) string) error {
	name := p.Host.Name
	short, _, _ := strings.Cut(name, ".")
	files := map[string]string{
		"etc/hostname": short + "\n",
	}
	hosts, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	files["etc/hosts"] = withHostLine(string(hosts), name, short)
	for _, f := range p.Filesystems {
		if f.Type == "swap" && f.Swap != nil && f.Swap.Resume {
			files["etc/initramfs-tools/conf.d/resume"] = "RESUME=UUID=" + uuid(f.Device) + "\n"
		}
	}
	if len(p.LUKS) > 0 {
		files["etc/cryptsetup-initramfs/conf-hook"] = "# Written by strata: the root stack has LUKS.\nCRYPTSETUP=y\n"
	}
	for _, rel := range sortedKeys(files) {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("configure target: %w", err)
		}
		if err := os.WriteFile(path, []byte(files[rel]), 0o644); err != nil {
			return fmt.Errorf("configure target: %w", err)
		}
	}
	return nil
}

// withHostLine makes 127.0.1.1 name the host, as Debian's installer does.
func withHostLine(hosts, name, short string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(hosts, "\n"), "\n") {
		if l == "" || strings.HasPrefix(strings.TrimSpace(l), "127.0.1.1") {
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		out = append(out, "127.0.0.1\tlocalhost", "::1\t\tlocalhost ip6-localhost ip6-loopback")
	}
	line := "127.0.1.1\t" + name
	if short != name {
		line += "\t" + short
	}
	return strings.Join(append(out, line), "\n") + "\n"
}
