package parse

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// LUKS is a LUKS header's settings, whatever the version. It never holds key
// material: luksDump prints none without --dump-volume-key, and the JSON
// metadata only salts and digests, which are dropped here.
type LUKS struct {
	Version       int
	UUID          string // LUKS1 (from the dump); LUKS2 takes it from blkid
	Cipher        string // aes-xts-plain64
	KeySize       int    // volume key size in bits
	Hash          string // digest hash (LUKS2) or hash spec (LUKS1)
	PBKDF         string // argon2id, argon2i or pbkdf2 (of the first active keyslot)
	PBKDFHash     string // pbkdf2 only
	Iterations    int    // argon2 time cost or pbkdf2 iterations
	MemoryKiB     int    // argon2
	Parallel      int    // argon2 threads
	SectorSize    int    // LUKS2 encryption sector size
	DataOffset    int64  // bytes from the start of the device to the data
	Keyslots      []int  // active keyslot numbers
	Tokens        []string
	Flags         []string // LUKS2 persistent flags (allow-discards, ...)
	Requirements  []string // LUKS2 requirements (online-reencrypt, ...)
	Integrity     string   // LUKS2 authenticated encryption (dm-integrity) type
	MetadataSize  int64    // LUKS2 JSON area + binary header (the --luks2-metadata-size), 0 for LUKS1
	KeyslotsSize  int64    // LUKS2 keyslots area size
	SegmentsCount int
}

type luks2JSON struct {
	Keyslots map[string]struct {
		Type    string `json:"type"`
		KeySize int    `json:"key_size"`
		Area    struct {
			Encryption string `json:"encryption"`
		} `json:"area"`
		KDF struct {
			Type       string `json:"type"`
			Time       int    `json:"time"`
			Memory     int    `json:"memory"`
			CPUs       int    `json:"cpus"`
			Hash       string `json:"hash"`
			Iterations int    `json:"iterations"`
		} `json:"kdf"`
	} `json:"keyslots"`
	Tokens map[string]struct {
		Type string `json:"type"`
	} `json:"tokens"`
	Segments map[string]struct {
		Type       string `json:"type"`
		Offset     string `json:"offset"`
		Encryption string `json:"encryption"`
		SectorSize int    `json:"sector_size"`
		Integrity  *struct {
			Type string `json:"type"`
		} `json:"integrity"`
	} `json:"segments"`
	Digests map[string]struct {
		Type     string   `json:"type"`
		Hash     string   `json:"hash"`
		Keyslots []string `json:"keyslots"`
	} `json:"digests"`
	Config struct {
		JSONSize     string   `json:"json_size"`
		KeyslotsSize string   `json:"keyslots_size"`
		Flags        []string `json:"flags"`
		Requirements *struct {
			Mandatory []string `json:"mandatory"`
		} `json:"requirements"`
	} `json:"config"`
}

func sortedNums(m []string) []int {
	var out []int
	for _, k := range m {
		if n, err := strconv.Atoi(k); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// LUKS2JSON parses `cryptsetup luksDump --dump-json-metadata DEVICE`.
func LUKS2JSON(data []byte) (*LUKS, error) {
	var j luks2JSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("luksDump --dump-json-metadata: %w", err)
	}
	if len(j.Segments) == 0 && len(j.Keyslots) == 0 {
		return nil, fmt.Errorf("luksDump --dump-json-metadata: no segments or keyslots")
	}
	l := &LUKS{Version: 2, SegmentsCount: len(j.Segments)}
	var ks []string
	for k := range j.Keyslots {
		ks = append(ks, k)
	}
	l.Keyslots = sortedNums(ks)
	if len(l.Keyslots) > 0 {
		k := j.Keyslots[strconv.Itoa(l.Keyslots[0])]
		l.KeySize = k.KeySize * 8
		l.PBKDF = k.KDF.Type
		switch k.KDF.Type {
		case "pbkdf2":
			l.Iterations, l.PBKDFHash = k.KDF.Iterations, k.KDF.Hash
		default:
			l.Iterations, l.MemoryKiB, l.Parallel = k.KDF.Time, k.KDF.Memory, k.KDF.CPUs
		}
	}
	var segs []string
	for k := range j.Segments {
		segs = append(segs, k)
	}
	if s := sortedNums(segs); len(s) > 0 {
		seg := j.Segments[strconv.Itoa(s[0])]
		l.Cipher, l.SectorSize = seg.Encryption, seg.SectorSize
		l.DataOffset, _ = strconv.ParseInt(seg.Offset, 10, 64)
		if seg.Integrity != nil {
			l.Integrity = seg.Integrity.Type
		}
	}
	var ds []string
	for k := range j.Digests {
		ds = append(ds, k)
	}
	if d := sortedNums(ds); len(d) > 0 {
		l.Hash = j.Digests[strconv.Itoa(d[0])].Hash
	}
	var ts []string
	for k := range j.Tokens {
		ts = append(ts, k)
	}
	for _, n := range sortedNums(ts) {
		l.Tokens = append(l.Tokens, j.Tokens[strconv.Itoa(n)].Type)
	}
	l.Flags = j.Config.Flags
	if r := j.Config.Requirements; r != nil {
		l.Requirements = r.Mandatory
	}
	if n, err := strconv.ParseInt(j.Config.JSONSize, 10, 64); err == nil {
		l.MetadataSize = n + 4096 // the binary header precedes the JSON area
	}
	l.KeyslotsSize, _ = strconv.ParseInt(j.Config.KeyslotsSize, 10, 64)
	return l, nil
}

var luks1Slot = regexp.MustCompile(`^Key Slot (\d+): (ENABLED|DISABLED)`)

// LuksDump1 parses the text `cryptsetup luksDump DEVICE` prints for LUKS1.
func LuksDump1(data []byte) (*LUKS, error) {
	l := &LUKS{Version: 1, PBKDF: "pbkdf2", SegmentsCount: 1}
	var name, mode string
	slot := -1
	for _, line := range lines(data) {
		if m := luks1Slot.FindStringSubmatch(line); m != nil {
			slot = -1
			if m[2] == "ENABLED" {
				slot, _ = strconv.Atoi(m[1])
				l.Keyslots = append(l.Keyslots, slot)
			}
			continue
		}
		k, v, ok := keyValue(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "Version":
			if v != "1" {
				return nil, fmt.Errorf("luksDump: version %s, this parser reads LUKS1", v)
			}
		case "Cipher name":
			name = v
		case "Cipher mode":
			mode = v
		case "Hash spec":
			l.Hash, l.PBKDFHash = v, v
		case "Payload offset":
			n, _ := atoi64(v)
			l.DataOffset = n * 512
		case "MK bits":
			n, _ := atoi64(v)
			l.KeySize = int(n)
		case "UUID":
			l.UUID = v
		case "Iterations":
			if slot >= 0 && slot == firstOr(l.Keyslots, -1) {
				n, _ := atoi64(v)
				l.Iterations = int(n)
			}
		}
	}
	if name == "" || l.KeySize == 0 {
		return nil, fmt.Errorf("luksDump: no LUKS1 header in the output")
	}
	l.Cipher = name
	if mode != "" {
		l.Cipher += "-" + mode
	}
	return l, nil
}

func firstOr(s []int, d int) int {
	if len(s) == 0 {
		return d
	}
	return s[0]
}

// LUKSVersion reads the Version line of a text luksDump (1 or 2).
func LUKSVersion(data []byte) int {
	for _, l := range lines(data) {
		if k, v, ok := keyValue(l, ":"); ok && k == "Version" {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
