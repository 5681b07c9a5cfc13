package initramfs

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/mkuimage/cpio"

	"github.com/stratahq/strata/initramfs/manifest"
)

// Entry is one file of an unpacked archive.
type Entry struct {
	Name string // no leading slash
	Mode uint32 // S_IF* type bits and permissions, as in cpio
	Data []byte // file contents, or a symlink's target
}

// IsDir, IsReg and IsLink report the entry's type.
func (e Entry) IsDir() bool  { return e.Mode&cpio.S_IFMT == cpio.S_IFDIR }
func (e Entry) IsReg() bool  { return e.Mode&cpio.S_IFMT == cpio.S_IFREG }
func (e Entry) IsLink() bool { return e.Mode&cpio.S_IFMT == cpio.S_IFLNK }

// Archive is the file tree an initramfs unpacks to: like the kernel, later
// entries (and later concatenated archives) replace earlier ones.
type Archive struct {
	Files map[string]Entry
}

// ReadArchive reads an initramfs made of concatenated newc cpio archives,
// each optionally zstd-compressed, as the kernel unpacks it: decompressed
// data forms one stream (a record may span frames), NUL padding between
// archives is skipped.
func ReadArchive(p string) (*Archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var stream []byte
	for {
		magic, err := br.Peek(4)
		if len(magic) == 0 && err == io.EOF {
			break
		}
		switch {
		case len(magic) > 0 && magic[0] == 0:
			_, _ = br.ReadByte()
		case bytes.Equal(magic, zstdMagic):
			frame, err := readZstdFrame(br)
			if err != nil {
				return nil, fmt.Errorf("initramfs %s: %w", p, err)
			}
			if stream, err = zstdDecoder.DecodeAll(frame, stream); err != nil {
				return nil, fmt.Errorf("initramfs %s: zstd: %w", p, err)
			}
		case string(magic) == "0707":
			raw, err := readRawCPIO(br)
			if err != nil {
				return nil, fmt.Errorf("initramfs %s: %w", p, err)
			}
			stream = append(stream, raw...)
		default:
			return nil, fmt.Errorf("initramfs %s: unknown data %x (not cpio or zstd)", p, magic)
		}
	}
	a := &Archive{Files: map[string]Entry{}}
	if err := a.readCPIO(stream); err != nil {
		return nil, fmt.Errorf("initramfs %s: %w", p, err)
	}
	return a, nil
}

// readRawCPIO reads one uncompressed newc archive, through its trailer.
func readRawCPIO(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		h := make([]byte, 110)
		if _, err := io.ReadFull(r, h); err != nil {
			return nil, fmt.Errorf("cpio: %w", err)
		}
		if string(h[:6]) != "070701" {
			return nil, fmt.Errorf("cpio: bad header %q", h[:6])
		}
		size, _ := strconv.ParseUint(string(h[6+8*6:14+8*6]), 16, 32)
		nameSize, _ := strconv.ParseUint(string(h[6+8*11:14+8*11]), 16, 32)
		nameLen := align4(110+int(nameSize)) - 110
		rest := make([]byte, nameLen+align4(int(size)))
		if _, err := io.ReadFull(r, rest); err != nil {
			return nil, fmt.Errorf("cpio: %w", err)
		}
		out = append(append(out, h...), rest...)
		if nameSize > 0 && string(rest[:nameSize-1]) == "TRAILER!!!" {
			return out, nil
		}
	}
}

var (
	zstdMagic      = []byte{0x28, 0xb5, 0x2f, 0xfd}
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
)

// readZstdFrame reads exactly one zstd frame (RFC 8878 §3.1.1): the header
// says how long the header is, each block says how long it is, and a
// checksum flag adds 4 bytes at the end. Frames do not say how long they
// are, and a decoder reading ahead would swallow what comes next.
func readZstdFrame(r *bufio.Reader) ([]byte, error) {
	var frame []byte
	take := func(n int) ([]byte, error) {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("zstd frame: %w", err)
		}
		frame = append(frame, b...)
		return b, nil
	}
	hdr, err := take(5) // magic + frame header descriptor
	if err != nil {
		return nil, err
	}
	fhd := hdr[4]
	fcsFlag, single, checksum, dictID := fhd>>6, fhd>>5&1, fhd>>2&1, fhd&3
	n := []int{0, 1, 2, 4}[dictID] + []int{0, 2, 4, 8}[fcsFlag]
	if single == 0 {
		n++ // window descriptor
	} else if fcsFlag == 0 {
		n++ // single segment: 1-byte content size
	}
	if _, err := take(n); err != nil {
		return nil, err
	}
	for {
		bh, err := take(3)
		if err != nil {
			return nil, err
		}
		v := int(bh[0]) | int(bh[1])<<8 | int(bh[2])<<16
		last, typ, size := v&1, v>>1&3, v>>3
		switch typ {
		case 1: // RLE: one byte on the wire
			size = 1
		case 3:
			return nil, fmt.Errorf("zstd frame: reserved block type")
		}
		if _, err := take(size); err != nil {
			return nil, err
		}
		if last == 1 {
			break
		}
	}
	if checksum == 1 {
		if _, err := take(4); err != nil {
			return nil, err
		}
	}
	return frame, nil
}

// readCPIO parses newc archives back to back (with NUL padding between).
func (a *Archive) readCPIO(b []byte) error {
	off := 0
	for off < len(b) {
		if b[off] == 0 {
			off++
			continue
		}
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			return fmt.Errorf("cpio: bad header at offset %d", off)
		}
		h := b[off : off+110]
		field := func(i int) int {
			v, _ := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			return int(v)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		nameStart := off + 110
		if nameStart+nameSize > len(b) || nameSize == 0 {
			return fmt.Errorf("cpio: truncated name at offset %d", off)
		}
		name := string(b[nameStart : nameStart+nameSize-1])
		dataStart := align4(nameStart + nameSize)
		if dataStart+size > len(b) {
			return fmt.Errorf("cpio: %s: truncated data", name)
		}
		data := b[dataStart : dataStart+size]
		off = align4(dataStart + size)
		if name == "TRAILER!!!" {
			continue
		}
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" {
			continue
		}
		a.Files[name] = Entry{Name: name, Mode: uint32(mode), Data: data}
	}
	return nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// Resolve follows symlinks (in every path component) inside the archive and
// returns the entry p finally names.
func (a *Archive) Resolve(p string) (Entry, error) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(p, "/")
		restart := false
		for i := range parts {
			cur := strings.Join(parts[:i+1], "/")
			e, ok := a.Files[cur]
			if !ok {
				return Entry{}, fmt.Errorf("%s: %w", "/"+cur, os.ErrNotExist)
			}
			if e.IsLink() {
				target := string(e.Data)
				if !strings.HasPrefix(target, "/") {
					target = path.Join("/", path.Dir(cur), target)
				}
				p = strings.TrimPrefix(path.Clean(path.Join(target, strings.Join(parts[i+1:], "/"))), "/")
				restart = true
				break
			}
			if i == len(parts)-1 {
				return e, nil
			}
			if !e.IsDir() {
				return Entry{}, fmt.Errorf("/%s: not a directory", cur)
			}
		}
		if !restart {
			break
		}
	}
	return Entry{}, fmt.Errorf("/%s: too many levels of symbolic links", p)
}

// Exists reports whether p resolves to something in the archive.
func (a *Archive) Exists(p string) bool { _, err := a.Resolve(p); return err == nil }

// Manifest returns the image's manifest.
func (a *Archive) Manifest() (*manifest.Manifest, error) {
	e, err := a.Resolve(manifest.Path)
	if err != nil {
		return nil, fmt.Errorf("initramfs: manifest: %w", err)
	}
	var m manifest.Manifest
	if err := jsonUnmarshal(e.Data, &m); err != nil {
		return nil, fmt.Errorf("initramfs: manifest: %w", err)
	}
	return &m, nil
}

// The dynamic loader's default search path on Debian amd64, plus u-root's
// LD_LIBRARY_PATH.
var searchDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"}

// ELFDeps resolves an ELF file's interpreter and DT_NEEDED libraries,
// recursively, against the archive. It returns the libraries found and an
// error naming each one missing.
func (a *Archive) ELFDeps(p string) ([]string, error) {
	var found []string
	var missing []string
	seen := map[string]bool{}
	var walk func(file, who string)
	walk = func(file, who string) {
		e, err := a.Resolve(file)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (needed by %s)", file, who))
			return
		}
		f, err := elf.NewFile(bytes.NewReader(e.Data))
		if err != nil {
			return // scripts and data files have no ELF dependencies
		}
		defer f.Close()
		if interp := elfInterp(f); interp != "" && !seen[interp] {
			seen[interp] = true
			found = append(found, interp)
			if !a.Exists(interp) {
				missing = append(missing, fmt.Sprintf("%s (interpreter of %s)", interp, file))
			}
		}
		libs, _ := f.ImportedLibraries()
		runpath := elfRunpath(f, path.Dir("/"+file))
		for _, lib := range libs {
			var hit string
			for _, d := range append(runpath, searchDirs...) {
				if c := path.Join(d, lib); a.Exists(c) {
					hit = c
					break
				}
			}
			if hit == "" {
				missing = append(missing, fmt.Sprintf("%s (needed by %s)", lib, file))
				continue
			}
			if !seen[hit] {
				seen[hit] = true
				found = append(found, hit)
				walk(hit, file)
			}
		}
	}
	walk(p, p)
	sort.Strings(found)
	if len(missing) > 0 {
		return found, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return found, nil
}

func elfInterp(f *elf.File) string {
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err == nil {
				return strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return ""
}

func elfRunpath(f *elf.File, origin string) []string {
	var out []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, _ := f.DynString(tag)
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				out = append(out, strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin))
			}
		}
	}
	return out
}

// Verify checks an initramfs the way a boot would find it broken: every tool
// in the manifest is present and executable with its interpreter and all its
// ELF libraries, recursively; every dlopen'd library is present; every kernel
// module, its modules.dep dependencies and its place in the load order
// (after its dependencies) are right; init, uinit and the shell resolve. It
// reports all problems at once.
func Verify(p string) error {
	a, err := ReadArchive(p)
	if err != nil {
		return err
	}
	return a.Verify()
}

// Verify: see the package function.
func (a *Archive) Verify() error {
	var errs []error
	m, err := a.Manifest()
	if err != nil {
		return err
	}
	for _, want := range []string{"init", "bin/uinit", "bin/sh", "bin/strata", "etc/uinit.flags", "dev/console"} {
		if !a.Exists(want) {
			errs = append(errs, fmt.Errorf("/%s is missing", want))
		}
	}
	for _, t := range m.Tools {
		e, err := a.Resolve(t.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("tool %s: %w", t.Name, err))
			continue
		}
		if !e.IsReg() || e.Mode&0o111 == 0 {
			errs = append(errs, fmt.Errorf("tool %s: %s is not an executable file", t.Name, t.Path))
		}
		if bytes.HasPrefix(e.Data, []byte("#!")) {
			interp := strings.Fields(strings.SplitN(string(e.Data[2:]), "\n", 2)[0])
			ie, err := a.Resolve(firstOr(interp, ""))
			sh, _ := a.Resolve("bin/sh")
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("tool %s: script interpreter %v missing", t.Name, interp))
			case ie.Name == sh.Name:
				errs = append(errs, fmt.Errorf("tool %s: script runs under /bin/sh (gosh), which drops script arguments", t.Name))
			}
		}
		if _, err := a.ELFDeps(t.Path); err != nil {
			errs = append(errs, fmt.Errorf("tool %s: %w", t.Name, err))
		}
		for _, al := range t.Aliases {
			if alias := path.Join(path.Dir(t.Path), al); !a.Exists(alias) {
				errs = append(errs, fmt.Errorf("tool %s: alias %s missing", t.Name, alias))
			}
		}
	}
	for _, lib := range m.DlopenLibraries {
		if !a.Exists(lib) {
			errs = append(errs, fmt.Errorf("dlopen library %s missing", lib))
		} else if _, err := a.ELFDeps(lib); err != nil {
			errs = append(errs, fmt.Errorf("dlopen library %s: %w", lib, err))
		}
	}
	errs = append(errs, a.verifyModules(m)...)
	return errors.Join(errs...)
}

func (a *Archive) verifyModules(m *manifest.Manifest) []error {
	var errs []error
	dir := "lib/modules/" + m.KernelVersion
	dep, err := a.Resolve(dir + "/modules.dep")
	if err != nil {
		return []error{fmt.Errorf("modules: %w", err)}
	}
	ix := &ModuleIndex{Path: map[string]string{}, Deps: map[string][]string{}}
	if err := ix.parseDep(bytes.NewReader(dep.Data)); err != nil {
		return []error{fmt.Errorf("modules.dep: %w", err)}
	}
	pos := map[string]int{}
	for i, mod := range m.Modules {
		pos[mod.Name] = i
	}
	for i, mod := range m.Modules {
		e, err := a.Resolve(dir + "/" + mod.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", mod.Name, err))
			continue
		}
		if !bytes.HasPrefix(e.Data, []byte("\x7fELF")) {
			errs = append(errs, fmt.Errorf("module %s: not an ELF object", mod.Name))
		}
		if ix.Path[mod.Name] != mod.Path {
			errs = append(errs, fmt.Errorf("module %s: modules.dep has %q, manifest %q", mod.Name, ix.Path[mod.Name], mod.Path))
		}
		for _, d := range ix.Deps[mod.Name] {
			j, ok := pos[d]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("module %s: dependency %s not in the load list", mod.Name, d))
			case j > i:
				errs = append(errs, fmt.Errorf("module %s: dependency %s loads after it", mod.Name, d))
			}
		}
	}
	return errs
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// writeCPIO writes records as one newc archive.
func writeCPIO(w io.Writer, recs []cpio.Record) error {
	rw := cpio.Newc.Writer(w)
	for _, r := range recs {
		if err := rw.WriteRecord(cpio.MakeReproducible(r)); err != nil {
			return fmt.Errorf("cpio %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return nil
}

// bzImageVersion reads the version string from an x86 bzImage header
// (Documentation/arch/x86/boot.rst: "HdrS" at 0x202, kernel_version at 0x20e).
func bzImageVersion(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("%s: not a bzImage: %w", p, err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s: not an x86 bzImage (no HdrS)", p)
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20e:])) + 0x200
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, off)
	s := string(buf[:n])
	if i := strings.IndexAny(s, " \x00"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "", fmt.Errorf("%s: empty kernel version", p)
	}
	return s, nil
}
