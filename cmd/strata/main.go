// Command strata rebuilds a Linux machine from a host profile.
//
// This package only wires flags to the packages that do the work; each
// subcommand lives in its own cmd_<name>.go file and registers itself.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK     = 0 // success
	exitFailed = 1 // the command ran and failed (invalid profile, failed step, ...)
	exitUsage  = 2 // wrong flags or arguments
)

// command is one subcommand.
type command struct {
	name    string
	summary string // one line for the command list
	usage   string // argument synopsis, e.g. "FILE..."
	// flags declares the command's flags on fs; may be nil.
	flags func(fs *flag.FlagSet)
	// run executes with the remaining arguments. Return usageError for bad arguments.
	run func(env *env, args []string) error
}

// env is what a command may touch: the streams and the parsed flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	fs             *flag.FlagSet
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError makes strata exit with exitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries a specific exit code without a message of its own.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return runMain([]string{args[1], "--help"}, stdin, stdout, stderr)
		}
		printCommands(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "strata: unknown command %q (run 'strata --help' for the list)\n", args[0])
		return exitUsage
	}
	fs := flag.NewFlagSet("strata "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: strata %s [flags] %s\n\n%s\n", c.name, c.usage, c.summary)
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	if c.flags != nil {
		c.flags(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		return exitUsage
	}
	err := c.run(&env{stdin: stdin, stdout: stdout, stderr: stderr, fs: fs}, fs.Args())
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "strata %s: %s\n", c.name, ue.msg)
		fs.Usage()
		return exitUsage
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "strata %s: %s\n", c.name, ee.err)
		}
		return ee.code
	default:
		fmt.Fprintf(stderr, "strata %s: %s\n", c.name, err)
		return exitFailed
	}
}

func printCommands(w io.Writer) {
	fmt.Fprintln(w, "strata rebuilds a Linux machine from a host profile.")
	fmt.Fprintln(w, "\nusage: strata COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %s%s  %s\n", n, strings.Repeat(" ", width-len(n)), commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'strata COMMAND --help' for a command's flags. Exit codes: 0 ok, 1 failed, 2 usage.")
}
