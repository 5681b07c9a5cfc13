// Package diff compares two host profiles field by field: what capture
// --into would change in a profile, which is how a host has drifted from it.
// Entries are matched by name (disks, partitions, arrays, LUKS volumes, VGs,
// LVs, repos, datasets), filesystems by device, subvolumes by path; lists of
// words (packages, features) are compared as sets.
package diff

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/stratahq/strata/profile"
)

// Kind of change.
const (
	Added   = "+"
	Removed = "-"
	Changed = "~"
)

// Change is one difference between two profiles.
type Change struct {
	Kind string // Added, Removed or Changed
	Path string // profile path in the newer profile (the older one for removals)
	What string // what the entry is, for people: "main/root", "/home", "package"
	Old  string // old value (Changed, Removed)
	New  string // new value (Changed, Added)
}

func (c Change) String() string {
	var b strings.Builder
	b.WriteString(c.Kind)
	b.WriteByte(' ')
	b.WriteString(c.Path)
	if c.What != "" {
		fmt.Fprintf(&b, " (%s)", c.What)
	}
	switch c.Kind {
	case Changed:
		fmt.Fprintf(&b, ": %s -> %s", show(c.Old), show(c.New))
	case Added:
		if c.New != "" {
			fmt.Fprintf(&b, ": %s", c.New)
		}
	case Removed:
		if c.Old != "" {
			fmt.Fprintf(&b, ": %s", c.Old)
		}
	}
	return b.String()
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func show(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// Profiles lists how b differs from a.
func Profiles(a, b *profile.Profile) []Change {
	d := &differ{}
	d.value("", "", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
	return d.out
}

type differ struct {
	out    []Change
	fsType string // type of the filesystem being compared
}

func (d *differ) add(c Change) { d.out = append(d.out, c) }

var sizeType = reflect.TypeFor[profile.Size]()

// field is a YAML-visible struct field.
type field struct {
	index int
	key   string
	keyed bool
}

func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		parts := strings.Split(tag, ",")
		fi := field{index: i, key: parts[0]}
		for _, p := range parts[1:] {
			fi.keyed = fi.keyed || p == "keyed"
		}
		out = append(out, fi)
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// value compares two values of the same type at path.
func (d *differ) value(path, what string, a, b reflect.Value) {
	t := a.Type()
	switch {
	case t == sizeType:
		sa, sb := a.Interface().(profile.Size), b.Interface().(profile.Size)
		if !sameSize(sa, sb) {
			d.scalar(path, what, sa.String(), sb.String())
		}
		return
	case t.Kind() == reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil():
			d.add(Change{Kind: Added, Path: path, What: what, New: summary(b)})
		case b.IsNil():
			d.add(Change{Kind: Removed, Path: path, What: what, Old: summary(a)})
		default:
			d.value(path, what, a.Elem(), b.Elem())
		}
		return
	case t.Kind() == reflect.Struct:
		if t == reflect.TypeFor[profile.Filesystem]() {
			d.fsType = b.Interface().(profile.Filesystem).Type
		}
		for _, f := range fields(t) {
			fa, fb := a.Field(f.index), b.Field(f.index)
			p := join(path, f.key)
			if f.keyed {
				d.keyed(p, fa, fb)
				continue
			}
			d.value(p, d.hint(t, a, b, what), fa, fb)
		}
		return
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		if kind, ok := featureSection(path); ok {
			d.features(path, what, FeatureDefaults(kind, d.fsType), a.Interface().([]string), b.Interface().([]string))
			return
		}
		d.words(path, what, a, b)
		return
	case t.Kind() == reflect.Slice:
		d.list(path, what, a, b)
		return
	case t.Kind() == reflect.Map:
		keys := map[string]bool{}
		for _, k := range a.MapKeys() {
			keys[k.String()] = true
		}
		for _, k := range b.MapKeys() {
			keys[k.String()] = true
		}
		for _, k := range sortedKeys(keys) {
			va, vb := a.MapIndex(reflect.ValueOf(k)), b.MapIndex(reflect.ValueOf(k))
			switch {
			case !va.IsValid():
				d.add(Change{Kind: Added, Path: path + "." + k, What: what, New: fmt.Sprint(vb.Interface())})
			case !vb.IsValid():
				d.add(Change{Kind: Removed, Path: path + "." + k, What: what, Old: fmt.Sprint(va.Interface())})
			case va.Interface() != vb.Interface():
				d.scalar(path+"."+k, what, fmt.Sprint(va.Interface()), fmt.Sprint(vb.Interface()))
			}
		}
		return
	}
	sa, sb := scalarText(a), scalarText(b)
	if sa != sb {
		d.scalar(path, what, sa, sb)
	}
}

// shownDefault is how an unset field reads in a change: what it means.
var shownDefault = map[string]string{"mount.options": "defaults"}

func (d *differ) scalar(path, what, a, b string) {
	for suffix, def := range shownDefault {
		if strings.HasSuffix(path, "."+suffix) {
			a, b = or(a, def), or(b, def)
		}
	}
	switch {
	case a == "":
		d.add(Change{Kind: Added, Path: path, What: what, New: b})
	case b == "":
		d.add(Change{Kind: Removed, Path: path, What: what, Old: a})
	default:
		d.add(Change{Kind: Changed, Path: path, What: what, Old: a, New: b})
	}
}

func scalarText(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		if v.Bool() {
			return "true"
		}
		return ""
	case reflect.Int, reflect.Int64:
		if v.Int() == 0 {
			return ""
		}
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// sameSize: the same bytes, or the same intent.
func sameSize(a, b profile.Size) bool {
	if a.IsAbsolute() && b.IsAbsolute() {
		return a.Bytes == b.Bytes
	}
	return a.Rest == b.Rest && a.Percent == b.Percent && a.Free == b.Free && a.Bytes == b.Bytes
}

// hint names the entry a struct is, for the What column.
func (d *differ) hint(t reflect.Type, a, b reflect.Value, what string) string {
	switch t {
	case reflect.TypeFor[profile.Filesystem]():
		f := b.Interface().(profile.Filesystem)
		if f.Mount != nil {
			return f.Device + " " + f.Mount.Path
		}
		return f.Device
	case reflect.TypeFor[profile.Subvolume]():
		return b.Interface().(profile.Subvolume).Path
	}
	return what
}

// keyed compares lists written as mappings by name.
func (d *differ) keyed(path string, a, b reflect.Value) {
	idx := func(v reflect.Value) map[string]reflect.Value {
		m := map[string]reflect.Value{}
		for i := range v.Len() {
			m[v.Index(i).FieldByName("Name").String()] = v.Index(i)
		}
		return m
	}
	ma, mb := idx(a), idx(b)
	for i := range b.Len() {
		e := b.Index(i)
		name := e.FieldByName("Name").String()
		p := path + "." + name
		if ea, ok := ma[name]; ok {
			d.value(p, d.what(path, name), ea, e)
		} else {
			d.add(Change{Kind: Added, Path: p, New: summary(e)})
		}
	}
	for i := range a.Len() {
		e := a.Index(i)
		name := e.FieldByName("Name").String()
		if _, ok := mb[name]; !ok {
			d.add(Change{Kind: Removed, Path: path + "." + name, Old: summary(e)})
		}
	}
}

func (d *differ) what(path, name string) string {
	if strings.HasSuffix(path, ".lvs") {
		vg := strings.TrimSuffix(strings.TrimPrefix(path, "volume_groups."), ".lvs")
		return vg + "/" + name
	}
	return ""
}

// identity is how list items are matched: partitions by name, filesystems by
// device, subvolumes by path, EFI entries by label; else by position.
func identity(v reflect.Value) string {
	for _, f := range []string{"Name", "Device", "Path", "Label"} {
		if x := v.FieldByName(f); x.IsValid() && x.Kind() == reflect.String {
			return f + "=" + x.String()
		}
	}
	return ""
}

func (d *differ) list(path, what string, a, b reflect.Value) {
	ids := func(v reflect.Value) map[string]int {
		m := map[string]int{}
		for i := range v.Len() {
			if id := identity(v.Index(i)); id != "" {
				m[id] = i
			}
		}
		return m
	}
	ia, ib := ids(a), ids(b)
	for i := range b.Len() {
		e := b.Index(i)
		p := fmt.Sprintf("%s[%d]", path, i)
		id := identity(e)
		w := itemHint(path, e, what)
		j, ok := ia[id]
		if id == "" {
			j, ok = i, i < a.Len()
		}
		if ok {
			d.value(p, w, a.Index(j), e)
		} else {
			d.add(Change{Kind: Added, Path: p, What: w, New: summary(e)})
		}
	}
	for i := range a.Len() {
		e := a.Index(i)
		id := identity(e)
		if _, ok := ib[id]; ok || id == "" && i < b.Len() {
			continue
		}
		d.add(Change{Kind: Removed, Path: fmt.Sprintf("%s[%d]", path, i), What: itemHint(path, e, what), Old: summary(e)})
	}
}

func itemHint(path string, e reflect.Value, what string) string {
	switch v := e.Interface().(type) {
	case profile.Partition:
		disk := strings.TrimSuffix(strings.TrimPrefix(path, "disks."), ".partitions")
		return disk + "/" + v.Name
	case profile.Filesystem:
		if v.Mount != nil {
			return v.Device + " " + v.Mount.Path
		}
		return v.Device
	case profile.Subvolume:
		return v.Path
	}
	return what
}

// featureSection recognises a filesystem's feature list by its path.
func featureSection(path string) (string, bool) {
	for _, k := range []string{"ext", "xfs", "btrfs"} {
		if strings.HasSuffix(path, "."+k+".features") {
			return k, true
		}
	}
	return "", false
}

// features reports the features a list change turns on (+) and off (-), not
// how the lists are written.
func (d *differ) features(path, what string, defaults, a, b []string) {
	on, off := FeatureChanges(defaults, a, b)
	if len(on) > 0 {
		d.add(Change{Kind: Added, Path: path, What: what, New: strings.Join(on, ", ")})
	}
	if len(off) > 0 {
		d.add(Change{Kind: Removed, Path: path, What: what, Old: strings.Join(off, ", ")})
	}
}

// words compares string lists as sets.
func (d *differ) words(path, what string, a, b reflect.Value) {
	sa, sb := map[string]bool{}, map[string]bool{}
	for i := range a.Len() {
		sa[a.Index(i).String()] = true
	}
	for i := range b.Len() {
		sb[b.Index(i).String()] = true
	}
	var add, del []string
	for k := range sb {
		if !sa[k] {
			add = append(add, k)
		}
	}
	for k := range sa {
		if !sb[k] {
			del = append(del, k)
		}
	}
	sort.Strings(add)
	sort.Strings(del)
	if len(add) > 0 {
		d.add(Change{Kind: Added, Path: path, What: what, New: strings.Join(add, ", ")})
	}
	if len(del) > 0 {
		d.add(Change{Kind: Removed, Path: path, What: what, Old: strings.Join(del, ", ")})
	}
}

// summary renders an entry on one line: its set scalar fields.
func summary(v reflect.Value) string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return scalarText(v)
	}
	if v.Type() == sizeType {
		return v.Interface().(profile.Size).String()
	}
	var parts []string
	for _, f := range fields(v.Type()) {
		fv := v.Field(f.index)
		switch {
		case fv.Type() == sizeType:
			if s := fv.Interface().(profile.Size); !s.IsZero() {
				parts = append(parts, f.key+": "+s.String())
			}
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			if fv.Len() > 0 {
				var w []string
				for i := range fv.Len() {
					w = append(w, fv.Index(i).String())
				}
				parts = append(parts, f.key+": ["+strings.Join(w, ", ")+"]")
			}
		case fv.Kind() == reflect.Struct, fv.Kind() == reflect.Slice, fv.Kind() == reflect.Map:
		case fv.Kind() == reflect.Pointer:
			if !fv.IsNil() && fv.Elem().Kind() == reflect.Struct {
				if s := summary(fv); s != "{}" && s != "" {
					parts = append(parts, f.key+": "+s)
				}
			}
		default:
			if s := scalarText(fv); s != "" {
				parts = append(parts, f.key+": "+s)
			}
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Write prints the changes, one per line.
func Write(w io.Writer, cs []Change) error {
	for _, c := range cs {
		if _, err := fmt.Fprintln(w, c); err != nil {
			return err
		}
	}
	return nil
}

// Summary is a one-line account of the changes, for a commit subject.
func Summary(cs []Change) string {
	if len(cs) == 0 {
		return "no drift"
	}
	count := map[string]int{}
	var order []string
	for _, c := range cs {
		k := topic(c.Path)
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, count[k]))
	}
	s := strings.Join(parts, ", ")
	if len(s) > 60 {
		s = fmt.Sprintf("%d changes", len(cs))
	}
	return s
}

func topic(path string) string {
	head := path
	if i := strings.IndexAny(path, ".["); i >= 0 {
		head = path[:i]
	}
	switch head {
	case "volume_groups":
		return "lvm"
	case "system":
		if strings.HasPrefix(path, "system.packages") {
			return "packages"
		}
	}
	return head
}
