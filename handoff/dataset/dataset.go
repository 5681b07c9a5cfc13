// Package dataset fetches one dataset of a profile into its destination in
// the restored root: an http(s) or file directory described by a sha256sum
// manifest (files fetched one by one, several at a time, each verified and
// resumed by restore/fetch), a tar archive (zstd, xz, gzip or plain)
// verified by its SHA-256 and unpacked by restore/unpack, or an rsync source
// (daemon rsync:// or over ssh) resumed from its partial files and verified
// by a manifest when the source has one. A buffer is an empty directory.
//
// Nothing half-written ever carries a final name: manifest files are
// written under the destination's staging directory and renamed into place
// once verified; an archive is unpacked into the staging directory and moved
// into place only after its checksum matched; rsync writes a new
// destination's files into the staging directory, moved into place once
// verified, and updates one that has files in it under temporary names,
// keeping partial ones in .strata-partial directories.
package dataset

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/fetch"
)

// Methods: how a dataset is fetched.
const (
	Manifest = "manifest" // http(s)/file directory with a sha256sum manifest
	Archive  = "archive"  // one tar archive with a SHA-256
	Rsync    = "rsync"    // rsync daemon or rsync over ssh
	Buffer   = "buffer"   // an empty directory
)

// DefaultManifest is the manifest's name in a source directory.
const DefaultManifest = "SHA256SUMS"

// Options are what a fetch needs besides the dataset.
type Options struct {
	Runner run.Runner
	Creds  *creds.Store
	// Server resolves relative sources and manifests (the file server).
	Server string
	// Owner owns every file and directory the dataset brings.
	Owner place.Owner
	// FileJobs bounds the files fetched at once from a manifest (default 4).
	FileJobs int
	// Retries bounds how often a cut transfer is resumed (default 5).
	Retries int
	// StallLimit is how long an rsync transfer may move nothing before it
	// is taken for a dead connection and resumed (default 2 minutes).
	StallLimit time.Duration
	// Progress, when set, hears bytes and files as they arrive. It may be
	// called from several goroutines, never at the same time.
	Progress func(Progress)
	// Log receives one line per request, resume and decision.
	Log func(format string, args ...any)
	// TempDir is for the live environment's scratch files (default os.TempDir()).
	TempDir string
	// Client makes the HTTP requests (default: one per dataset, keeping
	// FileJobs connections alive so small files do not each pay for one).
	Client *http.Client
}

// Progress is a dataset's state; totals are -1 while unknown.
type Progress struct {
	Bytes, TotalBytes int64
	Files, TotalFiles int64
}

// Result is what a finished fetch did.
type Result struct {
	Method string
	Source string // absolute URL, without credentials
	Files  int64  // files of the dataset now in place
	Bytes  int64
	Reused int64 // files already in place and verified, not fetched again
	// Digest identifies what was verified: the manifest's SHA-256 for a
	// manifest, the archive's SHA-256 for an archive ("" without either).
	Digest   string
	Verified string // how the content was checked, for people
	Resumes  int    // transfers resumed after a cut
}

// Plan is how a dataset will be fetched.
type Plan struct {
	Method   string
	Source   string // absolute, credentials stripped
	Manifest string // manifest URL, "" for none
}

var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.zstd"}

// Classify decides how d is fetched, resolving relative URLs against server.
func Classify(d profile.Dataset, server string) (Plan, error) {
	if d.Kind == "buffer" {
		return Plan{Method: Buffer}, nil
	}
	if d.Source == "" {
		return Plan{}, errors.New("no source")
	}
	clean, _, _ := creds.StripPassword(d.Source)
	u, err := url.Parse(clean)
	if err != nil {
		return Plan{}, fmt.Errorf("source %q: %w", clean, err)
	}
	switch u.Scheme {
	case "rsync", "ssh":
		if d.SHA256 != "" {
			return Plan{}, fmt.Errorf("source %s: sha256 is for an archive; an rsync source is a directory", clean)
		}
		p := Plan{Method: Rsync, Source: clean}
		if d.Manifest != "" {
			if p.Manifest, err = fetch.Resolve(server, d.Manifest); err != nil {
				return Plan{}, err
			}
		}
		return p, nil
	case "", "http", "https", "file":
	default:
		return Plan{}, fmt.Errorf("source %s: scheme %q is not supported (http, https, file, rsync, ssh)", clean, u.Scheme)
	}
	abs, err := fetch.Resolve(server, clean)
	if err != nil {
		return Plan{}, err
	}
	au, _ := url.Parse(abs)
	p := Plan{Source: abs}
	if d.Manifest != "" {
		if p.Manifest, err = fetch.Resolve(server, d.Manifest); err != nil {
			return Plan{}, err
		}
	}
	switch {
	case strings.HasSuffix(au.Path, "/"):
		p.Method = Manifest
		if d.SHA256 != "" {
			return Plan{}, fmt.Errorf("source %s: sha256 is for an archive; a directory is verified by its manifest", abs)
		}
		if p.Manifest == "" {
			p.Manifest = dirURL(abs) + DefaultManifest
		}
	case hasArchiveSuffix(au.Path) || d.SHA256 != "":
		p.Method = Archive
	default:
		return Plan{}, fmt.Errorf("source %s: not a directory (end it with /) nor a tar archive (%s)", abs, strings.Join(archiveSuffixes, ", "))
	}
	return p, nil
}

func hasArchiveSuffix(p string) bool {
	for _, s := range archiveSuffixes {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// dirURL is the directory part of a URL, ending in /.
func dirURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path = strings.TrimSuffix(path.Dir(u.Path), "/") + "/" // (not "//" at the top)
		u.RawPath = ""
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// Fetch brings d into dest, a host path inside the restored root that
// exists. The caller marks it done when Fetch succeeds.
func Fetch(ctx context.Context, d profile.Dataset, dest string, opt Options) (Result, error) {
	if opt.FileJobs <= 0 {
		opt.FileJobs = 4
	}
	if opt.Retries <= 0 {
		opt.Retries = 5
	}
	if opt.StallLimit <= 0 {
		opt.StallLimit = defaultStallLimit
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	if opt.Progress == nil {
		opt.Progress = func(Progress) {}
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Transport: opt.Creds.Transport(&http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       30 * time.Second,
			MaxIdleConnsPerHost:   opt.FileJobs + 1,
			ReadBufferSize:        256 << 10,
		})}
		defer opt.Client.CloseIdleConnections()
	}
	sel := pattern.Set{Include: d.Include, Exclude: d.Exclude}
	if err := sel.Validate(); err != nil {
		return Result{}, err
	}
	p, err := Classify(d, opt.Server)
	if err != nil {
		return Result{}, err
	}
	switch p.Method {
	case Buffer:
		return Result{Method: Buffer}, nil
	case Manifest:
		return fetchManifest(ctx, p, sel, dest, opt)
	case Archive:
		return fetchArchive(ctx, d, p, sel, dest, opt)
	case Rsync:
		return fetchRsync(ctx, p, sel, dest, opt)
	}
	return Result{}, fmt.Errorf("unknown method %q", p.Method)
}
