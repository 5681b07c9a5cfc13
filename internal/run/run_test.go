package run

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	got := Quote([]string{"mkfs.ext4", "-L", "my root", "-E", "root_owner=0:0", "it's", ""})
	want := `mkfs.ext4 -L 'my root' -E root_owner=0:0 'it'\''s' ''`
	if got != want {
		t.Fatalf("Quote = %s, want %s", got, want)
	}
}

func TestExecCapturesAndClassifies(t *testing.T) {
	var log []string
	x := Exec{Log: func(f string, a ...any) { log = append(log, f) }}
	res, err := x.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "cat; echo oops >&2; exit 3"}, Stdin: strings.NewReader("secret")})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || res.ExitCode != 3 {
		t.Fatalf("want ExitError code 3, got %v (%d)", err, res.ExitCode)
	}
	if string(res.Stdout) != "secret" || !strings.Contains(ee.Error(), "oops") {
		t.Fatalf("stdout %q, error %q", res.Stdout, ee.Error())
	}
	if len(log) < 2 {
		t.Fatalf("expected argv and stderr logged, got %v", log)
	}
}

func TestExecNotFound(t *testing.T) {
	_, err := Exec{}.Run(context.Background(), Cmd{Name: "strata-no-such-tool"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		stderr string
		want   error
	}{
		{"cryptsetup", 2, "No key available with this passphrase.", ErrWrongPassphrase},
		{"cryptsetup", 5, "", ErrBusy},
		{"umount", 32, "umount: /mnt: target is busy. Device or resource busy", ErrBusy},
		{"mdadm", 1, "mdadm: cannot open /dev/sdz: No such file or directory", ErrNoDevice},
		{"mke2fs", 1, "something else", nil},
	} {
		if got := Classify(tc.name, tc.code, tc.stderr); got != tc.want {
			t.Errorf("Classify(%s,%d,%q) = %v, want %v", tc.name, tc.code, tc.stderr, got, tc.want)
		}
	}
}

func TestRecorder(t *testing.T) {
	r := &Recorder{}
	_, _ = r.Run(context.Background(), Cmd{Name: "cryptsetup", Args: []string{"luksFormat", "--key-file=-", "/dev/vda2"}, Stdin: strings.NewReader("pw")})
	if r.Argv() != "cryptsetup luksFormat --key-file=- /dev/vda2\n" || r.Stdins[0] != "pw" {
		t.Fatalf("recorded %q stdin %q", r.Argv(), r.Stdins)
	}
}
