package plan

import (
	"fmt"
	"net/url"
	"os/exec"
	"slices"
	"strings"

	"github.com/stratahq/strata/profile"
)

// toolWarnings names the programs the hand-off will need that the restoring
// system lacks (has reports whether it has one), so a missing svn or rsync
// shows in the plan, before the disks are erased, and not at the end of the
// restore. svn alone has a second way: the restored system's own svn, run
// chrooted, when the profile's packages bring it.
func toolWarnings(p *profile.Profile, has func(string) bool) []string {
	if has == nil {
		return nil
	}
	need := map[string][]string{} // program -> what needs it
	for _, r := range p.Repos {
		prog := r.Type
		if prog == "" {
			prog = "git"
		}
		need[prog] = append(need[prog], "repos."+r.Name)
		if isSSH(r.URL) {
			need["ssh"] = append(need["ssh"], "repos."+r.Name)
		}
	}
	for _, d := range p.Datasets {
		u, err := url.Parse(d.Source)
		if err != nil {
			continue // validation reports it
		}
		switch u.Scheme {
		case "rsync":
			need["rsync"] = append(need["rsync"], "datasets."+d.Name)
		case "ssh":
			need["rsync"] = append(need["rsync"], "datasets."+d.Name)
			need["ssh"] = append(need["ssh"], "datasets."+d.Name)
		}
	}
	var out []string
	for _, prog := range []string{"git", "svn", "rsync", "ssh"} {
		users := need[prog]
		if len(users) == 0 || has(prog) {
			continue
		}
		what := strings.Join(users, ", ")
		if prog == "svn" {
			if p.System != nil && slices.Contains(p.System.Packages, "subversion") {
				continue // the restored system's svn does the checkouts
			}
			out = append(out, fmt.Sprintf("%s need svn, which this system lacks and system.packages does not install: the hand-off will use the restored system's /usr/bin/svn if the base image has it, and fail otherwise (add subversion to system.packages, or build the live image with the svn group)", what))
			continue
		}
		out = append(out, fmt.Sprintf("%s need %s, which this system lacks: the hand-off will fail (build the live image with it, or run the hand-off later from the restored system)", what, prog))
	}
	return out
}

// isSSH reports whether a repository URL goes over ssh (ssh://,
// svn+ssh://; the profile admits no scp-like git URLs).
func isSSH(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "ssh" || strings.HasSuffix(u.Scheme, "+ssh"))
}

// OnPath is Options.Has for the running system: the program is on $PATH.
func OnPath(program string) bool {
	_, err := exec.LookPath(program)
	return err == nil
}
