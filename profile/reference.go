package profile

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference renders the key reference of docs/profile.md from the types'
// doc tags: one table per section, every key with its type and meaning.
func Reference() string {
	var b strings.Builder
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		type row struct{ key, typ, doc string }
		var rows []row
		var nested []func()
		for _, fi := range fieldsOf(t) {
			f := t.Field(fi.index)
			p := join(prefix, fi.key)
			ft := f.Type
			typ := typeName(ft, fi.keyed)
			doc := fi.doc
			if fi.enum != nil {
				doc += " One of: " + strings.Join(fi.enum, ", ") + "."
			}
			if !fi.omitEmpty && ft.Kind() != reflect.Bool {
				doc = "**Required.** " + doc
			}
			rows = append(rows, row{"`" + p + "`", typ, doc})
			elem := ft
			sub := p
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
				if elem.Kind() == reflect.Slice {
					if fi.keyed {
						sub += ".*"
					} else {
						sub += "[]"
					}
				}
				elem = elem.Elem()
			}
			if elem.Kind() == reflect.Struct && elem != sizeType {
				nested = append(nested, func() { walk(elem, sub) })
			}
		}
		title := prefix
		if title == "" {
			title = "top level"
		}
		fmt.Fprintf(&b, "\n#### %s\n\n| key | type | meaning |\n|---|---|---|\n", title)
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", r.key, r.typ, strings.ReplaceAll(r.doc, "|", `\|`))
		}
		for _, n := range nested {
			n()
		}
	}
	walk(reflect.TypeFor[Profile](), "")
	return b.String()
}

func typeName(t reflect.Type, keyed bool) string {
	switch {
	case t == sizeType:
		return "size"
	case keyed:
		return "map of name → " + strings.ToLower(t.Elem().Name())
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem(), false)
	case reflect.Slice:
		return "list of " + typeName(t.Elem(), false)
	case reflect.Map:
		return "map of " + typeName(t.Elem(), false)
	case reflect.Struct:
		return "mapping"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	}
	return "text"
}
