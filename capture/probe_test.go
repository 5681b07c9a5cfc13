package capture_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/internal/run"
)

// blkid --probe stops at the first device without a signature (or one it
// cannot open); the probe goes on with the devices after it.
func TestProbeBlkidGoesOn(t *testing.T) {
	sigs := map[string]string{
		"/dev/vda":  "PTTYPE=gpt\n",
		"/dev/vda1": "TYPE=ext4\nUUID=11111111-2222-3333-4444-555555555555\nPART_ENTRY_NUMBER=1\n",
		// /dev/md127: nothing, blkid stops there
		"/dev/vdb":  "PTTYPE=gpt\n",
		"/dev/vdb1": "TYPE=swap\nPART_ENTRY_NUMBER=1\n",
	}
	var calls []string
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		switch c.Name {
		case "lsblk":
			return run.Result{Stdout: []byte(`{"blockdevices":[
 {"name":"vda","path":"/dev/vda","type":"disk","size":1073741824,"children":[
  {"name":"vda1","path":"/dev/vda1","type":"part","size":1072693248,"children":[{"name":"md127","path":"/dev/md127","type":"raid1","size":1000}]}]},
 {"name":"vdb","path":"/dev/vdb","type":"disk","size":1073741824,"children":[{"name":"vdb1","path":"/dev/vdb1","type":"part","size":1000}]}]}`)}, nil
		case "blkid":
			calls = append(calls, strings.Join(c.Args[3:], " "))
			var out strings.Builder
			for _, d := range c.Args[3:] {
				s, ok := sigs[d]
				if !ok {
					return run.Result{Stdout: []byte(out.String()), ExitCode: 2}, &run.ExitError{Code: 2}
				}
				out.WriteString("DEVNAME=" + d + "\n" + s + "\n")
			}
			return run.Result{Stdout: []byte(out.String())}, nil
		}
		return run.Result{ExitCode: 1}, &run.ExitError{Code: 1}
	}}
	f, err := capture.Probe(context.Background(), capture.Options{Storage: true, Runner: rec, FS: capture.NewRecording()})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/dev/vda", "/dev/vda1", "/dev/vdb", "/dev/vdb1"} {
		if f.Probe[d] == nil {
			t.Errorf("%s not probed (blkid calls: %q)", d, calls)
		}
	}
	if len(calls) != 2 || calls[1] != "/dev/vdb /dev/vdb1" {
		t.Errorf("blkid calls %q", calls)
	}
}
