package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const (
	isoBlock      = 2048
	isolinuxBin   = "isolinux/isolinux.bin"
	efiImagePath  = "boot/grub/efi.img"
	bootCatalog   = "isolinux/boot.cat"
	efiImageLabel = "STRATAEFI" // not STRATA: on a stick, by-label must find the ISO9660
)

// ISO writes Options.Out/strata.iso: ISO9660 with Rock Ridge, El Torito
// entries for BIOS (isolinux) and UEFI (a FAT image holding only GRUB, which
// then reads the kernel from ISO9660), and an isohybrid MBR so that the same
// file boots when written to a USB stick.
func ISO(ctx context.Context, o Options) error {
	start := time.Now()
	b, err := newBuild(o)
	if err != nil {
		return err
	}
	l := b.o.Loaders
	for _, p := range []string{l.ISOLinux, l.LDLinux, l.ISOHybridMBR} {
		if err := needLoader(p); err != nil {
			return fmt.Errorf("image: %w", err)
		}
	}
	mbrCode, err := os.ReadFile(l.ISOHybridMBR)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if len(mbrCode) < 432 {
		return fmt.Errorf("image: %s: %d bytes, want at least 432", l.ISOHybridMBR, len(mbrCode))
	}
	if err := checkHybridIsolinux(l.ISOLinux); err != nil {
		return err
	}
	efi, err := b.grubEFI(ctx)
	if err != nil {
		return err
	}
	efiImg, err := efiImage(efi)
	if err != nil {
		return err
	}
	files, err := b.mediaFiles()
	if err != nil {
		return err
	}
	files = append(files,
		file{dst: isolinuxBin, src: l.ISOLinux},
		file{dst: "isolinux/ldlinux.c32", src: l.LDLinux},
		textFile("isolinux/isolinux.cfg", syslinuxConfig(o.Append)),
		file{dst: efiImagePath, content: efiImg, size: int64(len(efiImg))},
	)

	out := filepath.Join(b.o.Out, ISOFile)
	tmp := out + ".tmp"
	_ = os.Remove(tmp)
	// The staging tree is go-diskfs's workspace, which Finalize deletes;
	// it sits next to the output so large files can be hard links.
	stage, err := os.MkdirTemp(b.o.Out, ".strata-iso-")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	ok := false
	defer func() {
		os.RemoveAll(stage)
		if !ok {
			os.Remove(tmp)
		}
	}()
	var total int64
	for _, f := range files {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := stageFile(stage, f); err != nil {
			return fmt.Errorf("image: stage %s: %w", f.dst, err)
		}
		total += roundUp(f.size, isoBlock)
	}
	b.logf("image: iso: %s, %d files", out, len(files))
	if err := writeISO(tmp, stage, total); err != nil {
		return err
	}
	if err := isohybrid(tmp, mbrCode[:432], int64(len(efiImg)), diskID(b.marker)); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	ok = true
	b.logf("image: iso: done in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// stageFile puts f into the staging tree, as a hard link where it can.
func stageFile(stage string, f file) error {
	if f.src != "" {
		dst := filepath.Join(stage, filepath.FromSlash(f.dst))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if os.Link(f.src, dst) == nil {
			return nil
		}
	}
	return writeFile(stage, f)
}

// writeISO turns the staging tree into an ISO9660 image with go-diskfs.
func writeISO(p, stage string, content int64) error {
	d, err := diskfs.Create(p, content+4*mib, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("image: create %s: %w", p, err)
	}
	defer d.Close()
	d.LogicalBlocksize = isoBlock
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, WorkDir: stage})
	if err != nil {
		return fmt.Errorf("image: ISO9660 on %s: %w", p, err)
	}
	iso, ok := fsys.(*iso9660.FileSystem)
	if !ok {
		return fmt.Errorf("image: go-diskfs returned %T for ISO9660", fsys)
	}
	bios := &iso9660.ElToritoEntry{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: isolinuxBin, BootTable: true}
	bios.SetLoadSize(4) // isolinux loads the rest of itself
	err = iso.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		VolumeIdentifier: Label,
		ElTorito: &iso9660.ElTorito{
			BootCatalog: bootCatalog,
			Entries: []*iso9660.ElToritoEntry{
				bios,
				{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: efiImagePath},
			},
		},
	})
	if err != nil {
		return fmt.Errorf("image: finalize ISO9660: %w", err)
	}
	return nil
}

// efiImage returns a FAT image holding \EFI\BOOT\BOOTX64.EFI, the El Torito
// UEFI boot image. FAT12 (FAT16 above 16 MiB) as the FAT spec wants for
// small volumes; a tiny FAT32 has too few clusters for strict firmware.
func efiImage(bootx64 []byte) ([]byte, error) {
	size := max(roundUp(int64(len(bootx64))+256<<10, 256<<10), mib)
	fstype := filesystem.TypeFat12
	if size > 16*mib {
		fstype = filesystem.TypeFat16
	}
	tmp, err := os.MkdirTemp("", "strata-efiimg-")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, "efi.img")
	d, err := diskfs.Create(p, size, diskfs.SectorSizeDefault)
	if err != nil {
		return nil, fmt.Errorf("image: efi.img: %w", err)
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: fstype, VolumeLabel: efiImageLabel})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("image: efi.img: %w", err)
	}
	err = copyIntoFS(fsys, file{dst: "EFI/BOOT/BOOTX64.EFI", content: bootx64, size: int64(len(bootx64))})
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("image: efi.img: %w", err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return data, nil
}

// checkHybridIsolinux refuses an isolinux.bin without the isohybrid entry
// point (signature fb c0 78 70 at 0x40), which the MBR code jumps to.
func checkHybridIsolinux(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	sig := make([]byte, 4)
	if _, err := f.ReadAt(sig, 0x40); err != nil {
		return fmt.Errorf("image: %s: %w", p, err)
	}
	if !bytes.Equal(sig, []byte{0xfb, 0xc0, 0x78, 0x70}) {
		return fmt.Errorf("image: %s is not a hybrid-capable isolinux.bin (syslinux 3.72 or later)", p)
	}
	return nil
}

// bootEntry is one El Torito boot catalog entry as read back from an ISO.
type bootEntry struct {
	Platform byte   // 0 BIOS, 0xef UEFI
	LBA      uint32 // in 2048-byte blocks
	Sectors  uint16 // load size in 512-byte sectors (0 when too big to say)
}

// readElTorito reads the volume size (in 2048-byte blocks) and the boot
// catalog entries of an ISO image.
func readElTorito(r io.ReaderAt) (blocks uint32, entries []bootEntry, err error) {
	pvd := make([]byte, isoBlock)
	if _, err := r.ReadAt(pvd, 16*isoBlock); err != nil {
		return 0, nil, fmt.Errorf("read primary volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return 0, nil, errors.New("no ISO9660 primary volume descriptor at block 16")
	}
	blocks = binary.LittleEndian.Uint32(pvd[80:84])
	var catalog uint32
	for blk := int64(17); ; blk++ {
		vd := make([]byte, isoBlock)
		if _, err := r.ReadAt(vd, blk*isoBlock); err != nil {
			return 0, nil, fmt.Errorf("read volume descriptor %d: %w", blk, err)
		}
		if string(vd[1:6]) != "CD001" || vd[0] == 255 {
			break
		}
		if vd[0] == 0 && bytes.HasPrefix(vd[7:], []byte("EL TORITO SPECIFICATION")) {
			catalog = binary.LittleEndian.Uint32(vd[0x47:0x4b])
			break
		}
	}
	if catalog == 0 {
		return blocks, nil, errors.New("no El Torito boot record")
	}
	cat := make([]byte, isoBlock)
	if _, err := r.ReadAt(cat, int64(catalog)*isoBlock); err != nil {
		return 0, nil, fmt.Errorf("read boot catalog: %w", err)
	}
	if cat[0] != 1 || cat[0x1e] != 0x55 || cat[0x1f] != 0xaa {
		return 0, nil, errors.New("boot catalog has no validation entry")
	}
	platform := cat[1]
	for off := 0x20; off+0x20 <= len(cat); off += 0x20 {
		e := cat[off : off+0x20]
		switch e[0] {
		case 0x88, 0x00: // bootable / not bootable entry
			if off == 0x20 || e[0] == 0x88 {
				entries = append(entries, bootEntry{Platform: platform, Sectors: binary.LittleEndian.Uint16(e[6:8]), LBA: binary.LittleEndian.Uint32(e[8:12])})
			}
		case 0x90, 0x91: // section header
			platform = e[1]
		default:
			return blocks, entries, nil
		}
	}
	return blocks, entries, nil
}

// isohybrid writes the MBR that lets the ISO boot from a disk: isohdpfx.bin
// boot code that loads isolinux.bin, partition 1 (0x17, bootable) over the
// whole image and partition 2 (0xEF) over the EFI image for UEFI firmware,
// and pads the file to a whole MiB (the 64-head, 32-sector "cylinder").
func isohybrid(p string, code []byte, efiSize int64, id uint32) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	blocks, entries, err := readElTorito(f)
	if err != nil {
		return fmt.Errorf("image: isohybrid %s: %w", p, err)
	}
	var bios, efi *bootEntry
	for i := range entries {
		switch e := &entries[i]; {
		case e.Platform == 0 && bios == nil:
			bios = e
		case e.Platform == 0xef && efi == nil:
			efi = e
		}
	}
	if bios == nil || efi == nil {
		return fmt.Errorf("image: isohybrid %s: boot catalog lacks a BIOS or a UEFI entry: %+v", p, entries)
	}
	size := roundUp(int64(blocks)*isoBlock, mib)
	mbr := isohybridMBR(code, bios.LBA, efi.LBA*4, uint32((efiSize+511)/512), uint32(size/512), id)
	if _, err := f.WriteAt(mbr[:], 0); err != nil {
		return fmt.Errorf("image: isohybrid %s: %w", p, err)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("image: isohybrid %s: %w", p, err)
	}
	return f.Close()
}

// isohybridMBR lays out the hybrid MBR as syslinux's isohybrid does:
// boot code (432 bytes), isolinux.bin's LBA in 512-byte sectors at 432, the
// disk signature at 440, two partition entries, 55 AA.
func isohybridMBR(code []byte, isolinuxLBA, efiStart, efiSectors, totalSectors, id uint32) [512]byte {
	var m [512]byte
	copy(m[:432], code)
	binary.LittleEndian.PutUint64(m[432:440], uint64(isolinuxLBA)*4)
	binary.LittleEndian.PutUint32(m[440:444], id)
	putPartition(m[446:462], 0x80, 0x17, 0, totalSectors)
	putPartition(m[462:478], 0x00, 0xef, efiStart, efiSectors)
	m[510], m[511] = 0x55, 0xaa
	return m
}

func putPartition(e []byte, status, typ byte, start, sectors uint32) {
	e[0] = status
	s := chs(start)
	copy(e[1:4], s[:])
	e[4] = typ
	end := chs(start + sectors - 1)
	copy(e[5:8], end[:])
	binary.LittleEndian.PutUint32(e[8:12], start)
	binary.LittleEndian.PutUint32(e[12:16], sectors)
}

// chs encodes an LBA for the 64-head, 32-sector geometry isohybrid uses,
// saturating past cylinder 1023 (firmware then uses the LBA fields).
func chs(lba uint32) [3]byte {
	const heads, spt = 64, 32
	c, h, s := lba/(heads*spt), lba/spt%heads, lba%spt+1
	if c > 1023 {
		c, h, s = 1023, heads-1, spt
	}
	return [3]byte{byte(h), byte(s) | byte(c>>8&3)<<6, byte(c)}
}

// diskID derives the MBR disk signature from the build's marker.
func diskID(marker string) uint32 {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(marker); i++ {
		h = (h ^ uint32(marker[i])) * 16777619
	}
	return h
}
