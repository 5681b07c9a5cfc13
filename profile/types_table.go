package profile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// GPTTypes maps the partition type aliases a profile may use to GPT type GUIDs
// (UEFI spec and the Discoverable Partitions Specification).
var GPTTypes = map[string]string{
	"esp":               "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
	"bios-boot":         "21686148-6449-6E6F-744E-656564454649",
	"linux":             "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
	"swap":              "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
	"lvm":               "E6D6D379-F507-44C2-A23C-238F2A3DF928",
	"raid":              "A19D880F-05FC-4D3B-A006-743F0F84911E",
	"xbootldr":          "BC13C2FF-59E6-4262-A352-B275FD6F7172",
	"linux-home":        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",
	"linux-root-x86-64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
	"linux-srv":         "3B8F8425-20E0-4F3B-907F-1A25A76F98E8",
	"linux-var":         "4D21B016-B534-45C2-A9FB-5C16E091FD2D",
	"linux-luks":        "CA7D7CCB-63ED-4C53-861C-1742536059CC",
	"msdata":            "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
	"msreserved":        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
}

// MBRTypes maps aliases to msdos partition type bytes.
var MBRTypes = map[string]byte{
	"linux": 0x83, "swap": 0x82, "lvm": 0x8e, "raid": 0xfd, "esp": 0xef, "fat32": 0x0c, "ntfs": 0x07,
}

// GPTAttributes names the GPT attribute bits people use.
var GPTAttributes = map[string]int{
	"required": 0, "no-block-io": 1, "legacy-bios-bootable": 2, "read-only": 60, "hidden": 62, "no-automount": 63,
}

var (
	guidRE    = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	vfatIDRE  = regexp.MustCompile(`^[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}$`)
	lvmUUIDRE = regexp.MustCompile(`^[0-9A-Za-z]{6}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{6}$`)
	mdUUIDRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}:[0-9a-fA-F]{8}:[0-9a-fA-F]{8}:[0-9a-fA-F]{8}$`)
	diskIDRE  = regexp.MustCompile(`^0x[0-9a-fA-F]{8}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	macRE     = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	hostRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	modeRE    = regexp.MustCompile(`^0?[0-7]{3,4}$`)
)

// GPTType resolves a partition type alias or GUID to an upper-case GUID.
func GPTType(t string) (string, error) {
	if t == "" {
		t = "linux"
	}
	if g, ok := GPTTypes[t]; ok {
		return g, nil
	}
	if guidRE.MatchString(t) {
		return strings.ToUpper(t), nil
	}
	return "", fmt.Errorf("unknown GPT partition type %q: use an alias (%s) or a GUID", t, strings.Join(sortedKeys(GPTTypes), ", "))
}

// MBRType resolves a partition type alias or 0xNN byte.
func MBRType(t string) (byte, error) {
	if t == "" {
		t = "linux"
	}
	if b, ok := MBRTypes[t]; ok {
		return b, nil
	}
	if strings.HasPrefix(t, "0x") {
		if v, err := strconv.ParseUint(t[2:], 16, 8); err == nil && v != 0 && v != 0x05 && v != 0x0f && v != 0x85 {
			return byte(v), nil
		}
	}
	return 0, fmt.Errorf("unknown msdos partition type %q: use an alias (%s) or a byte like 0x83 (not 0 or an extended type)", t, strings.Join(sortedKeys(MBRTypes), ", "))
}

// AttributeBits turns attribute names and numbers into the GPT attribute field.
func AttributeBits(attrs []string) (uint64, error) {
	var bits uint64
	for _, a := range attrs {
		n, ok := GPTAttributes[a]
		if !ok {
			v, err := strconv.Atoi(a)
			if err != nil || v < 0 || v > 63 {
				return 0, fmt.Errorf("unknown GPT attribute %q: use %s, or a bit number 0-63", a, strings.Join(sortedKeys(GPTAttributes), ", "))
			}
			n = v
		}
		bits |= 1 << n
	}
	return bits, nil
}
