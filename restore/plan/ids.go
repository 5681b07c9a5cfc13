package plan

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// ids derives the identities the profile leaves open. They are UUIDv5
// (name-based) from the host, the target disks' identity and the device's
// place in the profile: a second `strata plan` on the same machine gives the
// same UUIDs, so a resumed restore recognises what the first run made,
// while another machine restored from the same profile gets its own.
type ids struct{ seed string }

// namespace for strata's derived identifiers.
var namespace = uuid.MustParse("8f0c4a57-3f1e-5a6b-9c2d-51a7e0b3c4d6")

func newIDs(host string, disks []Disk) ids {
	var b strings.Builder
	b.WriteString(host)
	for _, d := range disks {
		id := d.Serial
		if id == "" {
			id = d.Device
		}
		fmt.Fprintf(&b, "\x00%s=%s:%d", d.Name, id, d.Size)
	}
	return ids{seed: b.String()}
}

func (g ids) raw(kind, ref string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte(g.seed+"\x00"+kind+"\x00"+ref))
}

// GUID in the upper-case form GPT tools print.
func (g ids) guid(kind, ref string) string { return strings.ToUpper(g.raw(kind, ref).String()) }

// UUID in the lower-case form filesystems and cryptsetup print.
func (g ids) uuid(kind, ref string) string { return g.raw(kind, ref).String() }

// vfatID is a FAT volume ID, XXXX-XXXX.
func (g ids) vfatID(ref string) string {
	u := g.raw("vfat", ref)
	return strings.ToUpper(fmt.Sprintf("%04x-%04x", binary.BigEndian.Uint16(u[0:2]), binary.BigEndian.Uint16(u[2:4])))
}

// diskID is an msdos disk identifier, 0x%08x.
func (g ids) diskID(ref string) string {
	u := g.raw("msdos", ref)
	return fmt.Sprintf("0x%08x", binary.BigEndian.Uint32(u[0:4]))
}

// mdUUID is an array UUID in mdadm's four-word form.
func (g ids) mdUUID(ref string) string {
	u := g.raw("md", ref)
	h := fmt.Sprintf("%x", u[:])
	return h[0:8] + ":" + h[8:16] + ":" + h[16:24] + ":" + h[24:32]
}

// lvmUUID is an LVM UUID: 32 characters of [0-9A-Za-z] grouped 6-4-4-4-4-4-6.
func (g ids) lvmUUID(kind, ref string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(g.seed + "\x00lvm-" + kind + "\x00" + ref))
	var b strings.Builder
	for i, groups := 0, []int{6, 4, 4, 4, 4, 4, 6}; len(groups) > 0; groups = groups[1:] {
		if b.Len() > 0 {
			b.WriteByte('-')
		}
		for j := 0; j < groups[0]; j++ {
			b.WriteByte(alphabet[int(sum[i])%len(alphabet)])
			i++
		}
	}
	return b.String()
}
