package profile

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// scalarParser is implemented by types that read themselves from one YAML scalar.
type scalarParser interface{ parseScalar(string) error }

var scalarParserType = reflect.TypeFor[scalarParser]()

// fieldInfo is one struct field as YAML sees it.
type fieldInfo struct {
	index     int
	key       string
	omitEmpty bool
	keyed     bool // a list written as a mapping from name to body
	doc       string
	enum      []string
}

// fieldsOf lists the YAML-visible fields of a struct type, in declaration order.
func fieldsOf(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "-" || tag == "" {
			continue
		}
		parts := strings.Split(tag, ",")
		fi := fieldInfo{index: i, key: parts[0], doc: f.Tag.Get("doc")}
		for _, o := range parts[1:] {
			switch o {
			case "omitempty":
				fi.omitEmpty = true
			case "keyed":
				fi.keyed = true
			}
		}
		if e := f.Tag.Get("enum"); e != "" {
			fi.enum = strings.Split(e, ",")
		}
		out = append(out, fi)
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// decoder turns a yaml.Node tree into Go values, collecting every error with
// its position instead of stopping at the first.
type decoder struct {
	file string
	errs Errors
	pos  positions
	// bad holds paths already reported (a wrong type, or a key a misspelling
	// probably meant), so validation does not add "missing ..." on top.
	bad map[string]bool
}

func (d *decoder) fail(n *yaml.Node, path, format string, a ...any) {
	d.bad[path] = true
	d.errs = append(d.errs, &Error{File: d.file, Pos: Pos{n.Line, n.Column}, Path: path, Msg: fmt.Sprintf(format, a...)})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.pos[path] = Pos{n.Line, n.Column}
	if v.CanAddr() && v.Addr().Type().Implements(scalarParserType) {
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.fail(n, path, "want a single value, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(scalarParser).parseScalar(n.Value); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeList(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.fail(n, path, "want text, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		switch {
		case n.Kind == yaml.ScalarNode && n.Value == "true":
			v.SetBool(true)
		case n.Kind == yaml.ScalarNode && n.Value == "false":
			v.SetBool(false)
		default:
			d.fail(n, path, "want true or false, got %s", kindName(n))
		}
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, "want a whole number, got %s", kindName(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, "want a number, got %s", kindName(n))
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("profile: no decoder for %s", v.Type()))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of keys, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if prev, dup := seen[k.Value]; dup {
			d.fail(k, kp, "key %q given twice (first at line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		var fi *fieldInfo
		for j := range fields {
			if fields[j].key == k.Value {
				fi = &fields[j]
			}
		}
		if fi == nil {
			hint := suggest(k.Value, fields)
			d.fail(k, kp, "unknown key %q%s", k.Value, hint)
			if meant, ok := strings.CutPrefix(hint, " (did you mean \""); ok {
				d.bad[join(path, strings.TrimSuffix(meant, "\"?)"))] = true
			}
			continue
		}
		fv := v.Field(fi.index)
		if fi.keyed {
			d.decodeKeyed(val, fv, kp)
		} else {
			d.decode(val, fv, kp)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names the known key closest to a misspelt one.
func suggest(key string, fields []fieldInfo) string {
	best, bestD := "", 3
	for _, f := range fields {
		if dd := editDistance(key, f.key); dd < bestD {
			best, bestD = f.key, dd
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return " (known keys: " + strings.Join(keys, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (d *decoder) decodeList(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// decodeKeyed reads `name: {body}` pairs into a slice of structs whose Name
// field receives the key, keeping the document's order.
func (d *decoder) decodeKeyed(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping from names to entries, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.fail(k, kp, "name %q given twice (first at line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		if !nameRE.MatchString(k.Value) {
			d.fail(k, kp, "invalid name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", k.Value)
		}
		e := reflect.New(v.Type().Elem()).Elem()
		e.FieldByName("Name").SetString(k.Value)
		d.decode(val, e, kp)
		s = reflect.Append(s, e)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.fail(k, kp, "key %q given twice", k.Value)
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, kp)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
