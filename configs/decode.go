package configs

import (
	"errors"
	"fmt"
	stdmaps "maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

const (
	durationAccepted = "a Go duration like 30s or 5m"
	intAccepted      = "a whole number"
)

// valueError is returned by decode hooks; decode turns it into an *Error
// with the key that mapstructure was decoding.
type valueError struct {
	value, problem, accepted string
}

func (e *valueError) Error() string { return e.problem }

// durationHook parses durations itself because mapstructure would turn a
// bare number such as `shutdown_timeout: 30` into 30ns.
func durationHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	named := to == reflect.TypeFor[Duration]()
	if to != reflect.TypeFor[time.Duration]() && !named {
		return data, nil
	}
	var d time.Duration
	var err error
	switch v := data.(type) {
	case time.Duration:
		d = v
	case Duration:
		d = time.Duration(v)
	case string:
		d, err = time.ParseDuration(v)
	default:
		err = errors.New("not a duration")
	}
	if err == nil {
		if named {
			return Duration(d), nil
		}
		return d, nil
	}
	return nil, &valueError{value: fmt.Sprint(data), problem: "is not a valid duration", accepted: durationAccepted}
}

// boolHook reads true and false written as text, which is all the
// environment and flags can give.
func boolHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	v, ok := data.(string)
	if to.Kind() != reflect.Bool || !ok {
		return data, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return nil, &valueError{value: v, problem: "is not a boolean", accepted: "true or false"}
}

// intHook reads whole numbers. mapstructure would truncate 1.5 to 1 and
// wrap a uint64 past MaxInt64; YAML, TOML and JSON give three different
// number types; and the environment and flags give strings.
func intHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int {
		return data, nil
	}
	bad := &valueError{value: fmt.Sprint(data), problem: "is not a whole number", accepted: intAccepted}
	switch v := data.(type) {
	case int:
		return v, nil
	case int64:
		if v < math.MinInt || v > math.MaxInt {
			bad.problem = "is out of range"
			return nil, bad
		}
		return int(v), nil
	case uint64:
		if v > math.MaxInt {
			bad.problem = "is out of range"
			return nil, bad
		}
		return int(v), nil
	case float64:
		// Beyond 2^53 a float64 no longer holds every whole number, so
		// the value may not be the one written.
		if v != math.Trunc(v) {
			return nil, bad
		}
		if math.Abs(v) > 1<<53 {
			bad.problem = "is out of range"
			return nil, bad
		}
		return int(v), nil
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n, nil
		} else if errors.Is(err, strconv.ErrRange) {
			bad.problem = "is out of range"
		}
		return nil, bad
	}
	// Other kinds (booleans, lists) are type errors for the decoder.
	return data, nil
}

// decode turns the merged koanf tree into a Config, as far as it can be
// decoded, and the problems found. Unknown keys are found
// by walking the tree against the schema, which gives exact key paths and
// every typo at once; mapstructure's ErrorUnused stays on as a backstop.
func decode(ko *koanf.Koanf) (*Config, Errors) {
	errs := unknownKeys(ko.Raw(), reflect.TypeFor[Config](), nil)
	var cfg Config
	err := ko.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.DecodeHookFuncType(durationHook),
				mapstructure.DecodeHookFuncType(intHook),
				mapstructure.DecodeHookFuncType(boolHook),
				mapstructure.DecodeHookFuncType(commandHook),
				mapstructure.DecodeHookFuncType(sizeHook),
			),
			ErrorUnused: true,
		},
	})
	if err != nil {
		errs = append(errs, decodeErrors(err, ko.Raw(), len(errs) > 0)...)
	}
	return &cfg, errs
}

// unknownKeys also rejects keys with a null value.
func unknownKeys(v any, t reflect.Type, p path) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs Errors
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a type error, reported by the decoder
		}
		for _, k := range slices.Sorted(stdmaps.Keys(m)) {
			f, ok := fieldByTag(t, k)
			if !ok {
				errs = append(errs, newError(p.field(k), "", "is not a known key", strings.Join(tags(t), ", ")))
				continue
			}
			if m[k] == nil {
				// A bare `routes:` would wipe out the default, and
				// silently: say so rather than guess what was meant.
				errs = append(errs, newError(p.field(k), "", "has no value", "a value, [] or {} for an empty one, or no key at all for the default"))
				continue
			}
			errs = append(errs, unknownKeys(m[k], f.Type, p.field(k))...)
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for _, k := range slices.Sorted(stdmaps.Keys(m)) {
			errs = append(errs, unknownKeys(m[k], t.Elem(), p.key(k))...)
		}
	case reflect.Slice:
		s, _ := v.([]any)
		for i, e := range s {
			errs = append(errs, unknownKeys(e, t.Elem(), p.index(i))...)
		}
	}
	return errs
}

func tagOf(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	return name
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if tagOf(f) == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tags(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		out = append(out, tagOf(f))
	}
	return out
}

// decodeErrors turns mapstructure's joined errors into *Error values. The
// problem text is built from the schema and the raw value rather than
// taken from mapstructure, whose messages can quote the value (a secret).
func decodeErrors(err error, raw map[string]any, haveUnknown bool) Errors {
	var errs Errors
	for _, leaf := range leaves(err) {
		de, ok := leaf.(*mapstructure.DecodeError)
		if !ok {
			errs = append(errs, &Error{Problem: "cannot be decoded"})
			continue
		}
		inner := de.Unwrap()
		if inner != nil && strings.HasPrefix(inner.Error(), "has invalid keys") {
			if haveUnknown {
				continue // already reported, one per key
			}
			errs = append(errs, &Error{Key: de.Name(), Problem: "has unknown keys"})
			continue
		}
		p := parseDecoderName(de.Name())
		if ve, ok := errors.AsType[*valueError](inner); ok {
			errs = append(errs, newError(p, ve.value, ve.problem, ve.accepted))
			continue
		}
		errs = append(errs, typeError(p, raw))
	}
	return errs
}

func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	if de, ok := err.(*mapstructure.DecodeError); ok {
		if _, ok := de.Unwrap().(interface{ Unwrap() []error }); ok {
			return leaves(de.Unwrap())
		}
		return []error{err}
	}
	// Decoder.Decode wraps joined errors in one fmt.Errorf("...%w").
	if u := errors.Unwrap(err); u != nil {
		return leaves(u)
	}
	return []error{err}
}

// parseDecoderName reads mapstructure's field names, "routes[0].hosts[1]"
// or "sources[prod].method" or "upstream.connect_to[a.b:80]". A map key
// may itself contain dots or brackets, so it runs to the last ']'.
func parseDecoderName(name string) path {
	var p path
	for i := 0; i < len(name); {
		switch name[i] {
		case '.':
			i++
		case '[':
			isMap := len(p) > 0 && (p[len(p)-1].name == "sources" || p[len(p)-1].name == "connect_to" || p[len(p)-1].name == "tags" ||
				// wasm.env is a map; mfa.env is a list.
				len(p) > 1 && p[len(p)-1].name == "env" && p[len(p)-2].name == "wasm")
			if isMap {
				j := strings.LastIndexByte(name, ']')
				// A source's key is followed by its fields, which may
				// hold maps of their own (sts.tags, wasm.env).
				if k := strings.Index(name[i:], "]."); k >= 0 && p[len(p)-1].name == "sources" {
					j = i + k
				}
				if j <= i {
					j = len(name)
				}
				p = p.key(name[i+1 : j])
				i = j + 1
				continue
			}
			j := strings.IndexByte(name[i:], ']')
			if j < 0 {
				j = len(name) - i
			}
			p = p.add(seg{name[i+1 : i+j], segIndex})
			i += j + 1
		default:
			j := strings.IndexAny(name[i:], ".[")
			if j < 0 {
				j = len(name) - i
			}
			p = p.field(name[i : i+j])
			i += j
		}
	}
	return p
}

func typeError(p path, raw map[string]any) *Error {
	want := describeType(typeAt(reflect.TypeFor[Config](), p))
	got := valueAt(raw, p)
	e := newError(p, scalarString(got), "must be "+want+", not "+describeValue(got), "")
	return e
}

func typeAt(t reflect.Type, p path) reflect.Type {
	for _, s := range p {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, s.name)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map, reflect.Slice:
			t = t.Elem()
		default:
			return nil
		}
	}
	return t
}

func valueAt(raw any, p path) any {
	cur := raw
	for _, s := range p {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[s.name]
		case []any:
			var i int
			if _, err := fmt.Sscan(s.name, &i); err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "something else"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return intAccepted
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.Kind().String()
}

func describeValue(v any) string {
	switch v.(type) {
	case nil:
		return "empty"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case time.Time:
		return "a date"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// scalarString is the value to show in an error; lists and mappings are
// described, not printed.
func scalarString(v any) string {
	switch v.(type) {
	case nil, map[string]any, []any:
		return ""
	}
	return fmt.Sprint(v)
}
