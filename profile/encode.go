package profile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// encode turns a Go value into a yaml.Node tree, the inverse of decoder.decode.
func encode(v reflect.Value) *yaml.Node {
	if v.CanAddr() && v.Addr().Type().Implements(scalarParserType) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.Addr().Interface().(fmt.Stringer).String()}
	}
	switch v.Kind() {
	case reflect.Pointer:
		return encode(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, fi := range fieldsOf(v.Type()) {
			fv := v.Field(fi.index)
			if fi.omitEmpty && isEmpty(fv) {
				continue
			}
			var val *yaml.Node
			if fi.keyed {
				val = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				for i := range fv.Len() {
					e := fv.Index(i)
					val.Content = append(val.Content, scalar("!!str", e.FieldByName("Name").String()), encode(e))
				}
			} else {
				val = encode(fv)
			}
			m.Content = append(m.Content, scalar("!!str", fi.key), val)
		}
		return m
	case reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		width := 0
		for i := range v.Len() {
			item := encode(v.Index(i))
			if item.Kind != yaml.ScalarNode {
				width = 1 << 20
			}
			width += len(item.Value) + 2
			s.Content = append(s.Content, item)
		}
		if width < 60 { // short lists of words read best on one line
			s.Style = yaml.FlowStyle
		}
		return s
	case reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		for _, k := range sortStrings(keys) {
			m.Content = append(m.Content, scalar("!!str", k), encode(v.MapIndex(reflect.ValueOf(k))))
		}
		return m
	case reflect.String:
		return scalar("!!str", v.String())
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Float64:
		return scalar("!!float", strconv.FormatFloat(v.Float(), 'f', -1, 64))
	}
	panic(fmt.Sprintf("profile: no encoder for %s", v.Type()))
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Pointer:
		return v.IsNil()
	}
	return v.IsZero()
}

func sortStrings(s []string) []string {
	m := make(map[string]struct{}, len(s))
	for _, k := range s {
		m[k] = struct{}{}
	}
	return sortedKeys(m)
}

// keepComments copies comments (and the quoting style of unchanged scalars)
// from the document the profile was loaded from onto the freshly encoded one,
// matching mapping entries by key and list items by their name or index.
func keepComments(dst, src *yaml.Node) {
	if dst == nil || src == nil {
		return
	}
	for src.Kind == yaml.AliasNode {
		src = src.Alias
	}
	dst.HeadComment, dst.LineComment, dst.FootComment = src.HeadComment, src.LineComment, src.FootComment
	if dst.Kind == yaml.ScalarNode && src.Kind == yaml.ScalarNode && dst.Value == src.Value {
		dst.Style = src.Style
	}
	switch {
	case dst.Kind == yaml.MappingNode && src.Kind == yaml.MappingNode:
		dst.Style = src.Style // keep {flow: style} where the user wrote it
		for i := 0; i+1 < len(dst.Content); i += 2 {
			for j := 0; j+1 < len(src.Content); j += 2 {
				if dst.Content[i].Value == src.Content[j].Value {
					keepComments(dst.Content[i], src.Content[j])
					keepComments(dst.Content[i+1], src.Content[j+1])
					break
				}
			}
		}
	case dst.Kind == yaml.SequenceNode && src.Kind == yaml.SequenceNode:
		dst.Style = src.Style
		for i, d := range dst.Content {
			if s := matchItem(d, src.Content, i); s != nil {
				keepComments(d, s)
			}
		}
	}
}

// matchItem finds the source list item for d: the one with the same name (or
// device, or path), else the one at the same index.
func matchItem(d *yaml.Node, src []*yaml.Node, i int) *yaml.Node {
	for _, key := range []string{"name", "device", "path"} {
		if id := mapValue(d, key); id != "" {
			for _, s := range src {
				if mapValue(s, key) == id {
					return s
				}
			}
			return nil
		}
	}
	if i < len(src) {
		return src[i]
	}
	return nil
}

func mapValue(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// Marshal writes the profile as YAML, keeping the comments of the document it
// was loaded from where the structure still matches.
func (p *Profile) Marshal() ([]byte, error) {
	root := encode(reflect.ValueOf(p).Elem())
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
	if p.src != nil {
		keepComments(doc, p.src)
		if len(p.src.Content) > 0 {
			keepComments(root, p.src.Content[0])
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode profile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode profile: %w", err)
	}
	return spaceSections(b.Bytes()), nil
}

// spaceSections puts a blank line before each top-level key (and the comment
// above it), as people write profiles; yaml.v3 keeps no blank lines.
func spaceSections(in []byte) []byte {
	lines := strings.SplitAfter(string(in), "\n")
	var out strings.Builder
	seenKey := false
	for i, l := range lines {
		top := l != "" && l[0] != ' ' && l[0] != '#' && l[0] != '-' && l[0] != '\n'
		comment := strings.HasPrefix(l, "#")
		prevComment := i > 0 && strings.HasPrefix(lines[i-1], "#")
		if seenKey && ((top && !prevComment) || (comment && !prevComment)) {
			out.WriteString("\n")
		}
		seenKey = seenKey || top
		out.WriteString(l)
	}
	return []byte(out.String())
}

// Save writes the profile to path atomically: a crash leaves the old file or
// the new one, never half of it.
func (p *Profile) Save(path string) error {
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save profile %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save profile %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save profile %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		_ = os.Chmod(tmp.Name(), st.Mode().Perm())
	} else {
		_ = os.Chmod(tmp.Name(), 0o644)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save profile %s: %w", path, err)
	}
	return nil
}
