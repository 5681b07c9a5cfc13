package profile

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Size is a size as a person means it: absolute bytes, a percentage of the
// parent (disk or volume group), a percentage of what is free at that point
// (LVs only), or the rest. The zero Size means "not set".
type Size struct {
	Bytes   int64   // absolute size, when Percent == 0 and !Rest
	Percent float64 // 0 < Percent <= 100
	Free    bool    // Percent is of the free space, not of the whole (LVM %FREE)
	Rest    bool    // whatever is left
	text    string  // as written, so Save gives back what the user wrote
}

// IsZero reports whether the size is unset.
func (s Size) IsZero() bool { return s.Bytes == 0 && s.Percent == 0 && !s.Rest }

// IsAbsolute reports whether the size is a fixed number of bytes.
func (s Size) IsAbsolute() bool { return s.Bytes > 0 && s.Percent == 0 && !s.Rest }

// Bytes makes an absolute Size.
func Bytes(n int64) Size { return Size{Bytes: n} }

type unit struct {
	name string
	mult int64
}

// Longest names first so "MiB" is not read as "B".
var units = []unit{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50},
	{"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
	{"B", 1},
}

const unitHelp = "use a number with B, KiB, MiB, GiB, TiB, kB, MB, GB or TB, a percentage like 25%, or rest"

// ParseSize reads "512MiB", "1.5GiB", "500GB", "1048576", "25%", "50%free", "rest".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Size{}, fmt.Errorf("empty size (%s)", unitHelp)
	}
	if t == "rest" {
		return Size{Rest: true, text: t}, nil
	}
	if i := strings.IndexByte(t, '%'); i >= 0 {
		num, suffix := t[:i], strings.ToLower(t[i+1:])
		if suffix != "" && suffix != "free" {
			return Size{}, fmt.Errorf("invalid size %q: after %% only \"free\" may follow", s)
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(p) || p <= 0 || p > 100 {
			return Size{}, fmt.Errorf("invalid size %q: a percentage must be a number above 0 and at most 100", s)
		}
		return Size{Percent: p, Free: suffix == "free", text: t}, nil
	}
	num, suffix := t, ""
	for i, r := range t {
		if !(r >= '0' && r <= '9' || r == '.') {
			num, suffix = strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
			break
		}
	}
	mult := int64(1)
	if suffix != "" {
		mult = 0
		for _, u := range units {
			if suffix == u.name {
				mult = u.mult
				break
			}
		}
		if mult == 0 {
			hint := ""
			switch up := strings.ToUpper(suffix); up {
			case "K", "KB", "M", "G", "T":
				dec := map[byte]string{'K': "kB", 'M': "MB", 'G': "GB", 'T': "TB"}[up[0]]
				hint = fmt.Sprintf(" (ambiguous: write %ciB for binary or %s for decimal units)", up[0], dec)
			case "KIB", "MIB", "GIB", "TIB", "MB", "GB", "TB":
				hint = " (units are case-sensitive: KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
			}
			return Size{}, fmt.Errorf("invalid size %q: unknown unit %q%s", s, suffix, hint)
		}
	}
	// Exact arithmetic: "1.5GiB" must be 1610612736, not a float approximation.
	r, ok := new(big.Rat).SetString(num)
	if !ok || num == "" {
		return Size{}, fmt.Errorf("invalid size %q (%s)", s, unitHelp)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return Size{}, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() || r.Num().Int64() <= 0 {
		return Size{}, fmt.Errorf("invalid size %q: must be above 0 and below 8 EiB", s)
	}
	return Size{Bytes: r.Num().Int64(), text: t}, nil
}

// MustSize is ParseSize for literals in code and tests.
func MustSize(s string) Size {
	v, err := ParseSize(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String gives back the size as written, or a canonical form.
func (s Size) String() string {
	if s.text != "" {
		return s.text
	}
	switch {
	case s.Rest:
		return "rest"
	case s.Percent > 0:
		p := strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
		if s.Free {
			p += "free"
		}
		return p
	case s.Bytes > 0:
		return FormatBytes(s.Bytes)
	}
	return ""
}

// FormatBytes writes n exactly, in the largest binary unit that divides it.
func FormatBytes(n int64) string {
	for i := 4; i >= 0; i-- { // TiB .. KiB, then B
		u := units[i]
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// HumanBytes writes n approximately, for messages: "1.5 GiB".
func HumanBytes(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	out := strconv.FormatInt(n, 10) + " B"
	for i := 4; i >= 0; i-- {
		if u := units[i]; n >= u.mult {
			out = strconv.FormatFloat(float64(n)/float64(u.mult), 'f', -1, 64)
			if dot := strings.IndexByte(out, '.'); dot >= 0 && len(out) > dot+3 {
				out = out[:dot+3]
			}
			out += " " + u.name
			break
		}
	}
	if neg {
		out = "-" + out
	}
	return out
}

func (s *Size) parseScalar(v string) error {
	p, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Request is one entry to fit: a partition or an LV.
type Request struct {
	Name string // for messages
	Size Size
	Min  Size
	Max  Size
}

// FitError says that a layout does not fit, by how much, and which entries.
type FitError struct {
	Available int64
	Needed    int64
	Entries   []string // entries whose minimum counts towards Needed
}

func (e *FitError) Error() string {
	return fmt.Sprintf("layout needs at least %s but only %s is available (short by %s; entries: %s)",
		HumanBytes(e.Needed), HumanBytes(e.Available), HumanBytes(e.Needed-e.Available), strings.Join(e.Entries, ", "))
}

// Fit assigns a byte size to each request out of avail bytes. Every size is a
// multiple of align (1 MiB for partitions, the extent size for LVs); absolute
// sizes are rounded up, computed ones down. Order of evaluation: absolute sizes,
// then percentages of the whole, then percentages of what is free at that
// point (in order), then rest (at most one). Min and max bound computed sizes.
func Fit(reqs []Request, avail, align int64) ([]int64, error) {
	if align <= 0 {
		align = 1
	}
	avail = avail / align * align
	out := make([]int64, len(reqs))
	up := func(n int64) int64 { return (n + align - 1) / align * align }
	down := func(n int64) int64 { return n / align * align }
	clamp := func(r Request, n int64) int64 {
		if r.Max.IsAbsolute() && n > down(r.Max.Bytes) {
			n = down(r.Max.Bytes)
		}
		if r.Min.IsAbsolute() && n < up(r.Min.Bytes) {
			n = up(r.Min.Bytes)
		}
		return n
	}
	var used int64
	rest := -1
	for i, r := range reqs {
		switch {
		case r.Size.Rest:
			if rest >= 0 {
				return nil, fmt.Errorf("%s and %s are both rest: only one entry may take the rest", reqs[rest].Name, r.Name)
			}
			rest = i
		case r.Size.Percent > 0 && !r.Size.Free:
			out[i] = clamp(r, down(int64(float64(avail)*r.Size.Percent/100)))
		case r.Size.Percent > 0:
		default:
			out[i] = up(r.Size.Bytes)
		}
		used += out[i]
	}
	for i, r := range reqs {
		if r.Size.Percent > 0 && r.Size.Free {
			free := max(avail-used, 0)
			out[i] = clamp(r, down(int64(float64(free)*r.Size.Percent/100)))
			used += out[i]
		}
	}
	if rest >= 0 {
		out[rest] = clamp(reqs[rest], max(avail-used, 0))
		if out[rest] == 0 {
			out[rest] = align // a zero-size entry is never intended: report it as short
		}
		used += out[rest]
	}
	if used > avail {
		var names []string
		for i, r := range reqs {
			if out[i] > 0 {
				names = append(names, r.Name)
			}
		}
		return nil, &FitError{Available: avail, Needed: used, Entries: names}
	}
	return out, nil
}

// MinimumFit is the smallest avail (a multiple of align) for which Fit succeeds,
// found by bisection since Fit is monotonic in avail.
func MinimumFit(reqs []Request, align int64) (int64, error) {
	if _, err := Fit(reqs, 0, align); err == nil {
		return 0, nil
	}
	lo, hi := int64(0), int64(align)
	for {
		_, err := Fit(reqs, hi, align)
		if err == nil {
			break
		}
		var fe *FitError
		if !errors.As(err, &fe) {
			return 0, err // not a matter of space (e.g. two rest entries)
		}
		// Checked before doubling: 1<<62 doubled overflows int64, and a
		// negative hi looped for ever (found by the fuzzer: an 8e18-byte
		// partition).
		if hi >= 1<<62 {
			return 0, fmt.Errorf("layout cannot fit any disk")
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > align {
		mid := lo + (hi-lo)/2/align*align
		if mid == lo {
			mid = lo + align
		}
		if _, err := Fit(reqs, mid, align); err == nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
