package rules

import (
	"reflect"
	"unique"
)

// internStrings replaces every string reachable from v (through structs, pointers, slices and
// arrays; exported fields only) with its canonical copy. Decoded values are slices of the
// rule file's text, which they would otherwise keep alive whole; canonical copies are shared
// by equal strings (severities, controls, paths) across every file loaded.
func internStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(unique.Make(v.String()).Value())
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			internStrings(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				internStrings(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			internStrings(v.Index(i))
		}
	}
}
