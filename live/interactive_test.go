package live

import "testing"

func TestWizardParam(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"console=ttyS0":                      true,
		"console=ttyS0 strata.wizard=off":    false,
		"strata.wizard=no quiet":             false,
		"strata.wizard=on":                   true,
		"strata.rescue=none strata.wizard=0": false,
	} {
		if got := wizardWanted(cmdline); got != want {
			t.Errorf("wizardWanted(%q) = %v", cmdline, got)
		}
		// A known parameter: never a command line error.
		if _, err := ParseCmdline(cmdline); err != nil {
			t.Errorf("ParseCmdline(%q): %v", cmdline, err)
		}
	}
}
