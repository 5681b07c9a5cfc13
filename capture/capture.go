// Package capture turns a running Linux machine (or a dead one's disks,
// opened from the live image) into a host profile: probe asks the storage
// tools and reads the system's files (Facts), Build makes a profile of them
// with a note for everything that cannot be recorded faithfully, Merge
// folds a capture into an existing profile keeping what the user wrote, and
// the diff package reports how a host has drifted from its profile.
//
// External tools run through internal/run; parsing is done by the pure
// functions of capture/parse. A whole probe can be recorded (Record) and
// replayed (Recording), which makes real machines into test fixtures.
package capture

import "context"

// Capture probes the machine and builds its profile.
func Capture(ctx context.Context, o Options) (*Result, error) {
	f, err := Probe(ctx, o)
	if err != nil {
		return nil, err
	}
	return Build(f), nil
}

// YAML is the captured profile as a file, notes as comments.
func (r *Result) YAML() ([]byte, error) { return Marshal(r.Profile, r.Notes) }
