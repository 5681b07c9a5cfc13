// Package run is the one place strata executes external commands.
//
// Every command is logged as a quoted argv line with its exit status and stderr,
// known failures are mapped to typed errors (wrapped with %w), and the Runner
// interface lets tests swap in a Recorder that captures argv sequences.
// Secrets travel on Cmd.Stdin and are never part of Args, so logging argv is safe.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Cmd describes one external command.
type Cmd struct {
	Name  string    // program, looked up on PATH
	Args  []string  // arguments; never secrets
	Stdin io.Reader // secrets (passphrases, keys) go here
	Dir   string
	Env   []string // extra KEY=VALUE entries appended to the environment
	// Stdout, when set, receives stdout as it is produced instead of Result.Stdout.
	Stdout io.Writer
	// Started, when set, hears the process's pid once it runs (to watch it).
	Started func(pid int)
}

// String renders the argv shell-quoted, as it appears in logs.
func (c Cmd) String() string { return Quote(append([]string{c.Name}, c.Args...)) }

// Result is what a finished command left behind.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Runner executes commands. Exec is the real one; Recorder is the test fake.
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// Typed failures. Match them with errors.Is.
var (
	ErrNotFound        = errors.New("program not found")
	ErrWrongPassphrase = errors.New("wrong passphrase")
	ErrBusy            = errors.New("device or resource busy")
	ErrNoDevice        = errors.New("no such device")
)

// ExitError is a command that ran and failed.
type ExitError struct {
	Cmd    string // quoted argv
	Code   int
	Stderr string
	Kind   error // one of the typed errors above, or nil
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
	if s := lastLines(e.Stderr, 3); s != "" {
		msg += ": " + s
	}
	return msg
}

// Unwrap lets errors.Is(err, run.ErrBusy) see the classified kind.
func (e *ExitError) Unwrap() error { return e.Kind }

// Logger receives one line per event; nil discards.
type Logger func(format string, args ...any)

// Exec runs commands for real.
type Exec struct {
	Log Logger
}

// Run executes c, logging argv, duration, exit status and stderr.
func (x Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	logf := x.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	path, err := exec.LookPath(c.Name)
	if err != nil {
		logf("run: %s: not found on PATH", c.Name)
		return Result{ExitCode: -1}, fmt.Errorf("run %s: %w", c.Name, ErrNotFound)
	}
	cmd := exec.CommandContext(ctx, path, c.Args...)
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	cmd.Stdin = c.Stdin
	var stdout, stderr bytes.Buffer
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &stderr
	start := time.Now()
	logf("run: %s", c)
	err = cmd.Start()
	if err == nil {
		if c.Started != nil {
			c.Started(cmd.Process.Pid)
		}
		err = cmd.Wait()
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	took := time.Since(start).Round(time.Millisecond)
	if s := strings.TrimSpace(stderr.String()); s != "" {
		logf("run: %s: stderr: %s", c.Name, s)
	}
	if err != nil {
		if ctx.Err() != nil {
			logf("run: %s: cancelled after %s", c.Name, took)
			return res, fmt.Errorf("%s: %w", c, ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			logf("run: %s: exit %d after %s", c.Name, res.ExitCode, took)
			return res, &ExitError{Cmd: c.String(), Code: res.ExitCode, Stderr: stderr.String(), Kind: Classify(c.Name, res.ExitCode, stderr.String())}
		}
		return res, fmt.Errorf("%s: %w", c, err)
	}
	logf("run: %s: ok after %s", c.Name, took)
	return res, nil
}

// Classify maps a tool's exit code and stderr to a typed error, or nil.
// Exit codes come from the tools' manuals (cryptsetup(8) "RETURN CODES").
func Classify(name string, code int, stderr string) error {
	low := strings.ToLower(stderr)
	switch {
	case name == "cryptsetup" && code == 2:
		return ErrWrongPassphrase // "no permission (bad passphrase)"
	case name == "cryptsetup" && code == 5:
		return ErrBusy
	case strings.Contains(low, "device or resource busy"), strings.Contains(low, "is in use"):
		return ErrBusy
	case strings.Contains(low, "no such device"), strings.Contains(low, "no such file or directory"):
		return ErrNoDevice
	}
	return nil
}

// Quote renders argv so that a shell would read it back as the same words.
func Quote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = quoteWord(a)
	}
	return strings.Join(out, " ")
}

func quoteWord(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%^", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "; "))
}

// Recorder is a fake Runner: it records every command and answers from Respond.
type Recorder struct {
	Calls   []Cmd
	Stdins  []string // what each call received on stdin ("" when none)
	Respond func(c Cmd) (Result, error)
}

// Run records c and returns Respond's answer (success when Respond is nil).
func (r *Recorder) Run(_ context.Context, c Cmd) (Result, error) {
	var in string
	if c.Stdin != nil {
		b, _ := io.ReadAll(c.Stdin)
		in = string(b)
	}
	r.Calls = append(r.Calls, c)
	r.Stdins = append(r.Stdins, in)
	if r.Respond != nil {
		return r.Respond(c)
	}
	return Result{}, nil
}

// Argv returns the recorded commands, one quoted line each: handy for golden files.
func (r *Recorder) Argv() string {
	var b strings.Builder
	for _, c := range r.Calls {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}
