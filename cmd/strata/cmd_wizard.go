package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/live"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/flow"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/source"
	"github.com/stratahq/strata/wizard"
)

func init() {
	live.Interactive = liveWizard
	var server, prof, credFile string
	disks := diskFlags{}
	register(&command{
		name:    "wizard",
		summary: "the restore wizard: network, profile, disks, plan, secrets, confirmation and the restore, on this terminal",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&server, "server", "", "file server `URL` holding the profiles (prefilled; can be changed on the first screen)")
			fs.StringVar(&prof, "profile", "", "host profile `name` to preselect (default: the one matching this machine)")
			fs.Var(disks, "disk", "preselect DEVICE for the profile's disk NAME: --disk main=/dev/vda (repeatable)")
			fs.StringVar(&credFile, "credentials", "", "credentials `file` for repos and datasets (handoff's format)")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("wizard takes no arguments")
			}
			in, iok := e.stdin.(*os.File)
			out, ook := e.stdout.(*os.File)
			if !iok || !ook || !isTerminal(in) || !isTerminal(out) {
				return errors.New("the wizard needs a terminal; without one, use strata restore")
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
			defer stop()
			r := run.Exec{Log: toolLog("/run/strata")}
			opt := wizard.Options{Server: server, Profile: prof, Disks: disks}
			if credFile != "" {
				c, err := creds.Load(credFile, nil, nil)
				if err != nil {
					return fmt.Errorf("credentials %s: %w", credFile, err)
				}
				opt.Creds = c
			}
			nics, _ := live.ReadNICs("/sys", live.HostAddrs)
			res, err := wizard.Run(ctx, wizardDeps(r, nil, live.Inventory{NICs: nics}, nil), opt, in, out)
			if err != nil {
				return err
			}
			if res.Action == "reboot" || res.Action == "poweroff" {
				return exec.CommandContext(ctx, res.Action).Run()
			}
			return nil
		},
	})
}

// liveWizard is the live image's interactive restore (live.Interactive):
// the wizard on the console, prefilled from the kernel parameters.
func liveWizard(ctx context.Context, s *live.Session, tty *os.File) (string, error) {
	p := s.Params
	opt := wizard.Options{Server: p.Server, Profile: p.Profile, Style: wizard.StyleFor(tty, os.Getenv("TERM"), false, "")}
	if opt.Server == "" && s.Medium != nil && s.Medium.Dir != "" {
		opt.Server = stickServer(s.Medium.Dir)
	}
	if !p.DiskAuto {
		opt.Disks = p.Disks
	}
	if p.Credentials != "" {
		c, err := creds.Load(p.Credentials, nil, nil)
		if err != nil {
			fmt.Fprintf(s.Out, "wizard: credentials %s: %v\n", p.Credentials, err)
		}
		opt.Creds = c
	}
	var stick []source.Source
	for _, src := range s.Sources {
		if src.Kind == source.Dir {
			stick = append(stick, src)
		}
	}
	res, err := wizard.Run(ctx, wizardDeps(s.Runner, s.Log, s.Inventory, stick), opt, tty, tty)
	if err != nil {
		return "shell", err
	}
	return res.Action, nil
}

// stickServer is the file server URL the stick suggests: the first line
// of its strata/server file, if any.
func stickServer(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "server"))
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func wizardDeps(r run.Runner, logf run.Logger, inv live.Inventory, stick []source.Source) wizard.Deps {
	return wizard.Deps{
		Network:  wizNet{r},
		Profiles: &wizProfiles{facts: machineFacts(inv), stick: stick, found: map[string]source.Entry{}},
		Disks:    wizDisks{r},
		Planner:  wizPlanner{},
		Restorer: wizRestorer{r: r, log: logf},
		System:   wizSystem{},
	}
}

// wizNet configures the network with the live image's own functions.
type wizNet struct{ r run.Runner }

func (n wizNet) Interfaces(ctx context.Context) ([]wizard.Iface, error) {
	nics, err := live.ReadNICs("/sys", live.HostAddrs)
	var out []wizard.Iface
	for _, c := range nics {
		if c.Name == "lo" {
			continue
		}
		out = append(out, wizard.Iface{Name: c.Name, MAC: c.MAC, State: c.State, Addrs: c.Addrs})
	}
	return out, err
}

func (n wizNet) DHCP(ctx context.Context, iface string) error {
	return live.ApplyNetwork(ctx, n.r, live.NetPlan{DHCP: []string{iface}})
}

func (n wizNet) SetStatic(ctx context.Context, iface string, s wizard.Static) error {
	pl, err := live.PlanNetwork(live.NetConfig{Mode: "custom", Ifaces: []live.IfaceConf{{Name: iface, Addr: s.Addr, Gateway: s.Gateway, DNS: s.DNS}}}, []string{iface})
	if err != nil {
		return err
	}
	return live.ApplyNetwork(ctx, n.r, pl)
}

// wizProfiles lists the server's profiles (the URL typed in the wizard)
// and the stick's, through the same sources as the unattended restore.
type wizProfiles struct {
	facts profile.Facts
	stick []source.Source
	mu    sync.Mutex
	found map[string]source.Entry // by Base + File
}

func (w *wizProfiles) List(ctx context.Context, server string) ([]wizard.Entry, error) {
	var srcs []source.Source
	if server != "" {
		srcs = append(srcs, source.FromServer(server))
	}
	srcs = append(srcs, w.stick...)
	if len(srcs) == 0 {
		return nil, source.ErrNoSource
	}
	cat := source.List(ctx, srcs...)
	var errs []error
	for i, err := range cat.Errors {
		errs = append(errs, fmt.Errorf("%s: %w", cat.Sources[i], err))
	}
	if len(cat.Entries) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wizard.Entry
	for _, e := range cat.Entries {
		kind := "server"
		if e.Source.Kind == source.Dir {
			kind = e.Source.Name
		}
		w.found[e.Source.Base+e.File] = e
		out = append(out, wizard.Entry{Name: e.Name, File: e.File, Source: kind, Base: e.Source.Base, Description: e.Description,
			Matches: e.Error == "" && e.Match.Matches(w.facts), Error: e.Error})
	}
	return out, nil
}

func (w *wizProfiles) Load(ctx context.Context, _ string, e wizard.Entry) (*profile.Profile, error) {
	w.mu.Lock()
	se, ok := w.found[e.Base+e.File]
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("profile %s was not listed", e.File)
	}
	return source.Load(ctx, se)
}

type wizDisks struct{ r run.Runner }

func (d wizDisks) Probe(ctx context.Context) ([]probe.Disk, error) {
	return probe.Disks(ctx, probe.Options{Runner: d.r})
}

type wizPlanner struct{}

func (wizPlanner) Plan(p *profile.Profile, disks []probe.Disk, mapping map[string]string) (*plan.Plan, error) {
	o := plan.Options{Disks: mapping, Has: plan.OnPath}
	if _, err := os.Stat("/run/udev/control"); err == nil {
		o.Udev = true
	}
	return plan.Build(p, disks, o)
}

// wizRestorer is the restore as every front end runs it (restore/flow).
type wizRestorer struct {
	r   run.Runner
	log run.Logger
}

func (w wizRestorer) Restore(ctx context.Context, j wizard.Job, events restore.Handler) error {
	return flow.Run(ctx, j.Plan, flow.Options{Profile: j.Profile, Server: j.Server, Runner: w.r, Log: w.log, Events: events,
		Keys: j.Keys, Creds: j.Creds, Skip: j.Skip})
}

type wizSystem struct{}

// Shell is the live image's shell (busybox ash when present), as the
// session leader of the terminal the wizard gave up.
func (wizSystem) Shell() *exec.Cmd {
	argv := live.ShellCommand()
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(os.Environ(), "ENV="+live.ShellRC)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return c
}
