package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/stratahq/strata/profile"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// Sizes above the partitions depend on the tools' on-disk formats. These
// are their defaults, which the commands strata runs leave in place.
const (
	luks2Header = 16 * mib // cryptsetup 2.x LUKS2: 16 MiB metadata + keyslots
	pvDataStart = 1 * mib  // LVM2 pe_start: 1 MiB metadata area, 1 MiB alignment
	mdChunk     = 512 * kib
)

// luks1Header is the size of a LUKS1 header with keyBits-bit keys: the
// 4 KiB header and eight key slots of 4000 anti-forensic stripes of the
// key, each slot rounded up to 4 KiB (2056 sectors for 256 bits, 4040 for
// 512).
func luks1Header(keyBits int) int64 {
	slot := (int64(keyBits)/8*4000 + 511) / 512
	slot = (slot + 7) / 8 * 8
	return (8 + 8*slot) * 512
}

// luksAlign is the data alignment cryptsetup chooses on a device with these
// minimum and optimal I/O sizes (device_topology_alignment): 1 MiB, unless
// the device's I/O size (the optimal one when it is a multiple of the
// minimum) does not divide 1 MiB; then that size. On an md raid5 of four
// members with 512 KiB chunks that is the 1.5 MiB stripe.
func luksAlign(ioMin, ioOpt int64) int64 {
	if ioMin <= 0 {
		return mib
	}
	t := ioMin
	if t < ioOpt && ioOpt%t == 0 && ioOpt%4096 == 0 {
		t = ioOpt
	}
	if mib%t != 0 {
		return t
	}
	return mib
}

// luksOffset is where a new LUKS volume's data starts: the header rounded
// up to the alignment (LUKS1: 2 MiB for 256- and 512-bit keys with 1 MiB
// alignment; LUKS2: 16 MiB).
func luksOffset(l *profile.LUKS, align int64) int64 {
	hdr := luks2Header
	if l.Version == 1 {
		bits := l.KeySize
		if bits == 0 {
			bits = 256 // cryptsetup's default LUKS1 key size
		}
		hdr = luks1Header(bits)
	}
	return (hdr + align - 1) / align * align
}

// mdBitmapSpace mirrors mdadm 4.2 choose_bm_space: room kept for an internal
// bitmap, in 512-byte sectors.
func mdBitmapSpace(sectors int64) int64 {
	switch {
	case sectors < 64*2:
		return 0
	case sectors-64*2 >= 200*1024*1024*2:
		return 128 * 2
	case sectors-4*2 > 8*1024*1024*2:
		return 64 * 2
	}
	return 4 * 2
}

// mdMemberData is the data area of one member, in bytes, as mdadm 4.2
// lays out a new array: for 1.1/1.2 metadata a data offset of superblock,
// bitmap space and reshape headroom (about 0.1% up to 128 MiB) rounded up to
// 1 MiB; for 1.0 the superblock, bad-block log and bitmap at the end; for
// 0.90 64 KiB at the end.
func mdMemberData(bytes int64, metadata string, chunk int64) int64 {
	s := bytes / 512
	bm := mdBitmapSpace(s)
	switch metadata {
	case "1.0":
		return ((s &^ 7) - (8*2 + 8 + bm)) * 512
	case "0.90":
		return ((s &^ 127) - 128) * 512
	}
	headroom := int64(128 * 1024 * 2)
	chunkSectors := chunk / 512
	for headroom<<10 > s && (chunk == 0 || headroom/2 >= chunkSectors*2) {
		headroom >>= 1
	}
	off := 12*2 + bm + headroom
	off = (off + 2047) / 2048 * 2048
	return (s - off) * 512
}

// mdSize is the array size mdadm 4.2 creates from members of these sizes.
func mdSize(r *profile.RAID, members []int64) (int64, string) {
	meta := r.Metadata
	if meta == "" {
		meta = "1.2"
	}
	chunk := int64(0)
	if r.Level != "raid1" {
		chunk = mdChunk
		if r.Chunk.IsAbsolute() {
			chunk = r.Chunk.Bytes
		}
	}
	var data []int64
	for _, m := range members {
		data = append(data, mdMemberData(m, meta, chunk))
	}
	per := data[0]
	for _, d := range data[1:] {
		per = min(per, d)
	}
	n := int64(len(members))
	if r.Level == "raid1" {
		per = per / (64 * kib) * (64 * kib) // mdadm rounds a mirror to 64 KiB
	} else {
		per = per / chunk * chunk
	}
	note := fmt.Sprintf("md %s: mdadm 4.2 layout for metadata %s: %s of data per member", r.Name, meta, profile.HumanBytes(per))
	switch r.Level {
	case "raid0":
		var sum int64
		for _, d := range data {
			sum += d / chunk * chunk // raid0 uses each member whole
		}
		return sum, note
	case "raid1":
		return per, note
	case "raid4", "raid5":
		return per * (n - 1), note
	case "raid6":
		return per * (n - 2), note
	case "raid10":
		copies := int64(2)
		if l := r.Layout; len(l) >= 2 && strings.ContainsAny(l[:1], "nfo") {
			if c := int64(l[1] - '0'); c >= 1 && c <= 9 {
				copies = c
			}
		}
		return per * n / copies / chunk * chunk, note
	}
	return per, note
}

// mdStripe is the full-stripe width LVM aligns a PV's data to on md.
func mdStripe(r *profile.RAID) int64 {
	chunk := int64(mdChunk)
	if r.Chunk.IsAbsolute() {
		chunk = r.Chunk.Bytes
	}
	n := int64(len(r.Devices))
	switch r.Level {
	case "raid0":
		return chunk * n
	case "raid4", "raid5":
		return chunk * (n - 1)
	case "raid6":
		return chunk * (n - 2)
	case "raid10":
		return chunk * n / 2
	}
	return 0
}

// pvStart is where a PV's extents begin: 1 MiB, rounded up to the device's
// optimal I/O size when it has one (LVM's md_chunk_alignment and
// data_alignment_detection: a full stripe of an md array, directly or
// through LUKS).
func pvStart(ioOpt int64) int64 {
	if ioOpt <= 0 {
		return pvDataStart
	}
	return (pvDataStart + ioOpt - 1) / ioOpt * ioOpt
}

// ioTopology is the minimum and optimal I/O size the kernel will give the
// profile device ref: an md array with a chunk has its chunk and its full
// stripe; a LUKS mapping has what it sits on; disks, partitions and mirrors
// have none that changes an alignment.
func (b *builder) ioTopology(ref string) (ioMin, ioOpt int64) {
	for i := range b.p.RAID {
		if r := &b.p.RAID[i]; r.Name == ref {
			s := mdStripe(r)
			if s == 0 {
				return 0, 0
			}
			chunk := int64(mdChunk)
			if r.Chunk.IsAbsolute() {
				chunk = r.Chunk.Bytes
			}
			return chunk, s
		}
	}
	for i := range b.p.LUKS {
		if l := &b.p.LUKS[i]; l.Name == ref {
			return b.ioTopology(l.Device)
		}
	}
	return 0, 0
}

// thinMetadata is the metadata LV size strata gives a thin pool that may
// grow to poolMax bytes: 64 bytes per chunk, at least 2 MiB, at most
// 16 GiB, whole extents; the chunk doubles from 64 KiB until the metadata
// fits 128 MiB, like lvm's default policy. Passing both explicitly keeps the
// plan's arithmetic exact.
func thinMetadata(poolMax, extent int64) (meta, chunk int64) {
	chunk = 64 * kib
	for poolMax/chunk*64 > 128*mib && chunk < gib {
		chunk *= 2
	}
	meta = max(poolMax/chunk*64, 2*mib)
	meta = min(meta, 16*gib)
	meta = (meta + extent - 1) / extent * extent
	return meta, chunk
}

// lvRequest is one LV to fit, in the group's raw space: a raid1 LV of
// logical size S takes (mirrors+1) * (S + one metadata extent).
type lvRequest struct {
	lv     *profile.LogicalVolume
	copies int64 // data copies
	meta   int64 // extra bytes per copy (raid1 rmeta)
	unit   int64 // logical size granularity (extent, or a full stripe)
}

func (r lvRequest) raw(logical int64) int64 { return r.copies * (logical + r.meta) }

func (r lvRequest) logical(raw int64) int64 {
	l := raw/r.copies - r.meta
	return max(l/r.unit*r.unit, 0)
}

// fitLVs sizes the LVs of a group in bytes (logical sizes, multiples of
// the extent). avail is the group's usable bytes.
func fitLVs(vg *profile.VolumeGroup, avail, extent int64) (map[string]int64, error) {
	var reqs []profile.Request
	var lrs []lvRequest
	for i := range vg.LVs {
		lv := &vg.LVs[i]
		if lv.Type == "thin" {
			continue
		}
		r := lvRequest{lv: lv, copies: 1, unit: extent}
		switch lv.Type {
		case "raid1":
			m := lv.Mirrors
			if m == 0 {
				m = 1
			}
			r.copies, r.meta = int64(m+1), extent
		case "striped":
			r.unit = extent * int64(lv.Stripes)
		}
		up := func(s profile.Size) profile.Size {
			if !s.IsAbsolute() {
				return s
			}
			l := (s.Bytes + r.unit - 1) / r.unit * r.unit
			return profile.Bytes(r.raw(l))
		}
		reqs = append(reqs, profile.Request{
			Name: fmt.Sprintf("%s/%s (%s)", vg.Name, lv.Name, lv.Size),
			Size: up(lv.Size), Min: up(lv.MinSize), Max: lv.MaxSize,
		})
		if lv.MaxSize.IsAbsolute() {
			reqs[len(reqs)-1].Max = profile.Bytes(r.raw(lv.MaxSize.Bytes / r.unit * r.unit))
		}
		lrs = append(lrs, r)
	}
	raw, err := profile.Fit(reqs, avail, extent)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for i, r := range lrs {
		out[r.lv.Name] = r.logical(raw[i])
		if out[r.lv.Name] == 0 {
			return nil, &profile.FitError{Available: avail, Needed: avail + r.raw(r.unit), Entries: []string{reqs[i].Name}}
		}
	}
	return out, nil
}

// sectorSize is the logical sector size the kernel will give the profile
// device ref: a disk's and its partitions' is the probed disk's; an md
// array's, a LUKS mapping's and an LV's the largest of what they are made
// of (a LUKS2 sector_size can raise it).
func (b *builder) sectorSize(ref string) int {
	disk, _, _ := strings.Cut(ref, "/")
	if d := b.probe[disk]; d != nil && d.LogicalSectorSize > 0 {
		return d.LogicalSectorSize
	}
	out := 512
	if vg := b.vgByName(disk); vg != nil && disk != ref {
		for _, pv := range vg.PVs {
			out = max(out, b.sectorSize(pv))
		}
		return out
	}
	for i := range b.p.RAID {
		if r := &b.p.RAID[i]; r.Name == ref {
			for _, m := range r.Devices {
				out = max(out, b.sectorSize(m))
			}
		}
	}
	for i := range b.p.LUKS {
		if l := &b.p.LUKS[i]; l.Name == ref {
			out = max(out, l.SectorSize, b.sectorSize(l.Device))
		}
	}
	return out
}

// mixedSectors lists the logical sector sizes of a VG's PVs when they are
// not all the same (lvm refuses such a group unless told otherwise), else
// nil.
func (b *builder) mixedSectors(vg *profile.VolumeGroup) []int {
	seen := map[int]bool{}
	var out []int
	for _, pv := range vg.PVs {
		if s := b.sectorSize(pv); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) < 2 {
		return nil
	}
	slices.Sort(out)
	return out
}
