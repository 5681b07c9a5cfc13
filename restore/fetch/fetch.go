// Package fetch reads objects from the file server: http(s) and file URLs,
// streamed (no temporary full copy), verified against a SHA-256 while they are
// read, and resumed transparently with an HTTP Range request when the
// connection drops mid-transfer.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrChecksum means the object's SHA-256 is not the expected one.
var ErrChecksum = errors.New("checksum mismatch")

// Options configure a fetch.
type Options struct {
	// Base resolves relative URLs (the file server, e.g. http://10.0.2.2:8080/).
	Base string
	// SHA256, when set, is checked as the last byte is read: Read returns
	// ErrChecksum instead of io.EOF on a mismatch.
	SHA256 string
	// SumFrom says where SHA256 comes from, for the mismatch error
	// (default "the profile").
	SumFrom string
	// Header is added to every request (credentials; never logged).
	Header http.Header
	Client *http.Client
	// Retries bounds how often a dropped transfer is resumed (default 5).
	Retries int
	// Progress, when set, is called as bytes arrive; total is -1 when unknown.
	Progress func(done, total int64)
	// Log receives one line per request and resume; nil discards.
	Log func(format string, args ...any)
	// From continues an earlier transfer at this byte (Download sets it
	// from a partial file), if the object's ETag or Last-Modified is still
	// Validator; otherwise the object is read again from its start and
	// Restarted says so.
	From      int64
	Validator string
	// Buffer, when set, is Download's copy buffer (reused across calls).
	Buffer []byte

	// OnStart, when set, is called before the first byte of the object is
	// read from its start (the first response, or a restart of a continued
	// transfer) with its validator (strong ETag, else Last-Modified; "" when
	// the server gives neither) and size (-1 when unknown), so a caller can
	// record what it is about to keep without asking the server first.
	OnStart func(validator string, size int64) error

	prefix     hash.Hash // SHA-256 of the first From bytes
	onResponse func(r *Reader, etag, modified string) error
}

// Reader is an open object.
type Reader struct {
	ctx     context.Context
	url     string
	opt     Options
	body    io.ReadCloser
	done    int64
	total   int64
	validat string // ETag or Last-Modified, so a resume never splices two versions
	sum     hash.Hash
	retries int
	final   error // io.EOF or the checksum error, repeated on every later Read
	// restarted: a continued transfer (Options.From) started over, because
	// the object changed or the server cannot continue it.
	restarted bool
}

// Resolve turns a possibly relative URL into an absolute one against base.
func Resolve(base, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	if u.IsAbs() {
		return raw, nil
	}
	if base == "" {
		return "", fmt.Errorf("relative URL %q needs a file server (strata.server= or --server)", raw)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("invalid file server URL %q: %w", base, err)
	}
	if !strings.HasSuffix(b.Path, "/") {
		b.Path += "/"
	}
	return b.ResolveReference(u).String(), nil
}

// NewTransport is the transport Open uses by default: the environment's
// proxy, and a server that stops answering is noticed.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
}

// Open starts reading the object at raw.
func Open(ctx context.Context, raw string, opt Options) (*Reader, error) {
	full, err := Resolve(opt.Base, raw)
	if err != nil {
		return nil, err
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Transport: NewTransport()}
	}
	if opt.Retries == 0 {
		opt.Retries = 5
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	r := &Reader{ctx: ctx, url: full, opt: opt, total: -1}
	if opt.SHA256 != "" {
		r.sum = sha256.New()
	}
	if opt.From > 0 {
		r.done, r.validat = opt.From, opt.Validator
		if r.sum != nil {
			if opt.prefix == nil {
				return nil, fmt.Errorf("fetch %s: continuing at byte %d needs the SHA-256 of the bytes before", full, opt.From)
			}
			r.sum = opt.prefix
		}
	}
	u, _ := url.Parse(full)
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", full, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("fetch %s: %w", full, err)
		}
		r.total = st.Size()
		v := fmt.Sprintf("file:%d:%d", st.Size(), st.ModTime().UnixNano())
		if r.done > 0 && (r.validat != v || r.done > r.total) {
			r.restart()
		}
		r.validat = v
		if r.done > 0 {
			if _, err := f.Seek(r.done, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("fetch %s: %w", full, err)
			}
		} else if err := r.started("", ""); err != nil {
			f.Close()
			return nil, err
		}
		r.body = f
	case "http", "https":
		if err := r.request(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("fetch %s: unsupported scheme %q (use http, https or file)", full, u.Scheme)
	}
	return r, nil
}

// Size is the object's size, or -1 when the server did not say.
func (r *Reader) Size() int64 { return r.total }

// URL is the absolute URL being read.
func (r *Reader) URL() string { return r.url }

// started tells the hooks that the object is read from its start.
func (r *Reader) started(etag, modified string) error {
	if r.opt.onResponse != nil {
		if err := r.opt.onResponse(r, etag, modified); err != nil {
			return err
		}
	}
	if r.opt.OnStart != nil {
		return r.opt.OnStart(r.validat, r.total)
	}
	return nil
}

// request opens the body from r.done on.
func (r *Reader) request() error {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", r.url, err)
	}
	for k, vs := range r.opt.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.done > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", r.done))
		if r.validat != "" {
			req.Header.Set("If-Range", r.validat)
		}
	}
	r.opt.Log("fetch: GET %s (from byte %d)", r.url, r.done)
	resp, err := r.opt.Client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", r.url, err)
	}
	// A transfer continued from an earlier one (Options.From) that cannot
	// continue starts over: with this whole object, or asking again.
	first := r.opt.From > 0 && !r.restarted && r.retries == 0
	if first && r.done > 0 && resp.StatusCode == http.StatusOK {
		r.opt.Log("fetch: %s changed since byte %d was written (or the server does not continue transfers): starting over", r.url, r.done)
		r.restart()
	}
	if first && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		resp.Body.Close()
		r.opt.Log("fetch: %s is not longer than the %d bytes kept: starting over", r.url, r.done)
		r.restart()
		return r.request()
	}
	switch {
	case r.done == 0 && resp.StatusCode == http.StatusOK:
		r.total = resp.ContentLength
		etag, modified := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		if etag != "" && !strings.HasPrefix(etag, "W/") {
			r.validat = etag
		} else {
			r.validat = modified
		}
		if err := r.started(etag, modified); err != nil {
			resp.Body.Close()
			return err
		}
	case r.done > 0 && resp.StatusCode == http.StatusPartialContent:
		var start, end, total int64 = -1, -1, -1
		fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total)
		if start != r.done {
			resp.Body.Close()
			return fmt.Errorf("fetch %s: server resumed at byte %d, asked for %d", r.url, start, r.done)
		}
		if r.total < 0 && total > 0 {
			r.total = total
		}
	case r.done > 0 && resp.StatusCode == http.StatusOK:
		// The object changed (If-Range failed) or the server ignores ranges:
		// splicing would corrupt it, so stop with a clear error.
		resp.Body.Close()
		return fmt.Errorf("fetch %s: cannot resume at byte %d: the server sent the whole object again (it changed, or the server does not support ranges)", r.url, r.done)
	default:
		resp.Body.Close()
		return fmt.Errorf("fetch %s: %s", r.url, resp.Status)
	}
	r.body = resp.Body
	return nil
}

// Read reads the object; a dropped connection is resumed where it stopped.
func (r *Reader) Read(p []byte) (int, error) {
	if r.final != nil {
		return 0, r.final
	}
	for {
		n, err := r.body.Read(p)
		if n > 0 {
			r.done += int64(n)
			if r.sum != nil {
				r.sum.Write(p[:n])
			}
			if r.opt.Progress != nil {
				r.opt.Progress(r.done, r.total)
			}
		}
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && (r.total < 0 || r.done == r.total):
			r.final = io.EOF
			if err := r.verify(); err != nil {
				r.final = err
			}
			return n, r.final
		case r.ctx.Err() != nil:
			return n, r.ctx.Err()
		}
		// Cut short (an early EOF or a network error): resume, unless this is a file.
		if _, isFile := r.body.(*os.File); isFile || r.retries >= r.opt.Retries {
			return n, fmt.Errorf("fetch %s: transfer broke at byte %d of %s after %d resumes: %w", r.url, r.done, sizeText(r.total), r.retries, err)
		}
		r.body.Close()
		r.retries++
		r.opt.Log("fetch: %s broke at byte %d (%v); resuming (%d/%d)", r.url, r.done, err, r.retries, r.opt.Retries)
		select {
		case <-time.After(time.Duration(r.retries) * 200 * time.Millisecond):
		case <-r.ctx.Done():
			return n, r.ctx.Err()
		}
		if rerr := r.request(); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *Reader) verify() error {
	if r.sum == nil {
		return nil
	}
	got := hex.EncodeToString(r.sum.Sum(nil))
	if !strings.EqualFold(got, r.opt.SHA256) {
		from := r.opt.SumFrom
		if from == "" {
			from = "the profile"
		}
		return fmt.Errorf("fetch %s: %w: got sha256 %s, %s says %s", r.url, ErrChecksum, got, from, r.opt.SHA256)
	}
	return nil
}

// restart drops what an earlier transfer left (Options.From): reading
// starts again at byte 0.
func (r *Reader) restart() {
	r.done, r.restarted, r.validat = 0, true, ""
	if r.sum != nil {
		r.sum = sha256.New()
	}
}

// Restarted says a transfer continued from Options.From started over
// instead; Open reports it before the first Read.
func (r *Reader) Restarted() bool { return r.restarted }

// Close releases the connection.
func (r *Reader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// Resumes is how many times the transfer was resumed.
func (r *Reader) Resumes() int { return r.retries }

func sizeText(n int64) string {
	if n < 0 {
		return "unknown size"
	}
	return strconv.FormatInt(n, 10)
}
