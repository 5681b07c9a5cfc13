package system

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/fetch"
	"github.com/stratahq/strata/restore/unpack"
)

// ImageMarker records, inside the target, which base image was unpacked
// completely. It is written last, so its presence means done.
const ImageMarker = "var/lib/strata/base-image"

// ImageOptions say where the image comes from and who hears about progress.
type ImageOptions struct {
	Server   string       // file server URL for relative image URLs
	Header   http.Header  // credentials, if the server wants them
	Client   *http.Client // e.g. one trusting the file server's private CA; default fetch's
	Progress func(done, total int64)
	Log      func(format string, args ...any)
}

// ImageDone reports whether img is already unpacked in root.
func ImageDone(root string, img profile.Image) bool {
	b, err := os.ReadFile(filepath.Join(root, ImageMarker))
	return err == nil && strings.Fields(string(b))[0] == img.SHA256
}

// UnpackImage streams img from the file server into root, verifying its
// SHA-256 on the way. On any failure (a cut that cannot be resumed, a corrupt
// archive, a checksum mismatch, a hostile entry) it returns an error and does
// not mark the image done, so a re-run unpacks it again.
func UnpackImage(ctx context.Context, root string, img profile.Image, opt ImageOptions) (unpack.Stats, error) {
	start := time.Now()
	r, err := fetch.Open(ctx, img.URL, fetch.Options{Base: opt.Server, SHA256: img.SHA256, Header: opt.Header, Client: opt.Client, Progress: opt.Progress, Log: opt.Log})
	if err != nil {
		return unpack.Stats{}, fmt.Errorf("base system: %w", creds.ExplainTLS(err))
	}
	defer r.Close()
	_ = os.Remove(filepath.Join(root, ImageMarker)) // a new image is not done until it is
	st, err := unpack.Archive(ctx, r, root, unpack.Options{})
	if err != nil {
		return st, fmt.Errorf("base system %s: %w", r.URL(), err)
	}
	// The checksum is checked at the end of the compressed stream, which the
	// tar reader may not have reached (it stops at the end-of-archive blocks).
	if _, err := io.Copy(io.Discard, r); err != nil {
		return st, fmt.Errorf("base system %s: %w", r.URL(), err)
	}
	marker := filepath.Join(root, ImageMarker)
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		return st, fmt.Errorf("base system: %w", err)
	}
	line := fmt.Sprintf("%s %s %s\n", img.SHA256, r.URL(), time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(marker, []byte(line), 0o644); err != nil {
		return st, fmt.Errorf("base system: %w", err)
	}
	if opt.Log != nil {
		opt.Log("base system: %d entries, %d bytes from %s in %s (%d resumes)", st.Entries, st.Bytes, r.URL(), time.Since(start).Round(time.Millisecond), r.Resumes())
	}
	return st, nil
}
