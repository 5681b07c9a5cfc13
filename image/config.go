package image

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Bootloader configurations are rendered by pure functions so that tests can
// compare them as text, and so every boot path gets the same command lines.

// entry is one boot menu entry.
type entry struct {
	label, title, cmdline string
}

// menu returns the two entries every medium offers: strata with its output
// on the serial line (default, what unattended and headless machines need)
// and the same with the console on the screen.
func menu(appendArgs string) []entry {
	return []entry{
		{"strata", "strata live", joinArgs(BaseAppend, appendArgs)},
		{"screen", "strata live (console on screen)", joinArgs(screenAppend, appendArgs)},
	}
}

func joinArgs(parts ...string) string {
	var out []string
	for _, p := range parts {
		out = append(out, strings.Fields(p)...)
	}
	return strings.Join(out, " ")
}

// checkAppend refuses characters that one of GRUB, syslinux or iPXE would
// interpret instead of passing to the kernel, rather than quoting them three
// different ways.
func checkAppend(s string) error {
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r < ' ' && r != '\t' || r == 0x7f || strings.ContainsRune("\"'\\$;{}`", r)
	}); i >= 0 {
		return fmt.Errorf("kernel command line %q: character %q is not allowed (it means something to GRUB, syslinux or iPXE)", s, s[i])
	}
	return nil
}

// grubConfig is /boot/grub/grub.cfg on USB and ISO: the UEFI menu. $root is
// the medium, set by the embedded config (grubEmbedded) before it loads this.
func grubConfig(appendArgs string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# strata live medium: UEFI boot menu (GRUB). BIOS boots read syslinux.cfg/isolinux.cfg.
# Edit the "linux" lines to change the kernel command line on this medium.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set default=0
set timeout=%d
set timeout_style=menu
`, menuTimeoutSec)
	for _, e := range menu(appendArgs) {
		fmt.Fprintf(&b, "\nmenuentry %q {\n\tlinux /%s %s\n\tinitrd /%s\n}\n", e.title, KernelPath, e.cmdline, InitrdPath)
	}
	return b.String()
}

// grubEmbedded is the config inside the standalone GRUB (its memdisk). It
// finds the medium by the per-build marker file, then loads the medium's own
// grub.cfg, which users can edit on a stick.
func grubEmbedded(marker string) string {
	return fmt.Sprintf(`insmod part_gpt
insmod part_msdos
insmod fat
insmod iso9660
insmod search_fs_file
insmod all_video
set strata_medium=
search --no-floppy --file --set=strata_medium /%[1]s
if [ -n "$strata_medium" ]; then
	set root=$strata_medium
	configfile /boot/grub/grub.cfg
fi
echo "strata: no medium with /%[1]s found; it is on the stick or CD this GRUB came from"
`, marker)
}

// grubEFIModules are the modules the standalone GRUB carries (plus their
// dependencies): just enough to read GPT/MBR, FAT and ISO9660, show a menu on
// screen and serial, and boot Linux.
var grubEFIModules = []string{
	"normal", "configfile", "linux", "echo", "test", "search", "search_fs_file",
	"search_label", "part_gpt", "part_msdos", "fat", "iso9660", "all_video",
	"serial", "terminal", "ls", "cat", "halt", "reboot", "sleep",
}

// syslinuxConfig is syslinux.cfg (USB) and isolinux.cfg (ISO): the BIOS menu.
// Plain syslinux prompt, so no menu modules beyond ldlinux.c32 are needed.
func syslinuxConfig(appendArgs string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `SERIAL 0 115200
# strata live medium: BIOS boot menu (syslinux). UEFI boots read /boot/grub/grub.cfg.
# Edit the APPEND lines to change the kernel command line on this medium.
PROMPT 1
TIMEOUT %d
DEFAULT strata
SAY strata live: booting "strata" in %d s; type "screen" and Enter for the console on the screen.
`, menuTimeoutSec*10, menuTimeoutSec)
	for _, e := range menu(appendArgs) {
		fmt.Fprintf(&b, "\nLABEL %s\n  MENU LABEL %s\n  LINUX /%s\n  INITRD /%s\n  APPEND %s\n", e.label, e.title, KernelPath, InitrdPath, e.cmdline)
	}
	return b.String()
}

// ipxeScript is boot.ipxe, the PXE entry point. It chains the machine's host
// file, hosts/<mac>.ipxe, which may set ${profile} and ${extra}; paths are
// relative, so the bundle works over TFTP and HTTP, at any directory.
func ipxeScript(appendArgs string) string {
	return fmt.Sprintf(`#!ipxe
# strata PXE entry. A machine's settings live in hosts/<mac>.ipxe, named by its
# MAC address in lower case with dashes, e.g. hosts/52-54-00-12-34-56.ipxe:
#   #!ipxe
#   set profile laptop
#   set extra strata.disk=auto strata.yes
# Without one, strata boots without a profile. See docs/pxe.md.
# (Names of our own settings are prefixed: iPXE owns "mac", "filename", ...)
set strata-mac ${netX/mac:hexhyp}
chain --autofree hosts/${strata-mac}.ipxe || echo strata: no hosts/${strata-mac}.ipxe, booting without a profile
set strata-args %[1]s BOOTIF=01-${strata-mac}
isset ${profile} && set strata-args ${strata-args} strata.profile=${profile} ||
isset ${extra} && set strata-args ${strata-args} ${extra} ||
echo strata: kernel ${strata-args}
kernel %[2]s initrd=initrd.img ${strata-args}
initrd %[3]s
boot
`, joinArgs(BaseAppend, appendArgs), KernelPath, InitrdPath)
}

// ipxeHost is hosts/<mac>.ipxe for one machine.
func ipxeHost(h Host) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	if h.Profile != "" {
		fmt.Fprintf(&b, "set profile %s\n", h.Profile)
	}
	if a := joinArgs(h.Append); a != "" {
		fmt.Fprintf(&b, "set extra %s\n", a)
	}
	return b.String()
}

// grubNetEmbedded is the config inside the GRUB network loaders. A
// standalone GRUB does not configure the network by itself, so it asks DHCP
// again (net_bootp) and takes the TFTP server and its own boot file name
// from the reply: the bundle is the directory above grub/. card is the
// network driver module: efinet (UEFI) or pxe (BIOS).
func grubNetEmbedded(card string) string {
	return fmt.Sprintf(`insmod %s
insmod all_video
insmod regexp
insmod eval
insmod tftp
net_bootp
set strata_bf=
for c in pxe efinet0 efinet1 efinet2 efinet3 efinet4 efinet5 efinet6 efinet7; do
	eval "set strata_bf=\$net_${c}_dhcp_boot_file"
	if [ -n "$strata_bf" ]; then
		eval "set strata_srv=\$net_${c}_dhcp_next_server"
		eval "set strata_mac=\$net_${c}_dhcp_mac"
		break
	fi
done
set strata_dir=
regexp --set=1:strata_dir '^/?(.*)/grub/[^/]*$' "$strata_bf"
if [ -n "$strata_dir" ]; then
	set strata="(tftp,$strata_srv)/$strata_dir"
else
	set strata="(tftp,$strata_srv)"
fi
export strata
export strata_mac
echo "strata: bundle at $strata, MAC $strata_mac"
configfile "$strata/grub/grub.cfg"
`, card)
}

// grubNetConfig is grub/grub.cfg in the PXE bundle, for GRUB network boot
// (grub/bootx64.efi, grub/core.0). $strata (the bundle) and $strata_mac come
// from grubNetEmbedded. GRUB has no per-MAC lookup of its own, so the MAC is
// rewritten with dashes and hosts/<mac>.cfg sourced.
func grubNetConfig(appendArgs string) string {
	return fmt.Sprintf(`# strata PXE: GRUB network boot config. A machine's settings live in
# hosts/<mac>.cfg (dashes, lower case), e.g. hosts/52-54-00-12-34-56.cfg:
#   set profile=laptop
#   set extra="strata.disk=auto strata.yes"
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set profile=
set extra=
regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 '^(..):(..):(..):(..):(..):(..)$' "$strata_mac"
set mac="${m1}-${m2}-${m3}-${m4}-${m5}-${m6}"
# [ -f ] cannot see files over TFTP; a failed source is the test instead.
set found=
if source "$strata/hosts/${mac}.cfg"; then set found=yes; fi
if [ -z "$found" ]; then echo "strata: no hosts/${mac}.cfg, booting without a profile"; fi
set args="%[1]s BOOTIF=01-${mac}"
if [ -n "$profile" ]; then set args="$args strata.profile=$profile"; fi
if [ -n "$extra" ]; then set args="$args $extra"; fi
echo "strata: kernel $args"
linux "$strata/%[2]s" $args
initrd "$strata/%[3]s"
boot
`, joinArgs(BaseAppend, appendArgs), KernelPath, InitrdPath)
}

// grubHost is hosts/<mac>.cfg for one machine.
func grubHost(h Host) string {
	var b strings.Builder
	if h.Profile != "" {
		fmt.Fprintf(&b, "set profile=%s\n", h.Profile)
	}
	if a := joinArgs(h.Append); a != "" {
		fmt.Fprintf(&b, "set extra=\"%s\"\n", a)
	}
	return b.String()
}

var profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// hostFileName normalises a MAC address to the dashed lower-case form that
// iPXE's ${netX/mac:hexhyp} produces.
func hostFileName(mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("host %q: %w", mac, err)
	}
	parts := make([]string, len(hw))
	for i, c := range hw {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, "-"), nil
}

func checkHost(h Host) error {
	if _, err := hostFileName(h.MAC); err != nil {
		return err
	}
	if h.Profile != "" && !profileName.MatchString(h.Profile) {
		return fmt.Errorf("host %s: profile name %q: use letters, digits, '.', '_' and '-'", h.MAC, h.Profile)
	}
	if err := checkAppend(h.Append); err != nil {
		return fmt.Errorf("host %s: %w", h.MAC, err)
	}
	return nil
}
