package rules

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

// typeProblem is a value of a rule file that does not fit the schema: a key the schema does
// not have, or a value of the wrong type. Key is the path with array indexes, 0-based, as
// tomlx.Locate takes it.
type typeProblem struct {
	key     []string
	msg     string
	unknown bool
}

// typecheck walks a decoded TOML document against the Go type it is decoded into and reports
// every problem, removing each offending key from the document so that what remains decodes.
func typecheck(doc map[string]any, t reflect.Type) []typeProblem {
	var out []typeProblem
	checkTable(doc, t, nil, &out)
	return out
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fields maps the TOML keys of a struct type, embedded structs included, to their types.
func fields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := structFields(t)
	fieldCache.Store(t, m)
	return m
}

func structFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range fields(f.Type) {
				m[k] = v
			}
			continue
		}
		name := strings.Split(f.Tag.Get("toml"), ",")[0]
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = f.Type
	}
	return m
}

func checkTable(m map[string]any, t reflect.Type, key []string, out *[]typeProblem) {
	known := fields(t)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := append(append([]string(nil), key...), k)
		ft, ok := known[k]
		if !ok {
			*out = append(*out, typeProblem{key: path, unknown: true})
			delete(m, k)
			continue
		}
		if !checkValue(m[k], ft, path, out) {
			delete(m, k)
		}
	}
}

// checkValue reports whether v fits t; problems inside tables are reported and removed there,
// a mismatch of v itself is reported here and makes the caller remove v.
func checkValue(v any, t reflect.Type, key []string, out *[]typeProblem) bool {
	bad := func(msg string) bool {
		*out = append(*out, typeProblem{key: key, msg: msg})
		return false
	}
	if reflect.PointerTo(t).Implements(tomlUnmarshaler) {
		if err := reflect.New(t).Interface().(toml.Unmarshaler).UnmarshalTOML(v); err != nil {
			return bad(err.Error())
		}
		return true
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case time.Time:
			s = v.Format(time.RFC3339Nano)
		default:
			return bad(fmt.Sprintf("expected %s, got %s", describeType(t), describeValue(v)))
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return bad(err.Error())
		}
		return true
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkValue(v, t.Elem(), key, out)
	case reflect.String:
		if _, ok := v.(string); ok {
			return true
		}
	case reflect.Bool:
		if _, ok := v.(bool); ok {
			return true
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n, ok := v.(int64); ok {
			lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
			if bits := t.Bits(); bits < 64 {
				lo, hi = -1<<(bits-1), 1<<(bits-1)-1
			}
			if n < lo || n > hi {
				return bad(fmt.Sprintf("%d is out of range", n))
			}
			return true
		}
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case float64, int64:
			return true
		}
	case reflect.Struct:
		if t == timeType {
			if _, ok := v.(time.Time); ok {
				return true
			}
			break
		}
		if m, ok := v.(map[string]any); ok {
			checkTable(m, t, key, out)
			return true
		}
	case reflect.Slice:
		var elems []any
		switch v := v.(type) {
		case []any:
			elems = v
		case []map[string]any:
			for _, m := range v {
				elems = append(elems, m)
			}
		default:
			return bad(fmt.Sprintf("expected %s, got %s", describeType(t), describeValue(v)))
		}
		ok := true
		for i, e := range elems {
			if !checkValue(e, t.Elem(), append(append([]string(nil), key...), strconv.Itoa(i)), out) {
				ok = false
			}
		}
		return ok
	}
	return bad(fmt.Sprintf("expected %s, got %s", describeType(t), describeValue(v)))
}

// describeType names what a Go type takes, in TOML's words.
func describeType(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if t == reflect.TypeFor[date]() {
			return "a date (YYYY-MM-DD)"
		}
		return "a string"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct:
		if t == timeType {
			return "a date-time"
		}
		return "a table"
	case reflect.Slice:
		el := describeType(t.Elem())
		el = strings.TrimPrefix(strings.TrimPrefix(el, "an "), "a ")
		if i := strings.IndexByte(el, ' '); i > 0 && strings.HasPrefix(el, "boolean") {
			el = el[:i]
		}
		return "an array of " + el + "s"
	}
	return t.String()
}

// describeValue names the TOML type of a decoded value.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("a value of type %T", v)
	}
}
