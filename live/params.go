// Package live is strata's runtime in the live image: u-root's init runs
// `strata live` as its uinit. It prepares the environment (directories,
// kernel modules, network, rescue shells), reports what it found behind a
// "STRATA READY" line, checks that every bundled tool runs, and then either
// acts on the strata.* kernel parameters (unattended) or hands the console
// to a shell.
package live

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Params are the strata.* kernel command line parameters.
type Params struct {
	// Server is the file server holding profiles, base images, configs and
	// datasets (strata.server=URL).
	Server string
	// Profile names the host profile, or "auto" to match by MAC address and
	// DMI data (strata.profile=NAME|auto). Default "auto" when Server is set.
	// Without Server the profile comes from the live medium (the stick).
	Profile string
	// DiskAuto: match target disks to the profile automatically
	// (strata.disk=auto, the default).
	DiskAuto bool
	// Disks maps profile disk names to devices (strata.disk=NAME=DEV,...).
	Disks map[string]string
	// Credentials names a credentials file for the hand-off (strata.credentials=).
	Credentials string
	// Yes confirms a destructive unattended restore (strata.yes).
	Yes bool
	// Done is what happens after an unattended run succeeds:
	// "shell" (default), "reboot" or "poweroff" (strata.done=).
	Done string
	// Debug logs every command run (strata.log=debug; default info).
	Debug bool
	// Net configures the network (strata.net=; default DHCP on every NIC).
	Net NetConfig
	// Console is the terminal for strata's conversation, e.g. "ttyS0"
	// (strata.console=); default the kernel's console.
	Console string
	// Rescue lists terminals that get a rescue shell (strata.rescue=);
	// default tty2 and ttyS1; empty after strata.rescue=none.
	Rescue []string
	// Present records which parameters were given, by name.
	Present map[string]bool
	// ModuleParams are "module.key=value" parameters for modules loaded
	// from the image, by normalised module name, as "key=value" strings.
	ModuleParams map[string][]string
}

// NetConfig is the parsed strata.net.
type NetConfig struct {
	Mode   string      // "dhcp" (all NICs, default), "none" or "custom"
	Ifaces []IfaceConf // for "custom"
}

// IfaceConf configures one interface: DHCP, or a static address.
type IfaceConf struct {
	Name    string
	DHCP    bool
	Addr    netip.Prefix // static address and prefix length
	Gateway netip.Addr   // optional
	DNS     netip.Addr   // optional
}

// Unattended reports whether the parameters ask for an unattended run: a
// file server, or a profile (then found on the live medium).
func (p Params) Unattended() bool { return p.Server != "" || p.Profile != "" }

// Known parameters and their one-line help, printed with errors.
var paramHelp = map[string]string{
	"strata.server":      "URL of the file server (http, https, git, svn, rsync)",
	"strata.profile":     "NAME of the host profile, or auto (match by MAC/DMI), on the server or the stick",
	"strata.disk":        "auto, or NAME=DEV[,NAME=DEV] (profile disk name = device)",
	"strata.yes":         "confirm an unattended restore (it erases the target disks)",
	"strata.done":        "reboot | poweroff | shell, after an unattended run",
	"strata.log":         "info | debug",
	"strata.net":         "dhcp | none | IFACE:dhcp | IFACE:ADDR/PREFIX[,GATEWAY[,DNS]]; ';' separates interfaces",
	"strata.console":     "terminal for strata's conversation, e.g. ttyS0 or tty1",
	"strata.rescue":      "terminals with a rescue shell, e.g. tty2,ttyS1, or none",
	"strata.credentials": "FILE with credentials for repos and datasets (handoff's format), e.g. on the stick",
}

// KnownParams lists the accepted strata.* parameter names, sorted.
func KnownParams() []string {
	out := make([]string, 0, len(paramHelp))
	for k := range paramHelp {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParamHelp returns the one-line description of a known parameter.
func ParamHelp(name string) string { return paramHelp[name] }

var (
	ttyName      = regexp.MustCompile(`^(tty[0-9]+|ttyS[0-9]+|ttyAMA[0-9]+|ttyUSB[0-9]+|hvc[0-9]+|ttyhvc[0-9]+)$`)
	ifaceName    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	profileName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	diskName     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	serverScheme = map[string]bool{"http": true, "https": true, "git": true, "svn": true, "rsync": true}
)

// ParseCmdline parses a kernel command line. Parameters outside strata.*
// are ignored except module parameters (module.key=value). Every problem
// is reported, joined into one error; the returned Params hold whatever
// parsed, with defaults, so the caller can still boot to a shell.
func ParseCmdline(cmdline string) (Params, error) {
	p := Params{
		DiskAuto:     true,
		Done:         "shell",
		Net:          NetConfig{Mode: "dhcp"},
		Rescue:       []string{"tty2", "ttyS1"},
		Present:      map[string]bool{},
		ModuleParams: map[string][]string{},
	}
	var errs []error
	bad := func(name, val, why string) {
		errs = append(errs, fmt.Errorf("%s=%s: %s (expected %s)", name, val, why, paramHelp[name]))
	}
	var nets []string
	for _, tok := range SplitCmdline(cmdline) {
		if tok == "--" {
			break // the rest belongs to init
		}
		name, val, hasVal := strings.Cut(tok, "=")
		if !strings.HasPrefix(name, "strata.") {
			if mod, key, ok := strings.Cut(name, "."); ok && hasVal && mod != "" && key != "" {
				m := strings.ReplaceAll(mod, "-", "_")
				p.ModuleParams[m] = append(p.ModuleParams[m], key+"="+val)
			}
			continue
		}
		if _, ok := paramHelp[name]; !ok {
			errs = append(errs, fmt.Errorf("unknown parameter %s (known: %s)", name, strings.Join(KnownParams(), ", ")))
			continue
		}
		if p.Present[name] && name != "strata.net" {
			errs = append(errs, fmt.Errorf("%s given more than once", name))
			continue
		}
		p.Present[name] = true
		if !hasVal && name != "strata.yes" {
			bad(name, "", "needs a value")
			continue
		}
		switch name {
		case "strata.server":
			u, err := url.Parse(val)
			switch {
			case err != nil:
				bad(name, val, err.Error())
			case !serverScheme[u.Scheme]:
				bad(name, val, fmt.Sprintf("scheme %q not supported", u.Scheme))
			case u.Host == "":
				bad(name, val, "no host")
			default:
				p.Server = val
			}
		case "strata.profile":
			if val != "auto" && !profileName.MatchString(val) {
				bad(name, val, "not a profile name")
			} else {
				p.Profile = val
			}
		case "strata.disk":
			if val == "auto" {
				break
			}
			p.DiskAuto = false
			p.Disks = map[string]string{}
			for _, pair := range strings.Split(val, ",") {
				n, dev, ok := strings.Cut(pair, "=")
				dev = strings.TrimPrefix(dev, "/dev/")
				switch {
				case !ok || !diskName.MatchString(n) || dev == "" || strings.Contains(dev, ".."):
					bad(name, val, fmt.Sprintf("%q is not NAME=DEV", pair))
				case p.Disks[n] != "":
					bad(name, val, fmt.Sprintf("disk %s named twice", n))
				default:
					p.Disks[n] = "/dev/" + dev
				}
			}
		case "strata.credentials":
			if !strings.HasPrefix(val, "/") {
				bad(name, val, "not an absolute path")
			} else {
				p.Credentials = val
			}
		case "strata.yes":
			switch strings.ToLower(val) {
			case "", "1", "y", "yes", "true":
				p.Yes = true
			case "0", "n", "no", "false":
				p.Yes = false
			default:
				bad(name, val, "not a yes/no value")
			}
		case "strata.done":
			switch val {
			case "reboot", "poweroff", "shell":
				p.Done = val
			default:
				bad(name, val, "unknown action")
			}
		case "strata.log":
			switch val {
			case "debug":
				p.Debug = true
			case "info":
			default:
				bad(name, val, "unknown level")
			}
		case "strata.net":
			nets = append(nets, val)
		case "strata.console":
			v := strings.TrimPrefix(val, "/dev/")
			if !ttyName.MatchString(v) {
				bad(name, val, "not a terminal name")
			} else {
				p.Console = v
			}
		case "strata.rescue":
			if val == "none" {
				p.Rescue = nil
				break
			}
			var ttys []string
			for _, t := range strings.Split(val, ",") {
				t = strings.TrimPrefix(t, "/dev/")
				if !ttyName.MatchString(t) {
					bad(name, val, fmt.Sprintf("%q is not a terminal name", t))
					continue
				}
				ttys = append(ttys, t)
			}
			p.Rescue = ttys
		}
	}
	if len(nets) > 0 {
		nc, err := parseNet(strings.Join(nets, ";"))
		if err != nil {
			errs = append(errs, err)
		} else {
			p.Net = nc
		}
	}
	if p.Server != "" && p.Profile == "" {
		p.Profile = "auto"
	}
	if p.Server == "" && p.Profile == "" {
		for _, n := range []string{"strata.disk", "strata.yes", "strata.done"} {
			if p.Present[n] {
				errs = append(errs, fmt.Errorf("%s needs strata.profile (a profile on the stick) or strata.server (a file server)", n))
			}
		}
	}
	return p, errors.Join(errs...)
}

func parseNet(val string) (NetConfig, error) {
	bad := func(why string) (NetConfig, error) {
		return NetConfig{}, fmt.Errorf("strata.net=%s: %s (expected %s)", val, why, paramHelp["strata.net"])
	}
	switch val {
	case "dhcp", "none":
		return NetConfig{Mode: val}, nil
	}
	nc := NetConfig{Mode: "custom"}
	seen := map[string]bool{}
	for _, e := range strings.Split(val, ";") {
		iface, spec, ok := strings.Cut(e, ":")
		if !ok || !ifaceName.MatchString(iface) {
			return bad(fmt.Sprintf("%q: want IFACE:dhcp or IFACE:ADDR/PREFIX", e))
		}
		if seen[iface] {
			return bad("interface " + iface + " configured twice")
		}
		seen[iface] = true
		ic := IfaceConf{Name: iface}
		if spec == "dhcp" {
			ic.DHCP = true
			nc.Ifaces = append(nc.Ifaces, ic)
			continue
		}
		parts := strings.Split(spec, ",")
		if len(parts) > 3 {
			return bad(fmt.Sprintf("%q: too many fields", e))
		}
		pfx, err := netip.ParsePrefix(parts[0])
		if err != nil || !pfx.Addr().Is4() {
			return bad(fmt.Sprintf("%q is not an IPv4 ADDR/PREFIX", parts[0]))
		}
		ic.Addr = pfx
		if len(parts) > 1 && parts[1] != "" {
			gw, err := netip.ParseAddr(parts[1])
			if err != nil || !gw.Is4() {
				return bad(fmt.Sprintf("%q is not an IPv4 gateway", parts[1]))
			}
			if !pfx.Masked().Contains(gw) {
				return bad(fmt.Sprintf("gateway %s is outside %s", gw, pfx.Masked()))
			}
			ic.Gateway = gw
		}
		if len(parts) > 2 && parts[2] != "" {
			dns, err := netip.ParseAddr(parts[2])
			if err != nil {
				return bad(fmt.Sprintf("%q is not a DNS server address", parts[2]))
			}
			ic.DNS = dns
		}
		nc.Ifaces = append(nc.Ifaces, ic)
	}
	return nc, nil
}

// SplitCmdline splits a kernel command line into parameters the way the
// kernel does: whitespace separates, double quotes group (and are removed).
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
