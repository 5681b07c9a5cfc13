package profile

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Size
		wantErr string
	}{
		{in: "512MiB", want: Size{Bytes: 512 << 20}},
		{in: "1.5GiB", want: Size{Bytes: 3 << 29}},
		{in: "500GB", want: Size{Bytes: 500e9}},
		{in: "4kB", want: Size{Bytes: 4000}},
		{in: "1048576", want: Size{Bytes: 1 << 20}},
		{in: "2 TiB", want: Size{Bytes: 2 << 40}},
		{in: "25%", want: Size{Percent: 25}},
		{in: "50%free", want: Size{Percent: 50, Free: true}},
		{in: "100%FREE", want: Size{Percent: 100, Free: true}},
		{in: "rest", want: Size{Rest: true}},
		{in: "10G", wantErr: "ambiguous: write GiB for binary or GB for decimal"},
		{in: "10K", wantErr: "KiB for binary or kB"},
		{in: "10gib", wantErr: "case-sensitive"},
		{in: "12XB", wantErr: `unknown unit "XB"`},
		{in: "0MiB", wantErr: "above 0"},
		{in: "1.5B", wantErr: "whole number of bytes"},
		{in: "150%", wantErr: "at most 100"},
		{in: "5%used", wantErr: "only \"free\""},
		{in: "", wantErr: "empty size"},
		{in: "-3MiB", wantErr: "invalid size"},
	} {
		got, err := ParseSize(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSize(%q) error = %v, want it to mention %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		got.text = ""
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{512 << 20: "512MiB", 3 << 29: "1536MiB", 1000: "1000B", 2 << 40: "2TiB", 4096: "4KiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %s, want %s", n, got, want)
		}
	}
	if got := HumanBytes(3 << 29); got != "1.5 GiB" {
		t.Errorf("HumanBytes = %s", got)
	}
}

func TestFit(t *testing.T) {
	r := func(name, size, lo, hi string) Request {
		q := Request{Name: name, Size: MustSize(size)}
		if lo != "" {
			q.Min = MustSize(lo)
		}
		if hi != "" {
			q.Max = MustSize(hi)
		}
		return q
	}
	reqs := []Request{r("esp", "512MiB", "", ""), r("root", "50%", "2GiB", "8GiB"), r("swap", "10%free", "", ""), r("home", "rest", "1GiB", "")}
	got, err := Fit(reqs, 10<<30, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// root: 50% of 10GiB = 5GiB; free after esp+root = 4.5GiB, 10% = 460.8MiB -> 460MiB; home = rest.
	want := []int64{512 << 20, 5 << 30, 460 << 20, 10<<30 - 512<<20 - 5<<30 - 460<<20}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Fit[%d] = %d, want %d", i, got[i], want[i])
		}
	}
	// Max caps a percentage on a big disk; rest takes the remainder.
	got, _ = Fit(reqs, 100<<30, 1<<20)
	if got[1] != 8<<30 {
		t.Errorf("max not applied: %d", got[1])
	}
	// Too small: the error says by how much.
	_, err = Fit(reqs, 3<<30, 1<<20)
	var fe *FitError
	if !errors.As(err, &fe) || fe.Needed <= fe.Available || !strings.Contains(err.Error(), "short by") {
		t.Fatalf("want FitError, got %v", err)
	}
	min, err := MinimumFit(reqs, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fit(reqs, min, 1<<20); err != nil {
		t.Errorf("MinimumFit %d does not fit: %v", min, err)
	}
	if _, err := Fit(reqs, min-(1<<20), 1<<20); err == nil {
		t.Errorf("MinimumFit %d is not the minimum", min)
	}
	if _, err := Fit([]Request{r("a", "rest", "", ""), r("b", "rest", "", "")}, 1<<30, 1<<20); err == nil || !strings.Contains(err.Error(), "only one entry") {
		t.Errorf("two rest entries: %v", err)
	}
}

func TestHostMatch(t *testing.T) {
	m := &HostMatch{MAC: []string{"52:54:00:12:34:56"}, DMI: &DMIMatch{Vendor: "LENOVO", Product: "20XW*"}}
	for _, tc := range []struct {
		f    Facts
		want bool
	}{
		{Facts{MACs: []string{"52:54:00:12:34:56"}}, true},
		{Facts{MACs: []string{"52:54:00:12:34:57"}}, false},
		{Facts{DMI: DMIMatch{Vendor: "LENOVO", Product: "20XW0055GE"}}, true},
		{Facts{DMI: DMIMatch{Vendor: "LENOVO", Product: "20XY0055GE"}}, false},
		{Facts{DMI: DMIMatch{Vendor: "Dell Inc.", Product: "20XW0055GE"}}, false},
	} {
		if got := m.Matches(tc.f); got != tc.want {
			t.Errorf("Matches(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	if (*HostMatch)(nil).Matches(Facts{MACs: []string{"x"}}) {
		t.Error("a profile without match rules never matches")
	}
}
