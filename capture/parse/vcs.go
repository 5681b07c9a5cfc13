package parse

import (
	"fmt"
	"strings"
)

// GitStatus is `git status --porcelain=v2 --branch`.
type GitStatus struct {
	OID       string // commit of HEAD, "(initial)" before the first commit
	Head      string // branch name, "(detached)" when detached
	Upstream  string // remote/branch, when tracking
	Changed   int    // tracked files with changes (staged or not), conflicts
	Untracked int    // untracked files
}

// GitStatusV2 parses `git status --porcelain=v2 --branch`.
func GitStatusV2(data []byte) (*GitStatus, error) {
	s := &GitStatus{}
	for _, l := range lines(data) {
		switch {
		case strings.HasPrefix(l, "# branch.oid "):
			s.OID = strings.TrimPrefix(l, "# branch.oid ")
		case strings.HasPrefix(l, "# branch.head "):
			s.Head = strings.TrimPrefix(l, "# branch.head ")
		case strings.HasPrefix(l, "# branch.upstream "):
			s.Upstream = strings.TrimPrefix(l, "# branch.upstream ")
		case strings.HasPrefix(l, "1 "), strings.HasPrefix(l, "2 "), strings.HasPrefix(l, "u "):
			s.Changed++
		case strings.HasPrefix(l, "? "):
			s.Untracked++
		}
	}
	if s.OID == "" {
		return nil, fmt.Errorf("git status --porcelain=v2 --branch: no branch.oid line")
	}
	return s, nil
}

// SvnInfo is `svn info` of a working copy.
type SvnInfo struct {
	Path        string
	URL         string
	RelativeURL string // ^/trunk
	Root        string // repository root URL
	Revision    string
	Kind        string
}

// SvnInfoText parses the text of `svn info PATH`.
func SvnInfoText(data []byte) (*SvnInfo, error) {
	s := &SvnInfo{}
	for _, l := range lines(data) {
		k, v, ok := keyValue(l, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Path":
			s.Path = v
		case "URL":
			s.URL = v
		case "Relative URL":
			s.RelativeURL = v
		case "Repository Root":
			s.Root = v
		case "Revision":
			s.Revision = v
		case "Node Kind":
			s.Kind = v
		}
	}
	if s.URL == "" || s.Revision == "" {
		return nil, fmt.Errorf("svn info: no URL/Revision in the output")
	}
	return s, nil
}

// Branch is the working copy's path below the repository root (trunk,
// branches/x), "" when it is the root itself.
func (s *SvnInfo) Branch() string {
	if s.RelativeURL != "" {
		return strings.Trim(strings.TrimPrefix(s.RelativeURL, "^"), "/")
	}
	return strings.Trim(strings.TrimPrefix(s.URL, s.Root), "/")
}
