package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/capture/diff"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// captureFlags are the flags capture and diff share.
type captureFlags struct {
	root    string
	disks   stringList
	storage bool
	record  string
	replay  string
	verbose bool
}

func (c *captureFlags) register(fs *flag.FlagSet) {
	*c = captureFlags{} // flags are registered anew for each run
	fs.StringVar(&c.root, "root", "/", "read the system's files (fstab, crypttab, os-release, dpkg status, repositories) below `dir`: a dead machine's root mounted from the live image")
	fs.Var(&c.disks, "disk", "capture only this disk (`device`) and what is built on it; repeatable. Implies -storage")
	fs.BoolVar(&c.storage, "storage", false, "capture storage only: disks, RAID, LUKS, LVM, filesystems, mounts (no host identity, bootloader, system or repositories)")
	fs.StringVar(&c.record, "record", "", "also write everything the probe read (commands and files) to `file`, a replayable fixture")
	fs.StringVar(&c.replay, "replay", "", "probe a recorded machine (`file` written by -record) instead of this one")
	fs.BoolVar(&c.verbose, "v", false, "log every command run, with its duration")
}

// capture runs the probe as the flags say.
func (c *captureFlags) capture(e *env) (*capture.Result, error) {
	o := capture.Options{Root: c.root, Disks: c.disks, Storage: c.storage}
	if c.verbose {
		o.Log = func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	}
	var rec *capture.Recording
	switch {
	case c.replay != "":
		data, err := os.ReadFile(c.replay)
		if err != nil {
			return nil, err
		}
		r, err := capture.ParseRecording(data)
		if err != nil {
			return nil, err
		}
		o.Runner, o.FS = r, r
		if len(c.disks) == 0 && c.root == "/" {
			o.Root, o.Disks, o.Storage = r.Options.Root, r.Options.Disks, r.Options.Storage || c.storage
		}
	case c.record != "":
		rec = capture.NewRecording()
		rec.Options = capture.RecordedOptions{Root: o.Root, Disks: o.Disks, Storage: o.Storage}
		o.Runner, o.FS = capture.Record(rec, run.Exec{Log: o.Log}, capture.OSFS{})
	}
	if c.root != "/" && c.replay == "" {
		if st, err := os.Stat(c.root); err != nil || !st.IsDir() {
			return nil, usagef("-root %s: not a directory", c.root)
		}
	}
	start := time.Now()
	res, err := capture.Capture(context.Background(), o)
	if err != nil {
		return nil, err
	}
	if c.verbose {
		fmt.Fprintf(e.stderr, "capture: probed in %s\n", time.Since(start).Round(time.Millisecond))
	}
	if rec != nil {
		f, err := os.Create(c.record)
		if err != nil {
			return nil, err
		}
		if _, err := rec.WriteTo(f); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func warn(e *env, notes []capture.Note) {
	for _, n := range notes {
		if strings.HasPrefix(n.Msg, "captured from ") || strings.HasPrefix(n.Msg, "from /") {
			continue // informational; stays in the profile as a comment
		}
		fmt.Fprintf(e.stderr, "strata capture: warning: %s\n", n)
	}
}

// loadForMerge loads a profile to merge a capture into. It must load
// cleanly: merging into a profile with errors would hide them.
func loadForMerge(e *env, file string) (*profile.Profile, error) {
	p, err := profile.Load(file)
	var errs profile.Errors
	if errors.As(err, &errs) {
		for _, pe := range errs {
			fmt.Fprintln(e.stderr, pe)
		}
		return nil, fmt.Errorf("%s does not validate: fix it first (%d errors)", file, len(errs))
	}
	return p, err
}

// merged is a profile with a capture folded in, and what changed.
type merged struct {
	before  *profile.Profile // a copy of the profile as loaded
	after   *profile.Profile // the profile with the capture merged in (keeps the file's comments)
	notes   []capture.Note
	changes []diff.Change
}

func mergeCapture(e *env, file string, res *capture.Result) (*merged, error) {
	after, err := loadForMerge(e, file)
	if err != nil {
		return nil, err
	}
	before, err := loadForMerge(e, file)
	if err != nil {
		return nil, err
	}
	notes := capture.Merge(after, res)
	if err := after.Validate(); err != nil {
		return nil, fmt.Errorf("the merged profile does not validate (a capture bug: please report it):\n%w", err)
	}
	return &merged{before: before, after: after, notes: notes, changes: diff.Profiles(before, after)}, nil
}

// commitMessage summarises the drift for a commit.
func commitMessage(host string, cs []diff.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: capture: %s\n\n", host, diff.Summary(cs))
	b.WriteString("Drift recorded by strata capture --into:\n\n")
	diff.Write(&b, cs)
	return b.String()
}

func init() {
	var cf captureFlags
	var into string
	var commit bool
	register(&command{
		name:    "capture",
		summary: "describe this machine as a host profile (stdout), or update one (-into FILE)",
		usage:   "",
		flags: func(fs *flag.FlagSet) {
			cf.register(fs)
			fs.StringVar(&into, "into", "", "update the profile `file` in place, keeping its comments, repos, datasets and the size intents that still fit")
			fs.BoolVar(&commit, "commit", false, "with -into: commit the updated profile when it is in a git or svn working copy, with a message that lists the drift")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("capture takes no arguments (did you mean -into %s?)", args[0])
			}
			if commit && into == "" {
				return usagef("-commit needs -into FILE")
			}
			if into != "" {
				if _, err := os.Stat(into); err != nil {
					return fmt.Errorf("-into: %w", err)
				}
			}
			res, err := cf.capture(e)
			if err != nil {
				return err
			}
			if into == "" {
				warn(e, res.Notes)
				out, err := res.YAML()
				if err != nil {
					return err
				}
				_, err = e.stdout.Write(out)
				return err
			}
			m, err := mergeCapture(e, into, res)
			if err != nil {
				return err
			}
			warn(e, m.notes)
			out, err := capture.Marshal(m.after, m.notes)
			if err != nil {
				return err
			}
			if err := writeAtomic(into, out); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "strata capture: %s: %d change(s)\n", into, len(m.changes))
			diff.Write(e.stderr, m.changes)
			if commit {
				vcs, done, err := capture.Commit(context.Background(), run.Exec{}, into, commitMessage(m.after.Host.Name, m.changes))
				switch {
				case err != nil:
					return fmt.Errorf("commit: %w", err)
				case done:
					fmt.Fprintf(e.stderr, "strata capture: committed %s (%s)\n", into, vcs)
				default:
					fmt.Fprintf(e.stderr, "strata capture: %s unchanged in %s: nothing to commit\n", into, vcs)
				}
			}
			return nil
		},
	})
}

// writeAtomic replaces path with data, keeping its mode: a crash leaves the
// old file or the new one.
func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
