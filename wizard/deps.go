// Package wizard is the restore wizard: a Bubble Tea program that walks a
// person through a restore on the live image's console, screen by screen:
// network, host profile, disks, plan, secrets, confirmation, progress, done.
//
// The model does no I/O in Update (rule 7): everything that touches the
// machine or the network runs in a tea.Cmd through the small interfaces
// below, so tests drive the model with fakes, and the restore itself runs
// through the same plan, Apply and events as the CLI and the unattended
// live image (restore/flow).
package wizard

import (
	"context"
	"net/netip"
	"os/exec"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
)

// Iface is one network interface as the network screen shows it.
type Iface struct {
	Name, MAC, State string
	Addrs            []string // with prefix, e.g. 10.0.2.15/24
}

// Static is a static IPv4 configuration for one interface.
type Static struct {
	Addr    netip.Prefix
	Gateway netip.Addr // optional
	DNS     netip.Addr // optional
}

// Network reads and configures the interfaces.
type Network interface {
	Interfaces(ctx context.Context) ([]Iface, error)
	DHCP(ctx context.Context, iface string) error
	SetStatic(ctx context.Context, iface string, s Static) error
}

// Entry is one host profile the user may choose.
type Entry struct {
	Name        string // host name
	File        string // where it is, relative to its source
	Source      string // "server", or the stick's name
	Base        string // what its relative URLs (base image, datasets) resolve against
	Description string
	Matches     bool   // its host.match rules fit this machine
	Error       string // it does not load; never chosen
}

// Profiles lists and loads host profiles from the file server (and the stick).
type Profiles interface {
	List(ctx context.Context, server string) ([]Entry, error)
	Load(ctx context.Context, server string, e Entry) (*profile.Profile, error)
}

// Disks probes this machine's disks.
type Disks interface {
	Probe(ctx context.Context) ([]probe.Disk, error)
}

// Planner fits a profile to the probed disks; mapping names devices for
// profile disks (empty: match automatically). A *target.Error lists refusals.
type Planner interface {
	Plan(p *profile.Profile, disks []probe.Disk, mapping map[string]string) (*plan.Plan, error)
}

// Job is one run of the restore.
type Job struct {
	Profile *profile.Profile
	Plan    *plan.Plan
	Server  string
	Keys    restore.KeySource
	Creds   *creds.Store // nil: none
	// Skip names flow stages not to run, with the reason: skipped by the
	// user after they failed, or done by an earlier attempt.
	Skip map[string]string
}

// Restorer runs the whole restore (restore/flow), reporting on events. It
// resumes: a second run after a failure skips what is done.
type Restorer interface {
	Restore(ctx context.Context, j Job, events restore.Handler) error
}

// System is what the last screens and the error choices need.
type System interface {
	// Shell is the interactive shell to run when the user asks for one.
	Shell() *exec.Cmd
}

// Deps are the wizard's connections to the world.
type Deps struct {
	Network  Network
	Profiles Profiles
	Disks    Disks
	Planner  Planner
	Restorer Restorer
	System   System
}
