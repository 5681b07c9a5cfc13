package capture

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/stratahq/strata/internal/run"
)

// FS is how capture reads the machine's files: the kernel's (/proc, /sys,
// device heads) and the system's (/etc, /var/lib, the ESP). Paths are
// absolute. OSFS is the real one; a Recording replays a recorded machine.
type FS interface {
	ReadFile(name string) ([]byte, error)
	// ReadDir lists a directory's entry names, sorted.
	ReadDir(name string) ([]string, error)
	// Stat describes a file, following symlinks.
	Stat(name string) (FileInfo, error)
	// ReadAt reads n bytes at offset off of a file or block device (fewer
	// at its end).
	ReadAt(name string, off int64, n int) ([]byte, error)
}

// FileInfo is what capture needs to know about a file.
type FileInfo struct {
	Dir  bool
	Mode fs.FileMode // permission bits
	UID  int
	GID  int
}

// OSFS reads the running machine.
type OSFS struct{}

func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

func (OSFS) ReadDir(name string) ([]string, error) {
	es, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name()
	}
	return out, nil
}

func (OSFS) Stat(name string) (FileInfo, error) {
	st, err := os.Stat(name)
	if err != nil {
		return FileInfo{}, err
	}
	fi := FileInfo{Dir: st.IsDir(), Mode: st.Mode().Perm()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		fi.UID, fi.GID = int(s.Uid), int(s.Gid)
	}
	return fi, nil
}

func (OSFS) ReadAt(name string, off int64, n int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:m], nil
}

// A Recording is a machine as capture saw it: every command's output and
// every file read. Record wraps a real runner and FS to fill one; a
// Recording is itself a Runner and an FS that replays it, so a probe of a
// real machine becomes a fixture (testdata/hosts/*.txt).
//
// The text format has one section per command or file:
//
//	-- run 0: sfdisk --json /dev/sda --      (then stdout; the number is the exit status)
//	-- file: /etc/fstab --                    (then the content)
//	-- nofile: /etc/crypttab --               (the file does not exist)
//	-- dir: /sys/class/net --                 (then one name per line)
//	-- stat: /etc/.git --                     (then "dir 0755 0 0" or "file 0644 1000 1000")
//	-- read 0+512: /dev/sda --                (then hex: n bytes at offset)
type Recording struct {
	// Options are the capture options the recording was made with (root,
	// disks, storage only), so a replay can use the same.
	Options RecordedOptions
	mu      sync.Mutex
	order   []string
	items   map[string]*recItem
	// optionsItem holds the options section while parsing.
	optionsItem *recItem
}

type recItem struct {
	data []byte
	code int
	err  error // nofile, or a permission error
}

// RecordedOptions are the Options that shape what a probe asks.
type RecordedOptions struct {
	Root    string
	Disks   []string
	Storage bool
}

// NewRecording is an empty recording.
func NewRecording() *Recording { return &Recording{items: map[string]*recItem{}} }

func (r *Recording) put(key string, it *recItem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.items[key]; !ok {
		r.order = append(r.order, key)
	}
	r.items[key] = it
}

func (r *Recording) get(key string) (*recItem, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	it, ok := r.items[key]
	return it, ok
}

// ErrNotRecorded is returned when a replayed probe asks for something the
// recording does not have.
var ErrNotRecorded = errors.New("not in the recording")

// Run replays a command.
func (r *Recording) Run(_ context.Context, c run.Cmd) (run.Result, error) {
	it, ok := r.get("run " + c.String())
	if !ok {
		return run.Result{ExitCode: -1}, fmt.Errorf("%s: %w", c, ErrNotRecorded)
	}
	res := run.Result{Stdout: it.data, ExitCode: it.code}
	if it.code == 127 {
		return res, fmt.Errorf("run %s: %w", c.Name, run.ErrNotFound)
	}
	if it.code != 0 {
		return res, &run.ExitError{Cmd: c.String(), Code: it.code, Stderr: errString(it.err)}
	}
	return res, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (r *Recording) file(key string) (*recItem, error) {
	it, ok := r.get(key)
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrNotRecorded)
	}
	if it.err != nil {
		return nil, it.err
	}
	return it, nil
}

func (r *Recording) ReadFile(name string) ([]byte, error) {
	it, err := r.file("file " + name)
	if err != nil {
		return nil, err
	}
	return it.data, nil
}

func (r *Recording) ReadDir(name string) ([]string, error) {
	it, err := r.file("dir " + name)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(it.data)), nil
}

func (r *Recording) Stat(name string) (FileInfo, error) {
	it, err := r.file("stat " + name)
	if err != nil {
		return FileInfo{}, err
	}
	var kind string
	var mode, uid, gid int
	if _, err := fmt.Sscanf(string(it.data), "%s %o %d %d", &kind, &mode, &uid, &gid); err != nil {
		return FileInfo{}, fmt.Errorf("recording: bad stat %q", it.data)
	}
	return FileInfo{Dir: kind == "dir", Mode: fs.FileMode(mode), UID: uid, GID: gid}, nil
}

func (r *Recording) ReadAt(name string, off int64, n int) ([]byte, error) {
	it, err := r.file(readKey(name, off, n))
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(strings.TrimSpace(string(it.data)))
}

// Record wraps a runner and an FS so that everything they answer is also
// stored in rec.
func Record(rec *Recording, r run.Runner, f FS) (run.Runner, FS) {
	return recRunner{rec, r}, recFS{rec, f}
}

type recRunner struct {
	rec *Recording
	r   run.Runner
}

func (x recRunner) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	res, err := x.r.Run(ctx, c)
	code := res.ExitCode
	switch {
	case errors.Is(err, run.ErrNotFound):
		code = 127
	case err != nil && code == 0:
		code = -1
	}
	var stderr error
	if len(res.Stderr) > 0 {
		stderr = errors.New(strings.TrimSpace(string(res.Stderr)))
	}
	x.rec.put("run "+c.String(), &recItem{data: res.Stdout, code: code, err: stderr})
	return res, err
}

type recFS struct {
	rec *Recording
	f   FS
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func (x recFS) store(key string, data []byte, err error) {
	switch {
	case err == nil:
		x.rec.put(key, &recItem{data: data})
	case notExist(err):
		x.rec.put(key, &recItem{err: fs.ErrNotExist})
	default:
		x.rec.put(key, &recItem{err: fs.ErrPermission})
	}
}

func (x recFS) ReadFile(name string) ([]byte, error) {
	b, err := x.f.ReadFile(name)
	x.store("file "+name, b, err)
	return b, err
}

func (x recFS) ReadDir(name string) ([]string, error) {
	ns, err := x.f.ReadDir(name)
	x.store("dir "+name, []byte(strings.Join(ns, "\n")), err)
	return ns, err
}

func (x recFS) Stat(name string) (FileInfo, error) {
	fi, err := x.f.Stat(name)
	kind := "file"
	if fi.Dir {
		kind = "dir"
	}
	x.store("stat "+name, []byte(fmt.Sprintf("%s %04o %d %d", kind, fi.Mode, fi.UID, fi.GID)), err)
	return fi, err
}

func (x recFS) ReadAt(name string, off int64, n int) ([]byte, error) {
	b, err := x.f.ReadAt(name, off, n)
	x.store(readKey(name, off, n), []byte(hex.EncodeToString(b)), err)
	return b, err
}

func readKey(name string, off int64, n int) string {
	return "read " + strconv.FormatInt(off, 10) + "+" + strconv.Itoa(n) + " " + name
}

// WriteTo writes the recording in its text format, in the order things were
// first asked for.
func (r *Recording) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	b.WriteString("# A machine as strata capture saw it: see capture.Recording for the format.\n")
	fmt.Fprintf(&b, "-- options: --\nroot %s\n", r.Options.Root)
	for _, d := range r.Options.Disks {
		fmt.Fprintf(&b, "disk %s\n", d)
	}
	if r.Options.Storage {
		b.WriteString("storage\n")
	}
	for _, key := range r.order {
		it := r.items[key]
		kind, name, _ := strings.Cut(key, " ")
		switch {
		case kind == "run":
			fmt.Fprintf(&b, "-- run %d: %s --\n", it.code, name)
		case it.err != nil && errors.Is(it.err, fs.ErrNotExist):
			fmt.Fprintf(&b, "-- no%s: %s --\n", kind, name)
			continue
		case it.err != nil:
			fmt.Fprintf(&b, "-- denied%s: %s --\n", kind, name)
			continue
		case kind == "read":
			n, dev, _ := strings.Cut(name, " ")
			fmt.Fprintf(&b, "-- read %s: %s --\n", n, dev)
		default:
			fmt.Fprintf(&b, "-- %s: %s --\n", kind, name)
		}
		b.Write(it.data)
		if len(it.data) > 0 && it.data[len(it.data)-1] != '\n' {
			b.WriteString("\n-- noeol --\n")
		}
	}
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

// ParseRecording reads the text format.
func ParseRecording(data []byte) (*Recording, error) {
	r := NewRecording()
	var cur *recItem
	var body bytes.Buffer
	flush := func() {
		if cur != nil {
			cur.data = append([]byte(nil), body.Bytes()...)
		}
		body.Reset()
	}
	for i, l := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(l, "-- ") || !strings.HasSuffix(strings.TrimRight(l, "\n"), " --") {
			if cur != nil {
				body.WriteString(l)
			}
			continue
		}
		head := strings.TrimSuffix(strings.TrimPrefix(strings.TrimRight(l, "\n"), "-- "), " --")
		if head == "noeol" {
			if cur != nil && body.Len() > 0 {
				body.Truncate(body.Len() - 1)
			}
			continue
		}
		flush()
		if head == "options:" {
			cur = &recItem{}
			r.optionsItem = cur
			continue
		}
		kind, name, ok := strings.Cut(head, ": ")
		if !ok {
			return nil, fmt.Errorf("recording line %d: bad header %q", i+1, head)
		}
		cur = &recItem{}
		switch {
		case strings.HasPrefix(kind, "run "):
			code, err := strconv.Atoi(strings.TrimPrefix(kind, "run "))
			if err != nil {
				return nil, fmt.Errorf("recording line %d: bad exit status in %q", i+1, head)
			}
			cur.code = code
			r.put("run "+name, cur)
		case strings.HasPrefix(kind, "read "):
			r.put("read "+strings.TrimPrefix(kind, "read ")+" "+name, cur)
		case strings.HasPrefix(kind, "no"):
			cur.err = fs.ErrNotExist
			r.put(strings.TrimPrefix(kind, "no")+" "+name, cur)
		case strings.HasPrefix(kind, "denied"):
			cur.err = fs.ErrPermission
			r.put(strings.TrimPrefix(kind, "denied")+" "+name, cur)
		case kind == "file" || kind == "dir" || kind == "stat":
			r.put(kind+" "+name, cur)
		default:
			return nil, fmt.Errorf("recording line %d: unknown section %q", i+1, kind)
		}
	}
	flush()
	if it := r.optionsItem; it != nil {
		for _, l := range strings.Split(string(it.data), "\n") {
			k, v, _ := strings.Cut(l, " ")
			switch k {
			case "root":
				r.Options.Root = v
			case "disk":
				r.Options.Disks = append(r.Options.Disks, v)
			case "storage":
				r.Options.Storage = true
			}
		}
		r.optionsItem = nil
	}
	return r, nil
}

// Keys lists what the recording holds, sorted (for tests).
func (r *Recording) Keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.order...)
	sort.Strings(out)
	return out
}

// under joins a system path below root ("/" leaves it alone).
func under(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	return path.Join(root, p)
}
