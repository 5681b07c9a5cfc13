// Package source lists and loads host profiles from the places the live
// system finds them: a file server (strata.server=, its profile index at
// serve.IndexPath) and a directory laid out like a `strata serve` root,
// such as the strata/ directory of the live medium (the stick).
//
// Several sources are searched in the order given; the live system puts the
// server first and the stick second (see docs/live-media.md for why):
//
//   - Find(name): the first source that lists the profile wins. A source
//     that could not be listed stops the search with an error, so an
//     unreachable server never silently yields an older copy on the stick.
//   - Select(facts): the match rules of all sources' profiles together; a
//     profile file of the same name in a later source is hidden by the
//     earlier one, so the same profile on both is not "ambiguous".
//
// A profile's relative URLs (system.image.url, dataset sources) resolve
// against Entry.Source.Base, the source it came from: a stick's profile
// reads its images from the stick, a server's from the server.
package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/fetch"
	"github.com/stratahq/strata/serve"
)

// Kinds of source.
const (
	Server = "server" // a file server URL
	Dir    = "dir"    // a local directory, e.g. the stick's strata/
)

// maxProfile bounds what is read of a profile or an index.
const maxProfile = 16 << 20

// Source is one place profiles come from.
type Source struct {
	Kind string // Server or Dir
	// Name says where it is, for people: the URL, or "stick" and the like.
	Name string
	// Base is what relative paths in its profiles resolve against: the
	// server's URL, or the directory as a file:// URL.
	Base string
	// Path is the directory of a Dir source.
	Path string
}

// FromServer is the file server at rawURL (http or https).
func FromServer(rawURL string) Source {
	return Source{Kind: Server, Name: rawURL, Base: rawURL}
}

// FromDir is a directory laid out like a `strata serve` root (profiles/,
// images/, datasets/). name labels it for people, e.g. "stick".
func FromDir(name, dir string) Source {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/"}
	return Source{Kind: Dir, Name: name, Base: u.String(), Path: dir}
}

// String names the source, e.g. "the server http://10.0.2.2:8080" or
// "the stick (/run/strata/stick/strata)".
func (s Source) String() string {
	if s.Kind == Dir {
		return fmt.Sprintf("the %s (%s)", s.Name, s.Path)
	}
	return "the server " + s.Name
}

// Entry is one profile listed by a source.
type Entry struct {
	serve.Entry
	Source Source
	// Hides lists the sources after this one that have a profile file of
	// the same name, which this one hides.
	Hides []Source
}

// Catalog is the profiles of several sources, in their order.
type Catalog struct {
	Sources []Source
	// Entries holds every valid and invalid profile of every source that
	// could be listed, hidden ones left out, in source order.
	Entries []Entry
	// Errors has one entry per source that could not be listed.
	Errors map[int]error
}

// List reads the profile index of each source: a server's index file, a
// directory's profiles/*.yaml. It does not fail: a source that cannot be
// listed is recorded in Catalog.Errors, and Find and Select report it.
func List(ctx context.Context, sources ...Source) *Catalog {
	c := &Catalog{Sources: sources, Errors: map[int]error{}}
	seen := map[string]int{} // file base name → index in Entries
	for i, s := range sources {
		idx, err := index(ctx, s)
		if err != nil {
			c.Errors[i] = err
			continue
		}
		for _, e := range idx.Profiles {
			key := path.Base(e.File)
			if j, ok := seen[key]; ok {
				c.Entries[j].Hides = append(c.Entries[j].Hides, s)
				continue
			}
			seen[key] = len(c.Entries)
			c.Entries = append(c.Entries, Entry{Entry: e, Source: s})
		}
	}
	return c
}

func index(ctx context.Context, s Source) (serve.Index, error) {
	switch s.Kind {
	case Dir:
		idx, err := serve.BuildIndex(s.Path)
		if err != nil {
			return idx, fmt.Errorf("%s: %w", s, err)
		}
		return idx, nil
	case Server:
		b, err := read(ctx, s.Base, strings.TrimPrefix(serve.IndexPath, "/"))
		if err != nil {
			return serve.Index{}, fmt.Errorf("profile index of %s: %w", s, err)
		}
		var idx serve.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return idx, fmt.Errorf("profile index of %s (%s): %w", s, serve.IndexPath, err)
		}
		return idx, nil
	}
	return serve.Index{}, fmt.Errorf("source %q: unknown kind %q", s.Name, s.Kind)
}

// Find returns the profile with the given host name or file base name from
// the first source that has it.
func (c *Catalog) Find(name string) (Entry, error) {
	if len(c.Sources) == 0 {
		return Entry{}, ErrNoSource
	}
	var looked []string
	for i, s := range c.Sources {
		if err := c.Errors[i]; err != nil {
			return Entry{}, fmt.Errorf("profile %q: cannot look in %s: %w", name, s, err)
		}
		for _, e := range c.Entries {
			if e.Source != s {
				continue
			}
			if e.Name == name || strings.TrimSuffix(path.Base(e.File), ".yaml") == name {
				if e.Error != "" {
					return e, fmt.Errorf("profile %s in %s is invalid: %s", e.File, s, e.Error)
				}
				return e, nil
			}
		}
		looked = append(looked, s.String())
	}
	return Entry{}, fmt.Errorf("no profile named %q in %s", name, strings.Join(looked, " nor in "))
}

// Select returns the one valid profile, among all sources, whose
// host.match rules fit the machine. Errors wrap serve.ErrNoMatch and
// serve.ErrAmbiguous.
func (c *Catalog) Select(f profile.Facts) (Entry, error) {
	if len(c.Sources) == 0 {
		return Entry{}, ErrNoSource
	}
	for i, s := range c.Sources {
		if err := c.Errors[i]; err != nil {
			return Entry{}, fmt.Errorf("match this machine: cannot look in %s: %w", s, err)
		}
	}
	idx := serve.Index{}
	byFile := map[string]Entry{}
	for _, e := range c.Entries {
		// File names are unique after hiding; tag them with the source so
		// an ambiguity names where each profile is.
		key := e.File + " (" + e.Source.Name + ")"
		byFile[key] = e
		se := e.Entry
		se.File = key
		idx.Profiles = append(idx.Profiles, se)
	}
	hit, err := idx.Select(f)
	if err != nil {
		return Entry{}, err
	}
	return byFile[hit.File], nil
}

// ErrNoSource means there is neither a server nor a directory to look in.
var ErrNoSource = errors.New("no profile source: no strata.server= and no medium labelled STRATA with a strata/ directory")

// Load reads and parses the entry's profile from its source.
func Load(ctx context.Context, e Entry) (*profile.Profile, error) {
	if e.Error != "" {
		return nil, fmt.Errorf("profile %s in %s is invalid: %s", e.File, e.Source, e.Error)
	}
	b, err := read(ctx, e.Source.Base, e.File)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", e.File, err)
	}
	p, err := profile.Parse(e.File, b)
	if err != nil {
		return nil, fmt.Errorf("profile %s in %s:\n%w", e.File, e.Source, err)
	}
	return p, nil
}

// read fetches a small object (a profile, an index) relative to base.
func read(ctx context.Context, base, rel string) ([]byte, error) {
	r, err := fetch.Open(ctx, rel, fetch.Options{Base: base})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxProfile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxProfile {
		return nil, fmt.Errorf("%s: larger than %d MiB", r.URL(), maxProfile>>20)
	}
	return b, nil
}
