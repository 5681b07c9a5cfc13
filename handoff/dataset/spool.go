package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stratahq/strata/restore/fetch"
)

// SpoolName is an archive's download in the staging directory's partial/:
// its compressed bytes, written as they arrive (SpoolName.part, with
// SpoolName.part.json saying what they are) while they are unpacked from
// memory. A run that is killed leaves them, and the next run unpacks them
// again and downloads only the rest (Range with If-Range); an archive that
// changed is fetched from its start, never spliced. A spool that is
// complete is renamed to SpoolName, and a later run reads it again without
// the network. Removed once the dataset is in place.
const SpoolName = "archive"

// spoolStream is an archive's bytes: what an earlier run spooled, then the
// rest from the network, written to the spool as it is read.
type spoolStream struct {
	io.Reader
	cancel  context.CancelFunc
	closing atomic.Bool
	mu      sync.Mutex // held by a read, so Close waits for the one under way
	r       *fetch.Reader
	part    *os.File
	path    string // the complete spool's name; path+fetch.PartSuffix while written
	wrote   bool   // the bytes are all in part (the stream reached its end)
	keep    bool   // a download that stopped short: worth continuing
}

// openSpool continues or starts the download of source into spoolPath,
// returning the archive's bytes from its first (whether spooled or not).
// opt.SHA256 is the expected sum; the caller verifies it over what it reads.
func openSpool(ctx context.Context, source, spoolPath string, opt fetch.Options, logf func(string, ...any)) (*spoolStream, error) {
	part, sidePath := spoolPath+fetch.PartSuffix, spoolPath+fetch.SidecarSuffix
	want := fetch.Sidecar{URL: source, SHA256: strings.ToLower(opt.SHA256), Size: -1}
	var from int64
	var side fetch.Sidecar
	if b, err := os.ReadFile(sidePath); err == nil && json.Unmarshal(b, &side) == nil &&
		side.URL == want.URL && side.SHA256 == want.SHA256 && side.Validator != "" {
		if st, err := os.Stat(part); err == nil && st.Mode().IsRegular() && (side.Size < 0 || st.Size() <= side.Size) {
			from = st.Size()
		}
	}
	if from == 0 {
		os.Remove(sidePath)
	}
	// What is about to be spooled is recorded before its first byte, from
	// the response itself (no HEAD request first). A restart empties the
	// spool before the new record, so a kill between the two never pairs
	// old bytes with a new validator.
	opt.OnStart = func(validator string, size int64) error {
		if from > 0 {
			if err := os.Truncate(part, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("archive spool: %w", err)
			}
		}
		if validator == "" {
			os.Remove(sidePath)
			logf("dataset: %s: the server gives no ETag or Last-Modified: a restart of strata will fetch the archive from its start", source)
			return nil
		}
		side := want
		side.Validator, side.Size = validator, size
		return fetch.WriteSidecar(sidePath, side)
	}
	opt.SHA256, opt.From, opt.Validator = "", from, side.Validator
	ctx, cancel := context.WithCancel(ctx)
	r, err := fetch.Open(ctx, source, opt)
	if err != nil {
		cancel()
		return nil, err
	}
	if from > 0 && !r.Restarted() {
		logf("dataset: %s: continuing after the %d bytes an earlier run left (unpacked again from the spool)", source, from)
	}
	if r.Restarted() {
		logf("dataset: %s: the %d bytes an earlier run left cannot be continued: fetching the archive from its start", source, from)
		from = 0
	}
	flags := os.O_RDWR | os.O_CREATE
	if from == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		r.Close()
		cancel()
		return nil, fmt.Errorf("archive spool: %w", err)
	}
	s := &spoolStream{cancel: cancel, r: r, part: f, path: spoolPath}
	// The spooled bytes, then the network's, each written after them.
	s.Reader = io.MultiReader(io.NewSectionReader(f, 0, from), &spoolTee{s: s, at: from})
	return s, nil
}

// spoolTee reads the network and writes what it read to the spool.
type spoolTee struct {
	s  *spoolStream
	at int64
}

func (t *spoolTee) Read(p []byte) (int, error) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.s.closing.Load() {
		return 0, errors.New("archive spool: closed")
	}
	n, err := t.s.r.Read(p)
	if n > 0 {
		if _, werr := t.s.part.WriteAt(p[:n], t.at); werr != nil {
			return 0, fmt.Errorf("archive spool: %w", werr)
		}
		t.at += int64(n)
	}
	switch {
	case errors.Is(err, io.EOF):
		// All there: a run that dies before the archive is in place
		// leaves the whole spool, read again (and verified) next time.
		t.s.wrote = true
		if rerr := os.Rename(t.s.path+fetch.PartSuffix, t.s.path); rerr != nil {
			return n, fmt.Errorf("archive spool: %w", rerr)
		}
		os.Remove(t.s.path + fetch.SidecarSuffix)
	case err != nil && !t.s.closing.Load():
		t.s.keep = true // the network stopped short: continue next time
	}
	return n, err
}

// Close ends the download. A complete spool whose sum did not match is
// removed (the bytes on disk may be what is wrong).
func (s *spoolStream) Close(verified bool) {
	s.closing.Store(true)
	s.cancel() // a read under way returns at once, never resumes
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.Close()
	s.part.Close()
	if s.wrote && !verified {
		os.Remove(s.path)
	}
}
