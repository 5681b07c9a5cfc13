package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stratahq/strata/restore/plan"
)

// journal records the steps this plan has finished. Checks alone decide
// for most steps; the journal matters for steps marked Redo (--fresh),
// which must run once even though their state is already there, and not
// again when the run is resumed. It lives in the work directory (tmpfs in
// the live image) and belongs to one plan: another plan starts afresh.
type journal struct {
	path        string
	Fingerprint string   `json:"plan"`
	Done        []string `json:"done"`
	set         map[string]bool
}

// Fingerprint identifies a plan: the hash of its JSON.
func Fingerprint(p *plan.Plan) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func loadJournal(path string, p *plan.Plan) (*journal, error) {
	fp, err := Fingerprint(p)
	if err != nil {
		return nil, err
	}
	j := &journal{path: path, Fingerprint: fp, set: map[string]bool{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	}
	var old journal
	if err := json.Unmarshal(b, &old); err != nil || old.Fingerprint != fp {
		return j, nil // another plan's, or damaged: start afresh
	}
	for _, id := range old.Done {
		j.done(id)
	}
	return j, nil
}

func (j *journal) has(id string) bool { return j.set[id] }

func (j *journal) done(id string) {
	if !j.set[id] {
		j.set[id] = true
		j.Done = append(j.Done, id)
	}
}

func (j *journal) save() error {
	if err := os.MkdirAll(filepath.Dir(j.path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, j.path)
}
