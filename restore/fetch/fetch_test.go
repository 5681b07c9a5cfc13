package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func payload(n int) ([]byte, string) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

// cutter serves data, but the first `cuts` full requests die after `after` bytes.
func cutter(data []byte, etag string, cuts int32, after int) (http.Handler, *atomic.Int32) {
	var n atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		if n.Add(1) <= cuts {
			start := 0
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			if start > 0 {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
				w.WriteHeader(http.StatusPartialContent)
			}
			w.Write(data[start:min(start+after, len(data))])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // the connection drops mid-body
			return
		}
		http.ServeContent(w, r, "obj", time.Unix(0, 0), bytes.NewReader(data))
	}), &n
}

func readAll(t *testing.T, url string, opt Options) ([]byte, *Reader, error) {
	t.Helper()
	r, err := Open(context.Background(), url, opt)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, r, err
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	data, sum := payload(3 << 20)
	h, reqs := cutter(data, `"v1"`, 1, 1<<20)
	srv := httptest.NewServer(h)
	defer srv.Close()
	var last int64
	got, r, err := readAll(t, "images/base.tar", Options{Base: srv.URL, SHA256: sum, Progress: func(d, _ int64) { last = d }})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("resumed download differs from the original")
	}
	if r.Resumes() != 1 || reqs.Load() != 2 || last != int64(len(data)) {
		t.Errorf("resumes %d, requests %d, progress %d", r.Resumes(), reqs.Load(), last)
	}
}

func TestChecksumMismatch(t *testing.T) {
	data, _ := payload(100 << 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer srv.Close()
	_, _, err := readAll(t, srv.URL+"/x", Options{SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "the profile says 0000") {
		t.Fatalf("want ErrChecksum naming both sums, got %v", err)
	}
}

func TestNotFoundNamesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Open(context.Background(), srv.URL+"/images/missing.tar.zst", Options{})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "missing.tar.zst") {
		t.Fatalf("want a 404 naming the URL, got %v", err)
	}
}

// A server that changed the object between the cut and the resume must not
// get its two versions spliced together.
func TestResumeRefusesChangedObject(t *testing.T) {
	data, _ := payload(1 << 20)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("ETag", `"old"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:1000])
			w.(http.Flusher).Flush()
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		w.Header().Set("ETag", `"new"`)
		http.ServeContent(w, r, "obj", time.Unix(0, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	_, _, err := readAll(t, srv.URL+"/obj", Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot resume") {
		t.Fatalf("want a refusal to splice, got %v", err)
	}
}

func TestGivesUpAfterRetries(t *testing.T) {
	data, _ := payload(1 << 20)
	h, _ := cutter(data, `"v"`, 100, 1000)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, _, err := readAll(t, srv.URL+"/obj", Options{Retries: 2})
	if err == nil || !strings.Contains(err.Error(), "after 2 resumes") {
		t.Fatalf("want a bounded failure, got %v", err)
	}
}

func TestFileURL(t *testing.T) {
	data, sum := payload(4096)
	p := filepath.Join(t.TempDir(), "img.tar")
	os.WriteFile(p, data, 0o644)
	got, r, err := readAll(t, "file://"+p, Options{SHA256: sum})
	if err != nil || !bytes.Equal(got, data) || r.Size() != 4096 {
		t.Fatalf("file fetch: %v", err)
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct{ base, raw, want string }{
		{"http://10.0.2.2:8080", "images/a.tar", "http://10.0.2.2:8080/images/a.tar"},
		{"http://srv/strata/", "images/a.tar", "http://srv/strata/images/a.tar"},
		{"http://srv/", "https://other/a", "https://other/a"},
	} {
		if got, err := Resolve(tc.base, tc.raw); err != nil || got != tc.want {
			t.Errorf("Resolve(%q,%q) = %q, %v", tc.base, tc.raw, got, err)
		}
	}
	if _, err := Resolve("", "images/a.tar"); err == nil {
		t.Error("relative URL without a server must fail")
	}
}

func BenchmarkFetch(b *testing.B) {
	data, sum := payload(16 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "obj", time.Unix(0, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := Open(context.Background(), srv.URL+"/obj", Options{SHA256: sum})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
