package live

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/stratahq/strata/internal/run"
)

// DHCPTimeout bounds network setup at boot, so a machine without a DHCP
// server still reaches the ready line.
var DHCPTimeout = 25 * time.Second

// NetPlan is the network setup as command lines, built from NetConfig and
// the NICs present (a pure function, so it is table-tested).
type NetPlan struct {
	DHCP   []string   // interfaces for dhclient
	Static [][]string // ip(8) command lines, in order
	DNS    []string   // nameservers for /etc/resolv.conf
}

// PlanNetwork decides what to run for cfg given the NIC names found.
func PlanNetwork(cfg NetConfig, nics []string) (NetPlan, error) {
	var p NetPlan
	switch cfg.Mode {
	case "none":
		return p, nil
	case "", "dhcp":
		p.DHCP = append(p.DHCP, nics...)
		return p, nil
	}
	have := map[string]bool{}
	for _, n := range nics {
		have[n] = true
	}
	var missing []string
	for _, ic := range cfg.Ifaces {
		if !have[ic.Name] {
			missing = append(missing, ic.Name)
			continue
		}
		if ic.DHCP {
			p.DHCP = append(p.DHCP, ic.Name)
			continue
		}
		p.Static = append(p.Static,
			[]string{"link", "set", "dev", ic.Name, "up"},
			[]string{"addr", "add", ic.Addr.String(), "dev", ic.Name})
		if ic.Gateway.IsValid() {
			p.Static = append(p.Static, []string{"route", "add", "default", "via", ic.Gateway.String(), "dev", ic.Name})
		}
		if ic.DNS.IsValid() {
			p.DNS = append(p.DNS, ic.DNS.String())
		}
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("strata.net: no interface %s (found: %s)", strings.Join(missing, ", "), strings.Join(nics, ", "))
	}
	return p, nil
}

// waitLinksUp waits (bounded) for statically configured links to report
// operstate "up", so the ready report and the first connection see a working
// link rather than one still negotiating.
func waitLinksUp(static [][]string, limit time.Duration) {
	var ifaces []string
	for _, args := range static {
		if len(args) == 5 && args[0] == "link" && args[4] == "up" {
			ifaces = append(ifaces, args[3])
		}
	}
	deadline := time.Now().Add(limit)
	for _, n := range ifaces {
		for readTrim("/sys/class/net/"+n+"/operstate") != "up" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// dhclientArgs runs u-root's dhclient for IPv4 on exactly these interfaces.
func dhclientArgs(ifaces []string) []string {
	quoted := make([]string, len(ifaces))
	for i, n := range ifaces {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return []string{"-ipv6=false", "-timeout", "5", "-retry", "3", "^(" + strings.Join(quoted, "|") + ")$"}
}

// ApplyNetwork runs the plan. DHCP failures are reported, not fatal: the
// ready report shows which NICs have addresses.
func ApplyNetwork(ctx context.Context, r run.Runner, p NetPlan) error {
	var errs []string
	for _, args := range p.Static {
		if _, err := r.Run(ctx, run.Cmd{Name: "ip", Args: args}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	waitLinksUp(p.Static, 5*time.Second)
	if len(p.DNS) > 0 {
		var b strings.Builder
		for _, d := range p.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		if err := os.WriteFile("/etc/resolv.conf", []byte(b.String()), 0o644); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(p.DHCP) > 0 {
		c, cancel := context.WithTimeout(ctx, DHCPTimeout)
		_, err := r.Run(c, run.Cmd{Name: "dhclient", Args: dhclientArgs(p.DHCP)})
		cancel()
		if err != nil {
			errs = append(errs, "dhcp: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network: %s", strings.Join(errs, "; "))
	}
	return nil
}
