// Package serve is strata's file server: one directory over HTTP with range
// requests (so interrupted transfers resume), plus an index of the host
// profiles in it for automatic selection by MAC address or DMI identity.
//
// Layout of the served directory:
//
//	profiles/*.yaml   host profiles, listed in /strata/profiles.json
//	images/           base-system archives (system.image.url is relative to the root)
//	datasets/         datasets
//
// Any HTTP server can serve the same directory; the index is then written once
// with `strata serve --write-index DIR`.
package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stratahq/strata/profile"
)

// IndexPath is where the profile index is served.
const IndexPath = "/strata/profiles.json"

// Entry is one profile in the index.
type Entry struct {
	Name        string             `json:"name"` // host.name
	File        string             `json:"file"` // path relative to the served root
	Description string             `json:"description,omitempty"`
	Match       *profile.HostMatch `json:"match,omitempty"`
	Error       string             `json:"error,omitempty"` // the profile does not load; never selected
}

// Index lists the profiles under root/profiles.
type Index struct {
	Profiles []Entry `json:"profiles"`
}

// BuildIndex loads every profile under root/profiles.
func BuildIndex(root string) (Index, error) {
	files, err := filepath.Glob(filepath.Join(root, "profiles", "*.yaml"))
	if err != nil {
		return Index{}, fmt.Errorf("index profiles: %w", err)
	}
	idx := Index{Profiles: []Entry{}}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		e := Entry{File: filepath.ToSlash(rel), Name: strings.TrimSuffix(filepath.Base(f), ".yaml")}
		p, err := profile.Load(f)
		if p != nil && p.Host.Name != "" {
			e.Name, e.Description, e.Match = p.Host.Name, p.Host.Description, p.Host.Match
		}
		if err != nil {
			e.Error = err.Error()
		}
		idx.Profiles = append(idx.Profiles, e)
	}
	sort.Slice(idx.Profiles, func(i, j int) bool { return idx.Profiles[i].File < idx.Profiles[j].File })
	return idx, nil
}

// ErrNoMatch and ErrAmbiguous come from Select.
var (
	ErrNoMatch   = errors.New("no profile matches this machine")
	ErrAmbiguous = errors.New("more than one profile matches this machine")
)

// Select picks the one valid profile whose match rules fit the machine.
func (idx Index) Select(f profile.Facts) (Entry, error) {
	var hits []Entry
	for _, e := range idx.Profiles {
		if e.Error == "" && e.Match.Matches(f) {
			hits = append(hits, e)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return Entry{}, fmt.Errorf("%w (MACs %s; DMI vendor %q product %q serial %q): add a host.match rule or choose with strata.profile=NAME",
			ErrNoMatch, strings.Join(f.MACs, ", "), f.DMI.Vendor, f.DMI.Product, f.DMI.Serial)
	}
	var names []string
	for _, h := range hits {
		names = append(names, h.File)
	}
	return Entry{}, fmt.Errorf("%w: %s; make their host.match rules distinct or choose with strata.profile=NAME", ErrAmbiguous, strings.Join(names, ", "))
}

// Find returns the entry with the given host name or file base name.
func (idx Index) Find(name string) (Entry, error) {
	for _, e := range idx.Profiles {
		if e.Name == name || strings.TrimSuffix(filepath.Base(e.File), ".yaml") == name {
			if e.Error != "" {
				return e, fmt.Errorf("profile %s is invalid: %s", e.File, e.Error)
			}
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("no profile named %q on the file server", name)
}

// Handler serves root with range support, the live profile index, and a log
// line per request.
func Handler(root string, logf func(format string, args ...any)) http.Handler {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	files := http.FileServer(http.Dir(root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &recorder{ResponseWriter: w, status: http.StatusOK}
		if r.URL.Path == IndexPath {
			idx, err := BuildIndex(root)
			if err != nil {
				http.Error(rw, err.Error(), http.StatusInternalServerError)
			} else {
				rw.Header().Set("Content-Type", "application/json")
				enc := json.NewEncoder(rw)
				enc.SetIndent("", "  ")
				_ = enc.Encode(idx)
			}
		} else {
			files.ServeHTTP(rw, r)
		}
		logf("serve: %s %s %s -> %d, %d bytes in %s", r.RemoteAddr, r.Method, r.URL.Path, rw.status, rw.n, time.Since(start).Round(time.Millisecond))
	})
}

type recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

// ReadFrom keeps sendfile for large images.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseWriter, src)
	r.n += n
	return n, err
}

// WriteIndex writes the index as a static file, for serving root with any HTTP server.
func WriteIndex(root string) error {
	idx, err := BuildIndex(root)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "strata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "profiles.json"), append(b, '\n'), 0o644)
}
