package handoff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/serve"
)

// childEnv names the environment that makes the test binary a hand-off
// process of its own (see TestMain): ROOT SERVER SOURCE, space-separated.
const childEnv = "STRATA_HANDOFF_TEST_CHILD"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Exit(childHandoff(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

// childHandoff runs a hand-off of one dataset "video" at /srv/video, logging
// to stderr: what a fresh strata process does.
func childHandoff(args []string) int {
	if len(args) != 3 {
		fmt.Fprintf(os.Stderr, "child: want ROOT SERVER SOURCE, got %q\n", args)
		return 2
	}
	p := &profile.Profile{Datasets: []profile.Dataset{{Name: "video", Source: args[2], Path: "/srv/video"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := handoff.Run(ctx, p, handoff.Options{Root: args[0], Server: args[1], Retries: 1,
		Log: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// stallServer serves dir and counts the bytes of one path's bodies; while
// stall is set, it stops sending that path after stallAt bytes and holds the
// connection open, as a server behind a dead link looks.
type stallServer struct {
	URL     string
	path    string
	stallAt int64
	stall   atomic.Bool
	served  atomic.Int64
	others  atomic.Int64 // requests for path other than GET (such as HEAD): none wanted
}

func newStallServer(t *testing.T, dir, path string, stallAt int64) *stallServer {
	s := &stallServer{path: path, stallAt: stallAt}
	s.stall.Store(true)
	files := serve.Handler(dir, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != s.path {
			files.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet {
			s.others.Add(1)
		}
		files.ServeHTTP(&countWriter{ResponseWriter: w, s: s, stall: s.stall.Load(), ctx: r.Context()}, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/"
	return s
}

type countWriter struct {
	http.ResponseWriter
	s     *stallServer
	stall bool
	sent  int64
	ctx   context.Context
}

func (w *countWriter) Write(p []byte) (int, error) {
	if w.stall && w.sent+int64(len(p)) > w.s.stallAt {
		k, _ := w.ResponseWriter.Write(p[:w.s.stallAt-w.sent])
		w.sent += int64(k)
		w.s.served.Add(int64(k))
		w.ResponseWriter.(http.Flusher).Flush()
		<-w.ctx.Done()
		return k, errors.New("stalled for the test")
	}
	k, err := w.ResponseWriter.Write(p)
	w.sent += int64(k)
	w.s.served.Add(int64(k))
	return k, err
}

// TestArchiveResumeAfterKill kills a strata process (SIGKILL, as a power cut
// does) in the middle of an archive dataset's download, then runs a fresh
// one: it unpacks what the first one spooled and downloads only the rest,
// or, when the archive on the server changed, downloads it from its start
// (never splicing two versions). The result is checked byte for byte.
func TestArchiveResumeAfterKill(t *testing.T) {
	t.Parallel()
	needRoot(t)
	testserver.Need(t, "tar", "zstd", "sha256sum")
	const stallAt = 10 << 20 // a whole number of the download's 1 MiB read-ahead chunks
	for _, change := range []string{"none", "content", "date"} {
		t.Run("changed="+change, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(t.TempDir(), "video")
			randomFile(t, filepath.Join(src, "film.mkv"), big, 50)
			randomFile(t, filepath.Join(src, "notes/a.txt"), 5000, 51)
			arc := filepath.Join(dir, "video.tar.zst")
			tarball(t, src, arc, "zstd -q -1")
			sha256sums(t, dir)
			srv := newStallServer(t, dir, "/video.tar.zst", stallAt)
			root := newRoot(t)
			spool := filepath.Join(root, "srv/video/.strata-staging/partial/archive")

			// The first process: killed once the spool holds stallAt bytes.
			first := childProcess(t, root, srv.URL, "video.tar.zst")
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for {
				if st, err := os.Stat(spool + ".part"); err == nil && st.Size() == stallAt {
					break
				}
				if time.Now().After(deadline) {
					first.Process.Kill()
					first.Wait()
					t.Fatalf("the spool did not reach %d bytes; the process said:\n%s", stallAt, first.Stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			first.Process.Kill()
			first.Wait()
			if marker(t, root, "dataset", "video") != nil || exists(filepath.Join(root, "srv/video/film.mkv")) {
				t.Fatal("a killed hand-off left the dataset looking done")
			}
			if !exists(spool + ".part.json") {
				t.Fatal("no sidecar beside the spool")
			}

			want := src
			switch change {
			case "content": // another archive of the same size, with its new sum
				want = filepath.Join(t.TempDir(), "video")
				randomFile(t, filepath.Join(want, "film.mkv"), big, 52)
				randomFile(t, filepath.Join(want, "notes/a.txt"), 5000, 53)
				tarball(t, want, arc, "zstd -q -1")
				sha256sums(t, dir)
			case "date": // the same bytes, another Last-Modified: If-Range does not hold
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(arc, later, later); err != nil {
					t.Fatal(err)
				}
			}
			st, err := os.Stat(arc)
			if err != nil {
				t.Fatal(err)
			}
			size := st.Size()

			srv.stall.Store(false)
			srv.served.Store(0)
			second := childProcess(t, root, srv.URL, "video.tar.zst")
			if err := second.Run(); err != nil {
				t.Fatalf("the second process: %v\n%s", err, second.Stderr)
			}
			log := fmt.Sprint(second.Stderr)
			if got, want := listing(t, filepath.Join(root, "srv/video")), listing(t, want); got != want {
				t.Fatalf("after the restart:\n%s\nwant\n%s\nlog:\n%s", got, want, log)
			}
			if marker(t, root, "dataset", "video") == nil {
				t.Error("no done marker")
			}
			continued := fmt.Sprintf("continuing after the %d bytes an earlier run left", stallAt)
			served := srv.served.Load()
			if change == "none" {
				if served != size-stallAt {
					t.Errorf("the second process was sent %d bytes of the archive; %d were left", served, size-stallAt)
				}
				if !strings.Contains(log, continued) {
					t.Errorf("no continuation in the log:\n%s", log)
				}
			} else {
				if served != size {
					t.Errorf("the second process was sent %d bytes of a changed %d-byte archive: want it whole", served, size)
				}
				if strings.Contains(log, continued) {
					t.Errorf("continued a changed archive:\n%s", log)
				}
			}
			if n := srv.others.Load(); n > 0 {
				t.Errorf("%d requests other than GET for the archive: the spool's record comes from the GET's response", n)
			}
			if change == "date" && !strings.Contains(log, "starting over") {
				t.Errorf("the log does not say the changed archive started over:\n%s", log)
			}
			if exists(filepath.Join(root, "srv/video/.strata-staging")) {
				t.Error("staging (and the spool) left after success")
			}
		})
	}
}

// childProcess is a hand-off of its own: this test binary, in TestMain.
func childProcess(t *testing.T, root, server, source string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+root+" "+server+" "+source)
	cmd.Stderr = &bytes.Buffer{}
	cmd.Stdout = cmd.Stderr
	return cmd
}

// TestArchiveSpoolComplete: a run killed after the download ended but
// before the unpacking did leaves the whole archive in the spool; the next
// run unpacks it without the network, verified. A spool whose bytes went
// bad fails the checksum, is removed, and the run after fetches it again.
func TestArchiveSpoolComplete(t *testing.T) {
	t.Parallel()
	testserver.Need(t, "tar", "zstd")
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "video")
	randomFile(t, filepath.Join(src, "film.mkv"), 3<<20, 54)
	arc := filepath.Join(dir, "video.tar.zst")
	sum := tarball(t, src, arc, "zstd -q -1")
	var down atomic.Bool
	down.Store(true)
	files := serve.Handler(dir, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	p := &profile.Profile{Datasets: []profile.Dataset{{Name: "video", Source: "video.tar.zst", SHA256: sum, Path: "/srv/video"}}}
	b, err := os.ReadFile(arc)
	if err != nil {
		t.Fatal(err)
	}

	root := newRoot(t)
	spool := filepath.Join(root, "srv/video/.strata-staging/partial/archive")
	write(t, spool, string(b))
	r := handOff(t, root, p, handoff.Options{Server: srv.URL + "/"})
	r.mustDone(t, "video")
	if got, want := listing(t, filepath.Join(root, "srv/video")), listing(t, src); got != want {
		t.Errorf("from the spool:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(r.log.String(), "unpacking the copy an earlier run downloaded whole") || strings.Contains(r.log.String(), "GET "+srv.URL+"/video.tar.zst") {
		t.Errorf("the archive did not come from the spool alone:\n%s", r.log)
	}
	if exists(filepath.Join(root, "srv/video/.strata-staging")) {
		t.Error("staging (and the spool) left after success")
	}

	root = newRoot(t)
	spool = filepath.Join(root, "srv/video/.strata-staging/partial/archive")
	bad := append([]byte{}, b...)
	bad[len(bad)/2] ^= 1
	write(t, spool, string(bad))
	r = handOff(t, root, p, handoff.Options{Server: srv.URL + "/"})
	if it := r.status(t, "video"); it.Status != handoff.Failed || !strings.Contains(fmt.Sprint(it.Err), "checksum mismatch") {
		t.Fatalf("a spool gone bad: %s (%v), want a checksum mismatch", it.Status, it.Err)
	}
	if exists(spool) || exists(filepath.Join(root, "srv/video/film.mkv")) {
		t.Fatal("a spool that did not verify was kept, or its content put in place")
	}
	down.Store(false)
	r = handOff(t, root, p, handoff.Options{Server: srv.URL + "/"})
	r.mustDone(t, "video")
	if got, want := listing(t, filepath.Join(root, "srv/video")), listing(t, src); got != want {
		t.Errorf("fetched again:\n%s\nwant\n%s", got, want)
	}
}
