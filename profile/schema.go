package profile

import (
	"encoding/json"
	"reflect"
	"strconv"
)

// Schema returns a JSON Schema (draft 2020-12) for profiles, generated from the
// Go types, so editors can complete and check profiles as they are typed.
func Schema() ([]byte, error) {
	s := schemaOf(reflect.TypeFor[Profile]())
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://github.com/stratahq/strata/profile.schema.json"
	s["title"] = "strata host profile"
	s["required"] = []string{"version", "host", "disks"}
	return json.MarshalIndent(s, "", "  ")
}

var sizeType = reflect.TypeFor[Size]()

func schemaOf(t reflect.Type) map[string]any {
	if t == sizeType {
		return map[string]any{
			"type":    []string{"string", "integer"},
			"pattern": `^(rest|[0-9.]+%(free)?|[0-9.]+ ?(B|KiB|MiB|GiB|TiB|PiB|kB|MB|GB|TB|PB)?)$`,
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, fi := range fieldsOf(t) {
			f := t.Field(fi.index)
			var ps map[string]any
			if fi.keyed {
				ps = map[string]any{
					"type":                 "object",
					"propertyNames":        map[string]any{"pattern": nameRE.String()},
					"additionalProperties": schemaOf(f.Type.Elem()),
				}
			} else {
				ps = schemaOf(f.Type)
			}
			if fi.doc != "" {
				ps["description"] = fi.doc
			}
			if fi.enum != nil {
				var vals []any
				for _, e := range fi.enum {
					if ps["type"] == "integer" {
						n, _ := strconv.Atoi(e)
						vals = append(vals, n)
					} else {
						vals = append(vals, e)
					}
				}
				ps["enum"] = vals
			}
			props[fi.key] = ps
			if !fi.omitEmpty && f.Type.Kind() != reflect.Bool {
				required = append(required, fi.key)
			}
		}
		out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			out["required"] = required
		}
		return out
	}
	panic("profile: no schema for " + t.String())
}

// Keys lists every key path of the profile format ("disks.*.partitions[].size"),
// for documentation checks.
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Slice {
				prefix += "[]"
			} else if t.Kind() == reflect.Map {
				prefix += ".*"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == sizeType {
			return
		}
		for _, fi := range fieldsOf(t) {
			p := join(prefix, fi.key)
			out = append(out, p)
			ft := t.Field(fi.index).Type
			if fi.keyed {
				walk(ft.Elem(), p+".*")
			} else {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Profile](), "")
	return out
}
