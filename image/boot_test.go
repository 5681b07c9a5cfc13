package image

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratahq/strata/initramfs"
	"github.com/stratahq/strata/qemu-tests/vm"
)

// Boot tests: each artefact boots under QEMU (TCG) on SeaBIOS and OVMF until
// the live system prints STRATA READY, and the kernel command line shows
// that --append and (for PXE) the per-MAC host file made it through.

const (
	// bootMarker stands for the user's --append; not strata.*, which the
	// live system checks (and refuses unknown names of).
	bootMarker = "imagetest=boot-check"
	testMAC    = "52:54:00:5e:1a:01"
	bootWait   = 240 * time.Second // TCG boots take 25-60 s; a host busy with other guests doubles that
)

// artefacts are built once per test binary and shared by the boot tests.
type artefacts struct {
	dir, usb, iso, pxe string
	kernelSize         int64
}

var (
	artOnce sync.Once
	art     artefacts
	artErr  error
)

func buildArtefacts(t *testing.T) artefacts {
	t.Helper()
	needTools(t, "grub-mkstandalone", "syslinux", "qemu-system-x86_64")
	kernel, initrd := liveSystem(t)
	artOnce.Do(func() {
		dir, err := sharedTempDir("strata-image-boot-")
		if err != nil {
			artErr = err
			return
		}
		o := Options{Kernel: kernel, Initrd: initrd, Append: bootMarker, Out: dir,
			Hosts: []Host{{MAC: testMAC, Profile: "drill", Append: "strata.disk=auto"}}}
		ctx := context.Background()
		if artErr = USB(ctx, o); artErr != nil {
			return
		}
		if artErr = ISO(ctx, o); artErr != nil {
			return
		}
		o.Out = filepath.Join(dir, "pxe")
		if artErr = PXE(ctx, o); artErr != nil {
			return
		}
		art = artefacts{dir: dir, usb: filepath.Join(dir, USBFile), iso: filepath.Join(dir, ISOFile), pxe: o.Out}
	})
	if artErr != nil {
		t.Fatalf("build artefacts: %v", artErr)
	}
	return art
}

// liveSystem returns the kernel and initramfs the boot tests boot: the real
// live system, built (or reused from the cache) by initramfs.Build;
// $STRATA_TEST_KERNEL and $STRATA_TEST_INITRD override it, and
// STRATA_TEST_INITRD=marker boots the tiny busybox initramfs instead.
func liveSystem(t testing.TB) (kernel, initrd string) {
	t.Helper()
	switch p := os.Getenv("STRATA_TEST_INITRD"); p {
	case "":
	case "marker":
		return testKernel(t), markerInitrd(t)
	default:
		return testKernel(t), p
	}
	liveOnce.Do(func() {
		dir, err := sharedTempDir("strata-image-live-")
		if err != nil {
			liveErr = err
			return
		}
		t.Logf("building the live kernel and initramfs (initramfs.Build)")
		res, err := initramfs.Build(context.Background(), initramfs.Options{Out: dir})
		liveKernel, liveInitrd, liveErr = res.Kernel, res.Initramfs, err
	})
	if liveErr != nil {
		t.Fatalf("build the live system: %v", liveErr)
	}
	return liveKernel, liveInitrd
}

var (
	liveOnce               sync.Once
	liveKernel, liveInitrd string
	liveErr                error
)

func skipBoots(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping QEMU boot in -short mode")
	}
	if os.Getenv("STRATA_SKIP_QEMU") != "" {
		t.Skip("skipping QEMU boot: STRATA_SKIP_QEMU is set")
	}
}

// bootAndCheck starts cfg and waits for the kernel command line and READY.
func bootAndCheck(t *testing.T, cfg vm.Config, wantCmdline ...string) {
	t.Helper()
	bootAndCheckAbsent(t, cfg, wantCmdline, nil)
}

// bootAndCheckAbsent is bootAndCheck that also wants some arguments absent.
func bootAndCheckAbsent(t *testing.T, cfg vm.Config, wantCmdline, absent []string) {
	t.Helper()
	cfg.MemoryMB = 1024
	cfg.Timeout = bootWait + 30*time.Second
	v := vm.StartT(t, cfg)
	start := time.Now() // after the start, which may have waited for a VM slot
	m, err := v.Expect(`Kernel command line: ([^\r\n]*)\r?\n`, bootWait)
	if err != nil {
		t.Fatalf("no kernel command line: %v", err)
	}
	for _, w := range append([]string{bootMarker}, wantCmdline...) {
		if !regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(w) + `(\s|$)`).MatchString(m[1]) {
			t.Errorf("kernel command line %q lacks %q", m[1], w)
		}
	}
	for _, w := range absent {
		if regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(w) + `(\s|$)`).MatchString(m[1]) {
			t.Errorf("kernel command line %q has %q", m[1], w)
		}
	}
	if _, err := v.Expect(`STRATA READY`, bootWait-time.Since(start)); err != nil {
		t.Fatalf("live system not ready: %v", err)
	}
	ready := time.Since(start)
	if os.Getenv("STRATA_TEST_INITRD") != "marker" {
		// The live system's inventory: the medium it booted from is a disk
		// it can see, the NIC it booted over one it has a driver for.
		m, err := v.Expect(`summary: (\d+) disks, (\d+) nics`, 60*time.Second)
		if err != nil {
			t.Fatalf("no inventory summary from the live system: %v", err)
		}
		if cfg.CDROM == "" && len(cfg.Disks) > 0 && m[1] == "0" {
			t.Errorf("the live system sees no disk, not even the one it booted from: %q", m[0])
		}
		if len(cfg.ExtraArgs) > 0 && m[2] == "0" {
			t.Errorf("the live system sees no NIC, not even the one it booted over: %q", m[0])
		}
	}
	t.Logf("%s: STRATA READY after %.1f s", cfg.Name, ready.Seconds())
}

func TestBootUSB(t *testing.T) {
	skipBoots(t)
	for _, fw := range []vm.Firmware{vm.BIOS, vm.UEFI} {
		t.Run(fw.String(), func(t *testing.T) {
			t.Parallel()
			a := buildArtefacts(t)
			bootAndCheck(t, vm.Config{
				Name:     "image-usb-" + fw.String(),
				Firmware: fw,
				Disks:    []vm.Disk{{Path: a.usb, Interface: "usb", ReadOnly: true, Boot: true}},
			}, "console=ttyS0,115200n8")
		})
	}
}

// TestBootISO boots the ISO as a CD and, written to a disk, through the
// isohybrid MBR.
func TestBootISO(t *testing.T) {
	skipBoots(t)
	for _, fw := range []vm.Firmware{vm.BIOS, vm.UEFI} {
		for _, as := range []string{"cd", "disk"} {
			t.Run(as+"-"+fw.String(), func(t *testing.T) {
				t.Parallel()
				a := buildArtefacts(t)
				cfg := vm.Config{Name: "image-iso-" + as + "-" + fw.String(), Firmware: fw}
				if as == "cd" {
					cfg.CDROM = a.iso
				} else {
					cfg.Disks = []vm.Disk{{Path: a.iso, Interface: "usb", ReadOnly: true, Boot: true}}
				}
				bootAndCheck(t, cfg, "console=ttyS0,115200n8")
			})
		}
	}
}

// TestBootPXE boots the bundle over QEMU's user network: iPXE (QEMU's PXE
// ROM) running boot.ipxe over HTTP (as docs/pxe.md recommends) and over
// TFTP, for a machine with a host file and one without, and GRUB's network
// loaders over TFTP, on OVMF's own PXE and chained from iPXE.
func TestBootPXE(t *testing.T) {
	skipBoots(t)
	a := buildArtefacts(t)
	// The guest reaches the host's loopback as 10.0.2.2.
	srv := httptest.NewServer(http.FileServer(http.Dir(a.pxe)))
	t.Cleanup(srv.Close)
	viaHTTP := "http://10.0.2.2:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:] + "/" + PXEScript

	withHost := []string{"strata.profile=drill", "strata.disk=auto", "BOOTIF=01-52-54-00-5e-1a-01"}
	cases := []struct {
		name     string
		fw       vm.Firmware
		bootFile string
		mac      string
		rom      string // ",romfile=" disables iPXE: OVMF's own PXE loads GRUB
		want     []string
		absent   []string
	}{
		{"ipxe-http-bios", vm.BIOS, viaHTTP, testMAC, "", withHost, nil},
		{"ipxe-http-uefi", vm.UEFI, viaHTTP, testMAC, "", withHost, nil},
		{"ipxe-tftp-nohost-uefi", vm.UEFI, PXEScript, "52:54:00:5e:1a:02", "", []string{"BOOTIF=01-52-54-00-5e-1a-02"}, []string{"strata.profile=drill"}},
		{"grub-tftp-uefi", vm.UEFI, PXEGRUBEFI, testMAC, ",romfile=", withHost, nil},
		{"grub-tftp-bios", vm.BIOS, PXEGRUBBIOS, testMAC, "", withHost, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := vm.Config{Name: "image-pxe-" + c.name, Firmware: c.fw}
			// The harness's Net has no romfile option, so the NIC is spelled out.
			cfg.ExtraArgs = []string{
				"-netdev", "user,id=pxe0,tftp=" + a.pxe + ",bootfile=" + c.bootFile,
				"-device", "virtio-net-pci,netdev=pxe0,bootindex=0,mac=" + c.mac + c.rom,
			}
			bootAndCheckAbsent(t, cfg, c.want, c.absent)
		})
	}
}
