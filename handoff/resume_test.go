package handoff_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/serve"
)

const big = 24 << 20

// TestHTTPResumeAfterCut cuts the connection once, midway through a large
// file of a manifest dataset and through an archive, and checks that the
// transfer resumed (not restarted) and the result is byte for byte right.
func TestHTTPResumeAfterCut(t *testing.T) {
	t.Parallel()
	testserver.Need(t, "tar", "zstd")
	dir := t.TempDir()
	src := filepath.Join(dir, "datasets/video")
	randomFile(t, filepath.Join(src, "film.mkv"), big, 42)
	randomFile(t, filepath.Join(src, "small.txt"), 1000, 43)
	sha256sums(t, src)
	arc := filepath.Join(dir, "video.tar.zst")
	sum := tarball(t, src, arc, "zstd -q -1")
	srv := httptest.NewServer(serve.Handler(dir, nil))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		ds   profile.Dataset
	}{
		{"manifest", profile.Dataset{Name: "video", Source: "datasets/video/", Path: "/srv/video"}},
		{"archive", profile.Dataset{Name: "video", Source: "video.tar.zst", SHA256: sum, Path: "/srv/video"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := testserver.NewProxy(t, strings.TrimPrefix(srv.URL, "http://"), 5<<20)
			root := newRoot(t)
			r := handOff(t, root, &profile.Profile{Datasets: []profile.Dataset{tc.ds}}, handoff.Options{Server: "http://" + proxy.Addr + "/", FileJobs: 1})
			r.mustDone(t, "video")
			if proxy.Cuts() != 1 {
				t.Fatalf("the proxy cut %d connections, want 1", proxy.Cuts())
			}
			got := listing(t, filepath.Join(root, "srv/video"), "SHA256SUMS")
			if want := listing(t, src, "SHA256SUMS"); got != want {
				t.Errorf("after the cut:\n%s\nwant\n%s", got, want)
			}
			if !strings.Contains(r.log.String(), "resuming (1/5)") || !regexp.MustCompile(`GET \S+ \(from byte [1-9]`).MatchString(r.log.String()) {
				t.Errorf("no resume in the log:\n%s", r.log)
			}
			// Resumed, not restarted: the bytes sent are the object plus
			// little more than nothing, not the object twice.
			if total := proxy.Total(); total > big+big/4 {
				t.Errorf("the proxy carried %d bytes for a %d-byte object: restarted, not resumed (%v)", total, big, proxy.Bytes())
			}
			if ev := r.ev.last("video"); !strings.Contains(ev.Detail, "resumed after 1 cut(s)") {
				t.Errorf("done event does not mention the resume: %q", ev.Detail)
			}
		})
	}
}

// TestRsyncResumeAfterCut cuts an rsync daemon transfer once; the retry
// continues from the partial file (--partial-dir) instead of sending it all.
func TestRsyncResumeAfterCut(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "video")
	randomFile(t, filepath.Join(src, "film.mkv"), big, 44)
	sha256sums(t, src)
	_, port := testserver.RsyncDaemon(t, testserver.RsyncModule{Name: "video", Path: src})
	proxy := testserver.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", port), 12<<20)
	root := newRoot(t)
	p := &profile.Profile{Datasets: []profile.Dataset{{Name: "video", Source: "rsync://" + proxy.Addr + "/video", Path: "/srv/video"}}}
	r := handOff(t, root, p, handoff.Options{})
	r.mustDone(t, "video")
	if proxy.Cuts() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1: %v", proxy.Cuts(), proxy.Bytes())
	}
	if got, want := listing(t, filepath.Join(root, "srv/video")), listing(t, src); got != want {
		t.Errorf("after the cut:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(r.log.String(), "resuming with the partial files") {
		t.Errorf("no resume in the log:\n%s", r.log)
	}
	// Connections: the manifest, the cut transfer, the resumed one. The
	// resumed one must not carry the whole file again.
	per := proxy.Bytes()
	t.Logf("bytes per connection: %v", per)
	if last := per[len(per)-1]; last > big*3/4 {
		t.Errorf("the resumed transfer carried %d of %d bytes: it started over (%v)", last, big, per)
	}
	if exists(filepath.Join(root, "srv/video/.strata-partial")) {
		t.Error("partial directory left after success")
	}
}
