package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// objectServer serves one object whose content and ETag the test can
// change; while cut > 0 a response dies after cut bytes of body. It counts
// the body bytes it sent and records each request's Range and If-Range.
type objectServer struct {
	mu     sync.Mutex
	data   []byte
	etag   string
	cut    int
	sent   int64
	ranges []string
}

func (s *objectServer) set(data []byte, etag string, cut int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.etag, s.cut, s.sent, s.ranges = data, etag, cut, 0, nil
}

func (s *objectServer) stats() (int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, append([]string(nil), s.ranges...)
}

func (s *objectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, etag, cut := s.data, s.etag, s.cut
	s.ranges = append(s.ranges, r.Header.Get("Range")+" if-range "+r.Header.Get("If-Range"))
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	cw := &countingWriter{ResponseWriter: w, s: s}
	if cut > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		cw.Write(data[:cut])
		w.(http.Flusher).Flush()
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close() // the connection drops mid-body
		return
	}
	http.ServeContent(cw, r, "obj", time.Unix(0, 0), bytes.NewReader(data))
}

type countingWriter struct {
	http.ResponseWriter
	s *objectServer
}

// Write counts the bytes before they go out, then takes back what did not:
// counted afterwards, a client that has read the last bytes and returned
// could see a count without them (CI did).
func (c *countingWriter) Write(p []byte) (int, error) {
	c.add(int64(len(p)))
	n, err := c.ResponseWriter.Write(p)
	c.add(int64(n - len(p)))
	return n, err
}

func (c *countingWriter) add(n int64) {
	c.s.mu.Lock()
	c.s.sent += n
	c.s.mu.Unlock()
}

// A transfer cut short, then a fresh Download (as after a restart of
// strata: nothing shared but the files) continues from the bytes on disk.
func TestDownloadContinuesAfterRestart(t *testing.T) {
	data, sum := payload(3 << 20)
	srv := &objectServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "film.mkv")
	const cut = 1<<20 + 12345

	srv.set(data, `"v1"`, cut)
	// Retries -1: no reconnection within the call, so it fails as a
	// process killed mid-transfer would leave things.
	_, err := Download(context.Background(), ts.URL+"/film.mkv", dest, Options{SHA256: sum, Retries: -1})
	if err == nil || !strings.Contains(err.Error(), "transfer broke") {
		t.Fatalf("first transfer: want a broken transfer, got %v", err)
	}
	if st, err := os.Stat(dest + PartSuffix); err != nil || st.Size() != cut {
		t.Fatalf("partial file: %v (size %v), want %d bytes", err, st, cut)
	}
	var sc Sidecar
	if b, err := os.ReadFile(dest + SidecarSuffix); err != nil || json.Unmarshal(b, &sc) != nil || sc.Validator != `"v1"` || sc.URL != ts.URL+"/film.mkv" {
		t.Fatalf("sidecar %+v (%v)", sc, err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("an incomplete download has its final name")
	}

	srv.set(data, `"v1"`, 0)
	var last int64
	res, err := Download(context.Background(), ts.URL+"/film.mkv", dest, Options{SHA256: sum, Progress: func(d, _ int64) { last = d }})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, data) {
		t.Fatal("continued download differs from the original")
	}
	sent, ranges := srv.stats()
	if res.Reused != cut || res.Transferred != int64(len(data)-cut) || res.Restarted || sent != int64(len(data)-cut) {
		t.Errorf("reused %d, transferred %d (server sent %d), restarted %v; want %d kept and %d sent", res.Reused, res.Transferred, sent, res.Restarted, cut, len(data)-cut)
	}
	if len(ranges) != 1 || ranges[0] != fmt.Sprintf(`bytes=%d- if-range "v1"`, cut) {
		t.Errorf("requests %q", ranges)
	}
	if last != int64(len(data)) {
		t.Errorf("progress ended at %d", last)
	}
	for _, p := range []string{dest + PartSuffix, dest + SidecarSuffix} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

// The object changed between the two runs: the new one is fetched whole,
// never spliced onto the old one's first bytes.
func TestDownloadRestartsWhenObjectChanged(t *testing.T) {
	old, oldSum := payload(2 << 20)
	srv := &objectServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "data.bin")
	srv.set(old, `"old"`, 700_000)
	if _, err := Download(context.Background(), ts.URL+"/data.bin", dest, Options{Retries: -1}); err == nil {
		t.Fatal("first transfer did not break")
	}
	_ = oldSum
	changed := bytes.Repeat([]byte("new content "), 200_000)
	srv.set(changed, `"new"`, 0)
	res, err := Download(context.Background(), ts.URL+"/data.bin", dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, changed) {
		t.Fatalf("got %d bytes starting %q, want the new object whole", len(got), got[:min(len(got), 20)])
	}
	sent, ranges := srv.stats()
	if !res.Restarted || res.Reused != 0 || res.Transferred != int64(len(changed)) || sent != int64(len(changed)) {
		t.Errorf("restarted %v, reused %d, transferred %d, sent %d", res.Restarted, res.Reused, res.Transferred, sent)
	}
	if len(ranges) != 1 || ranges[0] != `bytes=700000- if-range "old"` {
		t.Errorf("requests %q", ranges)
	}
}

// Bytes on disk that are not what the server sent (a torn write, an edit)
// fail the checksum; the partial is removed so the next run starts clean.
func TestDownloadCorruptPrefix(t *testing.T) {
	data, sum := payload(1 << 20)
	srv := &objectServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "obj")
	srv.set(data, `"v"`, 300_000)
	Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum, Retries: -1})
	f, err := os.OpenFile(dest+PartSuffix, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage"), 1000)
	f.Close()
	srv.set(data, `"v"`, 0)
	_, err = Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("want ErrChecksum, got %v", err)
	}
	if _, err := os.Stat(dest + PartSuffix); err == nil {
		t.Error("a partial file that failed its checksum was kept")
	}
	res, err := Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum})
	if got, _ := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) || res.Reused != 0 {
		t.Errorf("third run: %v, reused %d", err, res.Reused)
	}
}

// A different expected sum (the profile changed) does not continue the
// old bytes; neither does a partial without a sidecar.
func TestDownloadIgnoresForeignPartial(t *testing.T) {
	data, sum := payload(2 << 20)
	srv := &objectServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "obj")
	os.WriteFile(dest+PartSuffix, data[:1000], 0o600)
	srv.set(data, `"v"`, 0)
	res, err := Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum})
	if err != nil || res.Reused != 0 || res.Transferred != int64(len(data)) {
		t.Fatalf("no sidecar: %v, reused %d, transferred %d", err, res.Reused, res.Transferred)
	}
	os.Remove(dest)
	srv.set(data, `"v"`, 200_000)
	Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: strings.Repeat("0", 64), Retries: -1})
	if _, err := os.Stat(dest + SidecarSuffix); err != nil {
		t.Fatalf("no sidecar after a cut: %v", err)
	}
	srv.set(data, `"v"`, 0)
	res, err = Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum})
	if err != nil || res.Reused != 0 {
		t.Fatalf("other sum: %v, reused %d", err, res.Reused)
	}
}

// A small object gets no sidecar: fetched again whole, it costs less than
// recording it.
func TestDownloadSmallNoSidecar(t *testing.T) {
	data, sum := payload(200_000)
	srv := &objectServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "obj")
	srv.set(data, `"v"`, 100_000)
	if _, err := Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum, Retries: -1}); err == nil {
		t.Fatal("the transfer was not cut")
	}
	if _, err := os.Stat(dest + SidecarSuffix); err == nil {
		t.Error("a sidecar for a 200 kB object")
	}
	srv.set(data, `"v"`, 0)
	res, err := Download(context.Background(), ts.URL+"/obj", dest, Options{SHA256: sum})
	if got, _ := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) || res.Reused != 0 {
		t.Errorf("second run: %v, reused %d", err, res.Reused)
	}
}

// file:// sources continue too, and start over when the file changed.
func TestDownloadFileURL(t *testing.T) {
	data, sum := payload(100_000)
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, data, 0o644)
	dest := filepath.Join(t.TempDir(), "obj")
	st, _ := os.Stat(src)
	WriteSidecar(dest+SidecarSuffix, Sidecar{URL: "file://" + src, Validator: fmt.Sprintf("file:%d:%d", st.Size(), st.ModTime().UnixNano()), Size: st.Size(), SHA256: sum})
	os.WriteFile(dest+PartSuffix, data[:40_000], 0o600)
	res, err := Download(context.Background(), "file://"+src, dest, Options{SHA256: sum})
	if got, _ := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) || res.Reused != 40_000 || res.Transferred != 60_000 {
		t.Fatalf("%v: reused %d transferred %d", err, res.Reused, res.Transferred)
	}
}
