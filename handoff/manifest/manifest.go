// Package manifest reads sha256sum-format manifests (what `sha256sum FILE...`
// prints: "HASH  NAME" or "HASH *NAME", with sha256sum's backslash escapes
// for names holding a newline or a backslash), refusing names that would
// leave the dataset's directory.
package manifest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// ErrEscape marks a name that would land outside the dataset's directory.
var ErrEscape = errors.New("path leaves the dataset's directory")

// Entry is one file of a manifest.
type Entry struct {
	Path   string // clean, relative, slash-separated
	SHA256 string // lower-case hex
	Line   int
}

// Parse reads a manifest; src names it in errors (its URL). Every problem is
// reported with its line, all at once.
func Parse(src string, r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []Entry
	var errs []error
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(string(sc.Bytes()), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("manifest %s line %d: %w", src, n, err))
			continue
		}
		e.Line = n
		if prev, ok := seen[e.Path]; ok {
			errs = append(errs, fmt.Errorf("manifest %s line %d: %s is already listed on line %d", src, n, e.Path, prev))
			continue
		}
		seen[e.Path] = n
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("manifest %s: %w", src, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// A name that is also a directory of another name cannot be both.
	// (Clean names: a directory is what comes before a slash.)
	for _, e := range out {
		for i := strings.LastIndexByte(e.Path, '/'); i > 0; i = strings.LastIndexByte(e.Path[:i], '/') {
			if l, ok := seen[e.Path[:i]]; ok {
				return nil, fmt.Errorf("manifest %s line %d: %s is a file on line %d and a directory here", src, e.Line, e.Path[:i], l)
			}
		}
	}
	// sha256sum's output is usually sorted already (find | sort).
	byPath := func(a, b Entry) int { return strings.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(out, byPath) {
		slices.SortFunc(out, byPath)
	}
	return out, nil
}

func parseLine(line string) (Entry, error) {
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	if len(line) < 66 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
		return Entry{}, errors.New(`want "SHA256  NAME" as sha256sum prints it`)
	}
	sum, ok := lowerHex(line[:64])
	if !ok {
		return Entry{}, errors.New(`want "SHA256  NAME" as sha256sum prints it`)
	}
	name := line[66:]
	if escaped {
		var err error
		if name, err = unescape(name); err != nil {
			return Entry{}, err
		}
	}
	p, err := Clean(name)
	if err != nil {
		return Entry{}, fmt.Errorf("%q: %w", name, err)
	}
	return Entry{Path: p, SHA256: sum}, nil
}

// Clean checks a manifest name and returns it relative and clean: no
// absolute names, no "..", nothing empty. "./x" (as `find . | sha256sum`
// writes) becomes "x".
func Clean(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute name: %w", ErrEscape)
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("NUL in name")
	}
	for rest := name; rest != ""; {
		c, after, _ := strings.Cut(rest, "/")
		if c == ".." {
			return "", fmt.Errorf("'..' in name: %w", ErrEscape)
		}
		rest = after
	}
	p := path.Clean(name)
	if p == "." {
		return "", errors.New("names the directory itself, not a file")
	}
	return p, nil
}

func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("name ends in a lone backslash")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf(`unknown escape \%c`, s[i])
		}
	}
	return b.String(), nil
}

// lowerHex is s in lower case if it is all hex digits (s itself when it
// already is, as sha256sum writes it: no copy per line).
func lowerHex(s string) (string, bool) {
	var kinds byte
	for i := 0; i < len(s); i++ {
		kinds |= hexKind[s[i]]
	}
	switch {
	case kinds&notHex != 0:
		return "", false
	case kinds&upperHex != 0:
		return strings.ToLower(s), true
	}
	return s, true
}

const (
	lowerOrDigit = 1 << iota
	upperHex
	notHex
)

// hexKind classifies a byte for lowerHex: one table load per byte.
var hexKind = func() (t [256]byte) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			t[c] = lowerOrDigit
		case c >= 'A' && c <= 'F':
			t[c] = upperHex
		default:
			t[c] = notHex
		}
	}
	return t
}()

// Format writes entries as sha256sum would.
func Format(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		name := e.Path
		prefix := ""
		if strings.ContainsAny(name, "\\\n\r") {
			prefix = "\\"
			name = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r").Replace(name)
		}
		fmt.Fprintf(bw, "%s%s  %s\n", prefix, e.SHA256, name)
	}
	return bw.Flush()
}
