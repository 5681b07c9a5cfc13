package drill

import (
	"regexp"
	"testing"
)

// The console of a restored laptop whose /home LV came too late (CI, TCG).
const emergencyConsole = "root: clean, 10364/196608 files, 128113/786432 blocks\r\n" +
	"[  140.853227] watchdog: BUG: soft lockup - CPU#1 stuck for 46s! [kdevtmpfs:26]\r\n" +
	"[\x1b[0;1;31m TIME \x1b[0m] Timed out waiting for device \x1b[0;1;39mdev-mapper-vg\\x2dhome.device\x1b[0m.\r\n" +
	"[\x1b[0;1;38;5;185mDEPEND\x1b[0m] Dependency failed for \x1b[0;1;39mhome.mount\x1b[0m - /home.\r\n" +
	"You are in emergency mode. After logging in, type \"journalctl -xb\" to view\r\n"

func TestBootFailures(t *testing.T) {
	if !regexp.MustCompile(emergencyRE).MatchString(emergencyConsole) {
		t.Fatalf("emergencyRE %q does not match systemd's emergency shell", emergencyRE)
	}
	got := bootFailures(emergencyConsole)
	want := `: [ TIME ] Timed out waiting for device dev-mapper-vg\x2dhome.device.; [DEPEND] Dependency failed for home.mount - /home.`
	if got != want {
		t.Errorf("bootFailures:\n got %q\nwant %q", got, want)
	}
	if got := bootFailures("Debian GNU/Linux 12 strata-test ttyS0\r\nstrata-test login: "); got != "" {
		t.Errorf("a clean boot gave reasons %q", got)
	}
}
