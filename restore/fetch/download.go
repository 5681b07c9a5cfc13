package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// A download in progress is DEST.part, with DEST.part.json beside it saying
// what the bytes are: a later Download (in this process or after a restart
// of strata) hashes the bytes already there and asks the server for the
// rest, with If-Range, so a changed object is fetched again from its start
// instead of being spliced onto the old one's beginning.
const (
	PartSuffix    = ".part"
	SidecarSuffix = ".part.json"
)

// readAheadMin is the size from which an object is received ahead of
// writing it; sidecarMin the size from which a download is recorded to be
// continued.
const (
	readAheadMin = 8 << 20
	sidecarMin   = 1 << 20
)

// Sidecar is what DEST.part.json records: enough to ask for the rest of
// the same object and nothing else. handoff's archive spool uses it too.
type Sidecar struct {
	URL string `json:"url"`
	// Validator is the strong ETag, else the Last-Modified date, of the
	// object the partial bytes came from.
	Validator string `json:"validator"`
	ETag      string `json:"etag,omitempty"`
	Modified  string `json:"last_modified,omitempty"`
	Size      int64  `json:"size"`             // the object's, -1 when unknown
	SHA256    string `json:"sha256,omitempty"` // the expected one, if any
}

// DownloadResult is what a Download did.
type DownloadResult struct {
	Size int64 // the object's size
	// Transferred is what came over the network in this call; Reused is
	// what was already in DEST.part and kept.
	Transferred, Reused int64
	// Restarted says the bytes in DEST.part were recorded for this URL and
	// sum but could not be continued: the object changed (If-Range did not
	// hold) or the server cannot continue it. (A partial without a sidecar,
	// or with one for another URL or sum, is dropped without trying.)
	Restarted bool
	Resumes   int // reconnections within this call
}

// Download fetches raw into dest: through dest.part, verified against
// opt.SHA256 when set, renamed to dest when complete. An interrupted
// Download leaves dest.part and its sidecar for the next one to continue.
// A checksum mismatch removes both (the bytes on disk may be what is wrong).
func Download(ctx context.Context, raw, dest string, opt Options) (DownloadResult, error) {
	var res DownloadResult
	full, err := Resolve(opt.Base, raw)
	if err != nil {
		return res, err
	}
	part, side := dest+PartSuffix, dest+SidecarSuffix
	opt.SHA256 = strings.ToLower(opt.SHA256)
	from, sum, sc, hadSide := resumable(part, side, full, opt.SHA256)
	if from == 0 && hadSide {
		os.Remove(side)
	}
	opt.From, opt.Validator, opt.prefix = from, sc.Validator, sum
	wroteSide := from > 0
	opt.onResponse = func(r *Reader, etag, modified string) error {
		// Record the object before any of its bytes are written; not for
		// a small one (fetched again whole, it costs less than the record).
		if r.total >= 0 && r.total < sidecarMin {
			if wroteSide { // a restart of a larger object
				os.Remove(side)
				wroteSide = false
			}
			return nil
		}
		wroteSide = true
		return WriteSidecar(side, Sidecar{URL: full, Validator: r.validat, ETag: etag, Modified: modified, Size: r.total, SHA256: opt.SHA256})
	}
	r, err := Open(ctx, full, opt)
	if err != nil {
		return res, err
	}
	defer r.Close()
	res.Size = r.Size()
	flags := os.O_WRONLY | os.O_CREATE
	if r.Restarted() || from == 0 {
		flags |= os.O_TRUNC
		res.Restarted = from > 0
	} else {
		res.Reused = from
	}
	f, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return res, fmt.Errorf("download %s: %w", full, err)
	}
	if !res.Restarted && from > 0 {
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			f.Close()
			return res, fmt.Errorf("download %s: %w", part, err)
		}
	}
	var src io.Reader = r
	if r.Size()-r.done > readAheadMin {
		// Receive and hash on one core, write on the other.
		ra := NewReadAhead(r, 8, 1<<20)
		defer ra.Close()
		src = ra
	}
	buf := opt.Buffer
	if len(buf) == 0 {
		buf = make([]byte, 256<<10)
	}
	n, err := io.CopyBuffer(writerOnly{f}, src, buf)
	res.Transferred, res.Resumes = n, r.Resumes()
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("download %s: %w", part, cerr)
	}
	if errors.Is(err, ErrChecksum) {
		os.Remove(part)
		os.Remove(side)
	}
	if err != nil {
		return res, err
	}
	if err := os.Rename(part, dest); err != nil {
		return res, fmt.Errorf("download %s: %w", dest, err)
	}
	if wroteSide {
		os.Remove(side)
	}
	return res, nil
}

// resumable says how much of part can be continued: its length, with the
// SHA-256 state over those bytes, when the sidecar names the same URL and
// expected sum and the object's validator; else 0. It also says whether
// there is a sidecar.
func resumable(part, side, url, want string) (int64, hash.Hash, Sidecar, bool) {
	var sc Sidecar
	b, err := os.ReadFile(side)
	if err != nil {
		return 0, nil, Sidecar{}, !errors.Is(err, os.ErrNotExist)
	}
	if json.Unmarshal(b, &sc) != nil || sc.URL != url || sc.SHA256 != want || sc.Validator == "" {
		return 0, nil, Sidecar{}, true
	}
	f, err := os.Open(part)
	if err != nil {
		return 0, nil, Sidecar{}, true
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 256<<10))
	if err != nil || n == 0 || (sc.Size >= 0 && n > sc.Size) {
		return 0, nil, Sidecar{}, true
	}
	return n, h, sc, true
}

// WriteSidecar writes a sidecar atomically (a crash leaves the old one or
// the new one, never half of one).
func WriteSidecar(p string, sc Sidecar) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("download sidecar %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("download sidecar %s: %w", p, err)
	}
	return nil
}

// writerOnly hides os.File's ReadFrom so io.CopyBuffer uses its buffer.
type writerOnly struct{ io.Writer }
