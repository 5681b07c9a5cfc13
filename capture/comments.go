package capture

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stratahq/strata/profile"
)

// CommentPrefix starts every comment capture writes. Comments with it are
// capture's own: a later capture --into replaces them; others are the
// user's and are kept.
const CommentPrefix = "capture: "

// Marshal writes p as YAML with each note as a "# capture: ..." comment
// above the entry it concerns, replacing the capture comments of an earlier
// run and keeping everything else the file had (p's own comments, when it
// was loaded from a file).
func Marshal(p *profile.Profile, notes []Note) ([]byte, error) {
	data, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("capture: re-read profile: %w", err)
	}
	stripCaptureComments(&doc)
	for _, n := range notes {
		node := findNode(&doc, n.Path)
		addComment(node, n.Msg)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("capture: encode: %w", err)
	}
	enc.Close()
	// Through the profile package once more, for its layout (blank lines
	// between sections) with the comments carried over.
	q, perr := profile.Parse(p.File(), b.Bytes())
	if q == nil {
		return nil, perr
	}
	return q.Marshal()
}

func stripCaptureComments(n *yaml.Node) {
	n.HeadComment = stripLines(n.HeadComment)
	n.LineComment = stripLines(n.LineComment)
	n.FootComment = stripLines(n.FootComment)
	for _, c := range n.Content {
		stripCaptureComments(c)
	}
}

func stripLines(c string) string {
	if !strings.Contains(c, CommentPrefix) {
		return c
	}
	var keep []string
	inCapture := false
	for _, l := range strings.Split(c, "\n") {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		switch {
		case strings.HasPrefix(t, CommentPrefix):
			inCapture = true
		case inCapture && strings.HasPrefix(strings.TrimSpace(l), "#   "):
			// a continuation line of a wrapped capture comment
		default:
			inCapture = false
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func addComment(n *yaml.Node, msg string) {
	lines := wrap(CommentPrefix+msg, 96)
	for i := range lines {
		if i > 0 {
			lines[i] = "  " + lines[i]
		}
		lines[i] = "# " + lines[i]
	}
	text := strings.Join(lines, "\n")
	if n.HeadComment == "" {
		n.HeadComment = text
	} else {
		n.HeadComment += "\n" + text
	}
}

func wrap(s string, width int) []string {
	var out []string
	var cur strings.Builder
	for _, w := range strings.Fields(s) {
		if cur.Len() > 0 && cur.Len()+1+len(w) > width {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

var pathToken = regexp.MustCompile(`[^.\[\]]+|\[\d+\]`)

// findNode finds the node a profile path names: for a mapping entry its key
// node (a comment on it stands above "key:"), for a list item the item. A
// path that does not exist gives its nearest existing parent; "" gives the
// first key of the document.
func findNode(doc *yaml.Node, path string) *yaml.Node {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	top := root
	if root.Kind == yaml.MappingNode && len(root.Content) > 0 {
		top = root.Content[0]
	}
	cur, best := root, top
	for _, tok := range pathToken.FindAllString(path, -1) {
		switch {
		case strings.HasPrefix(tok, "["):
			i, _ := strconv.Atoi(strings.Trim(tok, "[]"))
			if cur.Kind != yaml.SequenceNode || i >= len(cur.Content) {
				return best
			}
			cur = cur.Content[i]
			best = cur
		default:
			if cur.Kind != yaml.MappingNode {
				return best
			}
			found := false
			for i := 0; i+1 < len(cur.Content); i += 2 {
				if cur.Content[i].Value == tok {
					best, cur, found = cur.Content[i], cur.Content[i+1], true
					break
				}
			}
			if !found {
				return best
			}
		}
	}
	return best
}
