package image

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestMenuCommandLines(t *testing.T) {
	m := menu("  strata.server=http://10.0.2.2:8080   strata.yes ")
	if len(m) != 2 {
		t.Fatalf("menu has %d entries, want 2", len(m))
	}
	// The default entry makes the serial line /dev/console (the last
	// console=), the screen entry the screen; both keep the user's arguments.
	if want := "console=tty0 console=ttyS0,115200n8 strata.server=http://10.0.2.2:8080 strata.yes"; m[0].cmdline != want {
		t.Errorf("default entry: %q, want %q", m[0].cmdline, want)
	}
	if want := "console=ttyS0,115200n8 console=tty0 strata.server=http://10.0.2.2:8080 strata.yes"; m[1].cmdline != want {
		t.Errorf("screen entry: %q, want %q", m[1].cmdline, want)
	}
}

func TestConfigsCarryAppend(t *testing.T) {
	const a = "strata.profile=web1 quiet"
	for name, cfg := range map[string]string{
		"grub":     grubConfig(a),
		"syslinux": syslinuxConfig(a),
		"ipxe":     ipxeScript(a),
		"grub-net": grubNetConfig(a),
	} {
		if !strings.Contains(cfg, "console=tty0 console=ttyS0,115200n8 "+a) {
			t.Errorf("%s config lacks the default command line with the appended arguments:\n%s", name, cfg)
		}
	}
	if got := strings.Count(grubConfig(a), "menuentry "); got != 2 {
		t.Errorf("grub.cfg has %d entries, want 2", got)
	}
	if !strings.HasPrefix(syslinuxConfig(a), "SERIAL 0 115200\n") {
		t.Error("syslinux.cfg must start with SERIAL, or syslinux ignores it")
	}
	for _, want := range []string{"LINUX /live/vmlinuz", "INITRD /live/initrd.img", "DEFAULT strata", "TIMEOUT 30"} {
		if !strings.Contains(syslinuxConfig(a), want) {
			t.Errorf("syslinux.cfg lacks %q", want)
		}
	}
	if !strings.HasPrefix(ipxeScript(a), "#!ipxe\n") {
		t.Error("boot.ipxe must start with #!ipxe")
	}
}

func TestGRUBEmbeddedFindsMarker(t *testing.T) {
	cfg := grubEmbedded("live/strata-0123456789ab")
	for _, want := range []string{
		"search --no-floppy --file --set=strata_medium /live/strata-0123456789ab",
		"configfile /boot/grub/grub.cfg",
		"insmod iso9660", "insmod fat",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("embedded grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	// Without the guard, a failed search leaves root=memdisk and configfile
	// loads the embedded config again, forever.
	if !strings.Contains(cfg, `if [ -n "$strata_medium" ]`) {
		t.Error("embedded grub.cfg loads grub.cfg without checking the search worked")
	}
}

func TestCheckAppend(t *testing.T) {
	for _, ok := range []string{"", "strata.server=http://10.0.2.2:8080/x?a=b strata.yes", "ip=dhcp rd.break", "a=b,c:d"} {
		if err := checkAppend(ok); err != nil {
			t.Errorf("checkAppend(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"a=${x}", "a;reboot", `a="b c"`, "a'b", "a\nb", `a\b`, "a`b`"} {
		if err := checkAppend(bad); err == nil {
			t.Errorf("checkAppend(%q) accepted it", bad)
		}
	}
}

func TestHosts(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:12:34:56": "52-54-00-12-34-56",
		"52-54-00-AB-CD-EF": "52-54-00-ab-cd-ef",
		"5254.00ab.cdef":    "52-54-00-ab-cd-ef",
	} {
		got, err := hostFileName(in)
		if err != nil || got != want {
			t.Errorf("hostFileName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := hostFileName("52:54:00"); err == nil {
		t.Error("hostFileName accepted a short MAC")
	}
	h := Host{MAC: "52:54:00:12:34:56", Profile: "web1", Append: "strata.disk=auto  strata.yes"}
	if err := checkHost(h); err != nil {
		t.Fatal(err)
	}
	if got, want := ipxeHost(h), "#!ipxe\nset profile web1\nset extra strata.disk=auto strata.yes\n"; got != want {
		t.Errorf("ipxeHost = %q, want %q", got, want)
	}
	if got, want := grubHost(h), "set profile=web1\nset extra=\"strata.disk=auto strata.yes\"\n"; got != want {
		t.Errorf("grubHost = %q, want %q", got, want)
	}
	for _, bad := range []Host{
		{MAC: "nope"},
		{MAC: "52:54:00:12:34:56", Profile: "a b"},
		{MAC: "52:54:00:12:34:56", Profile: "../x"},
		{MAC: "52:54:00:12:34:56", Append: "x=${y}"},
	} {
		if err := checkHost(bad); err == nil {
			t.Errorf("checkHost(%+v) accepted it", bad)
		}
	}
}

func TestIsohybridMBR(t *testing.T) {
	code := make([]byte, 432)
	for i := range code {
		code[i] = byte(i)
	}
	m := isohybridMBR(code, 543, 120, 2048, 22528, 0xdeadbeef)
	if string(m[:432]) != string(code) {
		t.Error("boot code not copied")
	}
	if got := binary.LittleEndian.Uint32(m[432:436]); got != 543*4 {
		t.Errorf("isolinux.bin LBA at 432 = %d, want %d (512-byte sectors)", got, 543*4)
	}
	if got := binary.LittleEndian.Uint32(m[440:444]); got != 0xdeadbeef {
		t.Errorf("disk signature %#x", got)
	}
	p1, p2 := m[446:462], m[462:478]
	if p1[0] != 0x80 || p1[4] != 0x17 || binary.LittleEndian.Uint32(p1[8:12]) != 0 || binary.LittleEndian.Uint32(p1[12:16]) != 22528 {
		t.Errorf("partition 1 = % x, want bootable 0x17 from 0 for 22528 sectors", p1)
	}
	if p2[0] != 0 || p2[4] != 0xef || binary.LittleEndian.Uint32(p2[8:12]) != 120 || binary.LittleEndian.Uint32(p2[12:16]) != 2048 {
		t.Errorf("partition 2 = % x, want 0xef from 120 for 2048 sectors", p2)
	}
	if m[510] != 0x55 || m[511] != 0xaa {
		t.Error("no 55 AA signature")
	}
	// CHS of the last sector of partition 1 (22527) with 64 heads, 32 sectors:
	// cylinder 10, head 63, sector 32.
	if got := [3]byte{p1[5], p1[6], p1[7]}; got != [3]byte{63, 32, 10} {
		t.Errorf("end CHS % x", got)
	}
}

func TestCHS(t *testing.T) {
	for _, c := range []struct {
		lba  uint32
		want [3]byte
	}{
		{0, [3]byte{0, 1, 0}},
		{31, [3]byte{0, 32, 0}},
		{32, [3]byte{1, 1, 0}},
		{2048, [3]byte{0, 1, 1}},
		{2048 * 300, [3]byte{0, 1 | 1<<6, 300 & 0xff}},
		{2048 * 5000, [3]byte{63, 32 | 3<<6, 0xff}}, // past cylinder 1023: saturated
	} {
		if got := chs(c.lba); got != c.want {
			t.Errorf("chs(%d) = % x, want % x", c.lba, got, c.want)
		}
	}
}

func TestUSBSize(t *testing.T) {
	small := []file{{dst: "live/vmlinuz", size: 8 << 20}, {dst: "live/initrd.img", size: 30 << 20}}
	got, err := usbSize(small, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got%mib != 0 || got < 38*mib+headroom || got > 38*mib+headroom+8*mib {
		t.Errorf("default size for 38 MiB of content: %s", humanSize(got))
	}
	tiny := []file{{dst: "x", size: 1}}
	if got, _ := usbSize(tiny, 0); got != minESP+2*mib {
		t.Errorf("tiny content: %s, want the FAT32 minimum %s", humanSize(got), humanSize(minESP+2*mib))
	}
	if got, err := usbSize(small, 4*gib); err != nil || got != 4*gib {
		t.Errorf("--size 4G: %d, %v", got, err)
	}
	if _, err := usbSize(small, 30*mib); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("--size 30M for 38 MiB: %v", err)
	}
	if _, err := usbSize(small, 200*gib); err == nil {
		t.Error("--size 200G accepted beyond go-diskfs's FAT32 limit")
	}
}

func TestFAT32LayoutWorkaround(t *testing.T) {
	// 40 GiB - 2 MiB is a size go-diskfs lays out with a FAT one entry short
	// (syslinux crashed on it).
	bad := 40*gib - 2*mib
	if fat32LayoutOK(bad) {
		t.Fatal("fat32LayoutOK does not see the go-diskfs layout bug at 40 GiB")
	}
	n := espFitSectors(bad / 512)
	if !fat32LayoutOK(n*512) || n >= bad/512 || bad/512-n > 512 {
		t.Errorf("espFitSectors(%d) = %d", bad/512, n)
	}
	// Every size we might pick gets a good layout, a few sectors down at most.
	for size := minESP; size <= 2*gib; size += mib / 4 {
		if n := espFitSectors(size / 512); !fat32LayoutOK(n*512) || size/512-n > 512 {
			t.Fatalf("size %d: espFitSectors = %d", size, n)
		}
	}
}
