package live

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(`console=ttyS0  strata.server="http://a b" "x=y z"` + "\n")
	want := []string{"console=ttyS0", "strata.server=http://a b", "x=y z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SplitCmdline = %q, want %q", got, want)
	}
}

func TestParseCmdline(t *testing.T) {
	defaults := func() Params {
		p, err := ParseCmdline("")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()
	if defaults.Unattended() || !defaults.DiskAuto || defaults.Done != "shell" || defaults.Net.Mode != "dhcp" ||
		!reflect.DeepEqual(defaults.Rescue, []string{"tty2", "ttyS1"}) || defaults.Debug || defaults.Yes {
		t.Errorf("defaults = %+v", defaults)
	}

	for _, c := range []struct {
		name, cmdline string
		check         func(p Params) bool
	}{
		{"unattended", "quiet strata.server=http://10.0.2.2:8080 strata.profile=laptop strata.disk=auto strata.yes",
			func(p Params) bool {
				return p.Unattended() && p.Server == "http://10.0.2.2:8080" && p.Profile == "laptop" && p.DiskAuto && p.Yes
			}},
		{"profile defaults to auto", "strata.server=https://files.example/strata",
			func(p Params) bool { return p.Profile == "auto" && !p.Yes }},
		{"disk map", "strata.server=http://h strata.disk=main=/dev/nvme0n1,data=sdb",
			func(p Params) bool {
				return !p.DiskAuto && reflect.DeepEqual(p.Disks, map[string]string{"main": "/dev/nvme0n1", "data": "/dev/sdb"})
			}},
		{"yes=0", "strata.server=http://h strata.yes=0", func(p Params) bool { return !p.Yes }},
		{"done, log, console, rescue", "strata.server=rsync://h/m strata.done=poweroff strata.log=debug strata.console=/dev/ttyS0 strata.rescue=tty3",
			func(p Params) bool {
				return p.Done == "poweroff" && p.Debug && p.Console == "ttyS0" && reflect.DeepEqual(p.Rescue, []string{"tty3"})
			}},
		{"rescue none", "strata.rescue=none", func(p Params) bool { return p.Rescue == nil }},
		{"net none", "strata.net=none", func(p Params) bool { return p.Net.Mode == "none" }},
		{"net static and dhcp", "strata.net=eth0:192.168.1.10/24,192.168.1.1,1.1.1.1;eth1:dhcp",
			func(p Params) bool {
				return p.Net.Mode == "custom" && len(p.Net.Ifaces) == 2 &&
					p.Net.Ifaces[0] == IfaceConf{Name: "eth0", Addr: netip.MustParsePrefix("192.168.1.10/24"), Gateway: netip.MustParseAddr("192.168.1.1"), DNS: netip.MustParseAddr("1.1.1.1")} &&
					p.Net.Ifaces[1] == IfaceConf{Name: "eth1", DHCP: true}
			}},
		{"repeated strata.net", "strata.net=eth0:dhcp strata.net=eth1:10.0.0.2/8",
			func(p Params) bool { return len(p.Net.Ifaces) == 2 }},
		{"module parameters", "console=ttyS0 dm_mod.use_blk_mq=1 usb-storage.quirks=abcd:1234:u strata.log=info",
			func(p Params) bool {
				return reflect.DeepEqual(p.ModuleParams["dm_mod"], []string{"use_blk_mq=1"}) && reflect.DeepEqual(p.ModuleParams["usb_storage"], []string{"quirks=abcd:1234:u"})
			}},
		{"init arguments after --", "strata.log=debug -- strata.bogus", func(p Params) bool { return p.Debug }},
		// A profile without a server is looked up on the live medium.
		{"profile without server", "strata.profile=kiosk strata.disk=main=vda strata.yes strata.done=poweroff strata.net=none",
			func(p Params) bool {
				return p.Unattended() && p.Server == "" && p.Profile == "kiosk" && p.Yes && p.Done == "poweroff" && p.Disks["main"] == "/dev/vda"
			}},
		{"auto without server", "strata.profile=auto strata.yes",
			func(p Params) bool { return p.Unattended() && p.Server == "" && p.Profile == "auto" }},
		{"no profile, no server: not unattended", "strata.net=none strata.log=debug",
			func(p Params) bool { return !p.Unattended() && p.Profile == "" }},
	} {
		p, err := ParseCmdline(c.cmdline)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(p) {
			t.Errorf("%s: unexpected %+v", c.name, p)
		}
	}
}

func TestParseCmdlineErrors(t *testing.T) {
	for _, c := range []struct{ cmdline, want string }{
		{"strata.sever=http://h", "unknown parameter strata.sever (known: strata.console, strata.credentials, strata.disk,"},
		{"strata.server=ftp://h", `scheme "ftp" not supported`},
		{"strata.server=http://", "no host"},
		{"strata.server", "needs a value"},
		{"strata.server=http://h strata.server=http://i", "given more than once"},
		{"strata.server=http://h strata.profile=../etc", "not a profile name"},
		{"strata.server=http://h strata.disk=main", `"main" is not NAME=DEV`},
		{"strata.server=http://h strata.disk=a=sda,a=sdb", "disk a named twice"},
		{"strata.server=http://h strata.yes=maybe", "not a yes/no value"},
		{"strata.server=http://h strata.done=halt", "unknown action"},
		{"strata.log=trace", "unknown level"},
		{"strata.console=/dev/sda", "not a terminal name"},
		{"strata.rescue=tty2,bogus", `"bogus" is not a terminal name`},
		{"strata.net=eth0", "want IFACE:dhcp or IFACE:ADDR/PREFIX"},
		{"strata.net=eth0:10.0.0.1", "not an IPv4 ADDR/PREFIX"},
		{"strata.net=eth0:10.0.0.1/24,192.168.0.1", "outside 10.0.0.0/24"},
		{"strata.net=eth0:dhcp;eth0:dhcp", "configured twice"},
		{"strata.yes", "strata.yes needs strata.profile (a profile on the stick) or strata.server (a file server)"},
		{"strata.disk=main=vda strata.done=reboot", "strata.disk needs strata.profile"},
		{"strata.profile=../etc/x strata.yes", "strata.yes needs strata.profile"}, // an invalid name is no profile
		{"strata.profile=bad/name", "not a profile name"},
	} {
		_, err := ParseCmdline(c.cmdline)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseCmdline(%q) = %v, want an error containing %q", c.cmdline, err, c.want)
		}
	}
	// All problems are reported, and the valid parts still parse.
	p, err := ParseCmdline("strata.bogus=1 strata.log=debug strata.done=x strata.other")
	if err == nil || strings.Count(err.Error(), "\n") != 3 {
		t.Errorf("want four errors, got %v", err)
	}
	if !p.Debug {
		t.Error("strata.log=debug lost because of other errors")
	}
}

func TestEveryParamDocumented(t *testing.T) {
	for _, n := range KnownParams() {
		if ParamHelp(n) == "" {
			t.Errorf("%s has no help", n)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	p, err := ParseCmdline("strata.server=http://h strata.credentials=/media/strata/creds")
	if err != nil || p.Credentials != "/media/strata/creds" {
		t.Fatalf("got %q, %v", p.Credentials, err)
	}
	if _, err := ParseCmdline("strata.credentials=creds"); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Fatalf("relative credentials path: %v", err)
	}
}
