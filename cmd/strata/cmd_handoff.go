package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/profile"
	"golang.org/x/sys/unix"
)

func init() {
	var root, server, credFile, svnWhere string
	var jobs, fileJobs int
	var jsonOut, quiet bool
	register(&command{
		name:    "handoff",
		summary: "check out the profile's repos and fetch its datasets into an already restored root (verified, resumable)",
		usage:   "PROFILE",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&root, "root", "", "the restored system's root directory, e.g. /mnt/strata (required)")
			fs.StringVar(&server, "server", "", "file server URL for relative sources, e.g. http://10.0.2.2:8080/")
			fs.StringVar(&credFile, "credentials", "", "credentials file (docs/handoff.md#credentials); - reads stdin; default: the file named by strata.credentials= on the kernel command line")
			fs.IntVar(&jobs, "jobs", 2, "datasets fetched at once")
			fs.IntVar(&fileJobs, "file-jobs", 4, "files fetched at once within one manifest dataset")
			fs.BoolVar(&jsonOut, "json", false, "print events as JSON lines instead of text")
			fs.BoolVar(&quiet, "quiet", false, "do not print the command log on stderr")
			fs.StringVar(&svnWhere, "svn", "", "which svn checks out svn repos: live (this system's) or root (the restored system's, chrooted); default live when this system has svn, else root")
		},
		run: func(e *env, args []string) error {
			if len(args) != 1 {
				return usagef("name one profile file")
			}
			if root == "" {
				return usagef("--root is required")
			}
			if svnWhere != "" && svnWhere != "live" && svnWhere != "root" {
				return usagef("--svn %s: want live or root", svnWhere)
			}
			if jobs < 1 || fileJobs < 1 {
				return usagef("--jobs and --file-jobs must be at least 1")
			}
			p, err := profile.Load(args[0])
			if err != nil {
				return err
			}
			if credFile == "" {
				if b, err := os.ReadFile("/proc/cmdline"); err == nil {
					credFile = creds.CmdlinePath(string(b))
				}
			}
			var store *creds.Store
			if credFile != "" {
				if store, err = creds.Load(credFile, e.stdin, ttyPrompt); err != nil {
					return err
				}
			}
			var outMu sync.Mutex
			logf := func(format string, a ...any) {
				if quiet {
					return
				}
				outMu.Lock()
				defer outMu.Unlock()
				fmt.Fprintf(e.stderr, "log: "+format+"\n", a...)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			rep, err := handoff.Run(ctx, p, handoff.Options{
				Root: root, Server: server, Creds: store, Jobs: jobs, FileJobs: fileJobs, SVN: svnWhere,
				Log: logf, ProgressInterval: time.Second,
				Events: func(ev handoff.Event) {
					outMu.Lock()
					defer outMu.Unlock()
					printEvent(e.stdout, ev, jsonOut)
				},
			})
			var done, skipped, failed int
			for _, it := range rep.Items {
				switch it.Status {
				case handoff.Done:
					done++
				case handoff.Skipped:
					skipped++
				case handoff.Failed:
					failed++
				}
			}
			if !jsonOut {
				fmt.Fprintf(e.stdout, "handoff: %d done, %d already done, %d failed in %s\n", done, skipped, failed, time.Since(start).Round(time.Millisecond))
			}
			if err != nil {
				return fmt.Errorf("%d of %d items failed (a re-run resumes them):\n%w", failed, len(rep.Items), err)
			}
			return nil
		},
	})
}

func printEvent(w io.Writer, ev handoff.Event, asJSON bool) {
	if !asJSON {
		fmt.Fprintln(w, ev)
		return
	}
	type jsonEvent struct {
		Time   time.Time       `json:"time"`
		Type   string          `json:"type"`
		Kind   string          `json:"kind"`
		Name   string          `json:"name"`
		Path   string          `json:"path"`
		Phase  string          `json:"phase,omitempty"`
		Counts *handoff.Counts `json:"counts,omitempty"`
		Detail string          `json:"detail,omitempty"`
		Error  string          `json:"error,omitempty"`
	}
	j := jsonEvent{Time: ev.Time, Type: string(ev.Type), Kind: ev.Item.Kind, Name: ev.Item.Name, Path: ev.Item.Path, Phase: ev.Phase, Detail: ev.Detail}
	if ev.Type == handoff.Progress || ev.Type == handoff.Done {
		c := ev.Counts
		j.Counts = &c
	}
	if ev.Err != nil {
		j.Error = ev.Err.Error()
	}
	b, _ := json.Marshal(j)
	fmt.Fprintf(w, "%s\n", b)
}

// ttyPrompt asks for a password on the controlling terminal without echo.
func ttyPrompt(prefix, user string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errors.New("no terminal to ask on: put the password in the credentials file")
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprintf(tty, "Password for %s at %s: ", user, prefix)
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := tty.Read(buf)
		if n == 1 {
			if buf[0] == '\n' || buf[0] == '\r' {
				break
			}
			line = append(line, buf[0])
		}
		if err != nil {
			return "", fmt.Errorf("terminal: %w", err)
		}
	}
	return string(line), nil
}
