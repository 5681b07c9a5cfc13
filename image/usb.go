package image

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/stratahq/strata/internal/run"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30

	espStart = mib // first partition at 1 MiB, the usual alignment
	// minESP keeps FAT32 at >= 65525 clusters (go-diskfs uses 512-byte
	// clusters up to 260 MB): with fewer, syslinux and strict firmware
	// decide by cluster count that the filesystem is FAT16 and fail.
	minESP = 40 * mib
	// maxUSB bounds --size: go-diskfs stores sectors-per-FAT in 16 bits,
	// which overflows a little above 256 GiB.
	maxUSB = 128 * gib
	// headroom is free space left on a default-sized stick for profiles
	// added later.
	headroom = 8 * mib
	// fatMaxFile is FAT32's largest file.
	fatMaxFile = 4*gib - 1
	// legacyBIOSBootable is GPT attribute bit 2, which gptmbr.bin looks for.
	legacyBIOSBootable = 1 << 2
)

// USB writes Options.Out/strata-usb.img: a GPT disk image with one EFI
// system partition (FAT32, label STRATA, GPT name "strata") that boots on
// UEFI (GRUB as \EFI\BOOT\BOOTX64.EFI) and BIOS (gptmbr.bin → syslinux),
// and holds the kernel, the initramfs and the strata/ directory.
func USB(ctx context.Context, o Options) error {
	start := time.Now()
	b, err := newBuild(o)
	if err != nil {
		return err
	}
	if err := needLoader(b.o.Loaders.GPTMBR); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	gptmbr, err := os.ReadFile(b.o.Loaders.GPTMBR)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if len(gptmbr) < 440 {
		return fmt.Errorf("image: %s: %d bytes, want 440", b.o.Loaders.GPTMBR, len(gptmbr))
	}
	efi, err := b.grubEFI(ctx)
	if err != nil {
		return err
	}
	files, err := b.mediaFiles()
	if err != nil {
		return err
	}
	files = append(files,
		file{dst: "EFI/BOOT/BOOTX64.EFI", content: efi, size: int64(len(efi))},
		textFile("syslinux/syslinux.cfg", syslinuxConfig(o.Append)),
	)
	for _, f := range files {
		if f.size > fatMaxFile {
			return fmt.Errorf("image: %s is %d bytes, more than FAT32's 4 GiB file limit: split it", f.src, f.size)
		}
	}
	total, err := usbSize(files, o.Size)
	if err != nil {
		return err
	}

	out := filepath.Join(b.o.Out, USBFile)
	tmp := out + ".tmp"
	_ = os.Remove(tmp) // go-diskfs refuses to create over an existing file
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	b.logf("image: usb: %s, %d files, %s", out, len(files), humanSize(total))
	if err := writeUSB(ctx, tmp, total, files); err != nil {
		return err
	}
	if err := b.installSyslinux(ctx, tmp); err != nil {
		return err
	}
	if err := syncBackupBootSector(tmp, espStart); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := writeAt(tmp, gptmbr[:440], 0); err != nil {
		return fmt.Errorf("image: gptmbr.bin: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	ok = true
	b.logf("image: usb: done in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// usbSize returns the image size: the requested one, checked, or the
// smallest comfortable one for files.
func usbSize(files []file, requested int64) (int64, error) {
	if requested > 0 {
		total := roundUp(requested, mib)
		if total > maxUSB {
			return 0, fmt.Errorf("image: --size %s: more than the %s go-diskfs can format as FAT32", humanSize(requested), humanSize(maxUSB))
		}
		esp := total - 2*mib
		need := espNeed(files, fat32Cluster(esp))
		if esp < need || esp < minESP {
			return 0, fmt.Errorf("image: --size %s is too small: the content needs an image of at least %s", humanSize(requested), humanSize(roundUp(max(need, minESP), mib)+2*mib))
		}
		return total, nil
	}
	esp := roundUp(espNeed(files, 4096)+headroom, mib)
	return max(esp, minESP) + 2*mib, nil
}

// espNeed estimates the FAT32 bytes that files take with the given cluster
// size: data rounded up to clusters, a cluster per directory, two FATs, the
// reserved sectors, and syslinux's ldlinux.sys and ldlinux.c32.
func espNeed(files []file, cluster int64) int64 {
	var data int64
	dirs := map[string]bool{}
	for _, f := range files {
		data += roundUp(max(f.size, 1), cluster)
		for d := path.Dir(f.dst); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	data += int64(len(dirs)+2) * cluster // + root, + syslinux files' slack
	data += 512 << 10                    // ldlinux.sys, ldlinux.c32
	fats := 2 * 4 * (data / cluster)
	return 32*512 + fats + data
}

// fat32Cluster mirrors go-diskfs's FAT32 cluster size for a volume size.
func fat32Cluster(size int64) int64 {
	switch {
	case size <= 260*mib:
		return 512
	case size <= 8*gib:
		return 4096
	case size <= 16*gib:
		return 8192
	case size <= 32*gib:
		return 16384
	}
	return 32768
}

// espFitSectors returns the largest ESP size, at most limit sectors, whose
// FAT32 layout go-diskfs v1.9.4 gets right. Its closed form for sectors per
// FAT leaves out the two reserved FAT entries, so for some sizes (about one
// in 250 with 32 KiB clusters) the FAT is one entry short of the last
// cluster: syslinux then crashes and mtools reports "Bad FAT entry". Going
// down a few sectors gives a layout with room.
func espFitSectors(limit int64) int64 {
	for n := limit; n > limit-4096; n-- {
		if fat32LayoutOK(n * 512) {
			return n
		}
	}
	return limit // not reached: every few hundred sectors there is a fit
}

// fat32LayoutOK repeats go-diskfs's FAT32 layout arithmetic for a volume of
// size bytes and says whether the FAT has an entry for every cluster.
func fat32LayoutOK(size int64) bool {
	const reserved = 32
	total := size / 512
	spc := fat32Cluster(size) / 512
	denom := 512*spc + 8
	perFAT := int64(uint16((4*(total-reserved) + denom - 1) / denom)) // go-diskfs keeps 16 bits
	clusters := (total - reserved - 2*perFAT) / spc
	return perFAT*512/4 >= clusters+2
}

// writeUSB creates the image at p with go-diskfs: GPT, the ESP, FAT32, files.
func writeUSB(ctx context.Context, p string, total int64, files []file) error {
	d, err := diskfs.Create(p, total, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("image: create %s: %w", p, err)
	}
	defer d.Close()
	espSectors := espFitSectors(total/512 - 2*mib/512)
	table := &gpt.Table{
		LogicalSectorSize:  512,
		PhysicalSectorSize: 512,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{{
			Index:      1,
			Start:      uint64(espStart / 512),
			End:        uint64(espStart/512+espSectors) - 1,
			Type:       gpt.EFISystemPartition,
			Name:       "strata",
			Attributes: legacyBIOSBootable,
		}},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("image: partition %s: %w", p, err)
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: Label})
	if err != nil {
		return fmt.Errorf("image: FAT32 on %s: %w", p, err)
	}
	for _, f := range files {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := copyIntoFS(fsys, f); err != nil {
			return fmt.Errorf("image: %s: %w", f.dst, err)
		}
	}
	return nil
}

// copyIntoFS writes f into a go-diskfs filesystem. The buffer is large
// because go-diskfs rewrites the FAT on every Write call.
func copyIntoFS(fsys filesystem.FileSystem, f file) error {
	if dir := path.Dir(f.dst); dir != "." {
		if err := fsys.Mkdir("/" + dir); err != nil {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
	}
	w, err := fsys.OpenFile("/"+f.dst, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	defer w.Close()
	r, err := f.open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, min(max(f.size, 1), 64*mib))
	// The wrappers hide WriterTo/ReaderFrom so that buf is really used.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, buf)
	if err != nil {
		return err
	}
	if n != f.size {
		return fmt.Errorf("wrote %d bytes, want %d", n, f.size)
	}
	return w.Close()
}

// installSyslinux makes the ESP bootable from BIOS: the mtools build of the
// syslinux installer patches the FAT boot sector at the partition's offset
// and writes ldlinux.sys and ldlinux.c32 next to syslinux.cfg.
func (b *build) installSyslinux(ctx context.Context, img string) error {
	_, err := b.run.Run(ctx, run.Cmd{
		Name: b.o.Loaders.Syslinux,
		Args: syslinuxArgs(img),
		// go-diskfs writes a 1-head, 1-sector geometry that mtools would
		// otherwise reject; firmware and syslinux use LBA anyway.
		Env: []string{"MTOOLS_SKIP_CHECK=1"},
	})
	if errors.Is(err, run.ErrNotFound) {
		return fmt.Errorf("image: install syslinux: %w (install the Debian packages syslinux and mtools)", err)
	}
	if err != nil {
		return fmt.Errorf("image: install syslinux: %w", err)
	}
	return nil
}

func syslinuxArgs(img string) []string {
	return []string{"--offset", strconv.FormatInt(espStart, 10), "--directory", "/syslinux", "--install", img}
}

// syncBackupBootSector copies the FAT32 boot sector, now with syslinux's
// code, over its backup (BPB offset 0x32 names the sector), as a freshly
// formatted volume has it; the installer updates the primary only.
func syncBackupBootSector(img string, fsStart int64) error {
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, fsStart); err != nil {
		return fmt.Errorf("read boot sector: %w", err)
	}
	backup := int64(binary.LittleEndian.Uint16(bs[0x32:0x34]))
	if backup == 0 || backup == 0xffff {
		return nil // no backup boot sector
	}
	if _, err := f.WriteAt(bs, fsStart+backup*512); err != nil {
		return fmt.Errorf("write backup boot sector: %w", err)
	}
	return f.Close()
}

// writeAt overwrites bytes of an existing file.
func writeAt(p string, data []byte, off int64) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// humanSize renders bytes in binary units, e.g. "42 MiB".
func humanSize(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/float64(gib))
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/float64(mib))
	}
	return fmt.Sprintf("%d bytes", n)
}
