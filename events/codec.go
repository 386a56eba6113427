package events

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// field is what the codec knows of a payload struct's field.
type field struct {
	name      string // the JSON key
	index     int
	omitEmpty bool // written only when not zero
	required  bool // a line read must have it
}

// fieldsOfType lists the fields of the payload struct t: its exported fields with a json tag
// other than "-".
func fieldsOfType(t reflect.Type) ([]field, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("payload %s is not a struct", t)
	}
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("json")
		if !sf.IsExported() || !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		omit := opts == "omitempty"
		out = append(out, field{name: name, index: i, omitEmpty: omit, required: !omit && sf.Tag.Get("events") != "optional"})
	}
	return out, nil
}

// fieldsOf is p's fields by JSON key, as encode writes them.
func fieldsOf(p Payload) (map[string]any, error) {
	v := reflect.ValueOf(p)
	fields, err := fieldsOfType(v.Type())
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		fv := v.Field(f.index)
		if f.omitEmpty && fv.IsZero() {
			continue
		}
		out[f.name] = fv.Interface()
	}
	return out, nil
}

// decodeInto sets the fields of the struct that p points to from raw, the fields of a line: a
// required field that raw lacks is an error; a float (or a float of a map) written as "NaN",
// "+Inf" or "-Inf" is read as that number; keys of raw that p does not name are ignored.
func decodeInto(raw map[string]json.RawMessage, p any) error {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("decode into %T: not a pointer to a payload", p)
	}
	v = v.Elem()
	fields, err := fieldsOfType(v.Type())
	if err != nil {
		return err
	}
	for _, f := range fields {
		r, ok := raw[f.name]
		if !ok {
			if f.required {
				return fmt.Errorf("missing field %q", f.name)
			}
			continue
		}
		if err := decodeValue(r, v.Field(f.index)); err != nil {
			return fmt.Errorf("field %q: %w", f.name, err)
		}
	}
	return nil
}

// decodeValue sets v from r, reading non-finite floats from their strings.
func decodeValue(r json.RawMessage, v reflect.Value) error {
	switch {
	case v.Kind() == reflect.Float64 || v.Kind() == reflect.Float32:
		if f, ok := parseNonFinite(r); ok {
			v.SetFloat(f)
			return nil
		}
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String &&
		(v.Type().Elem().Kind() == reflect.Float64 || v.Type().Elem().Kind() == reflect.Float32):
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r, &m); err != nil || m == nil {
			return err
		}
		out := reflect.MakeMapWithSize(v.Type(), len(m))
		for k, r := range m {
			e := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(r, e); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
		v.Set(out)
		return nil
	}
	return json.Unmarshal(r, v.Addr().Interface())
}

// parseNonFinite reads the strings that stand for the floats JSON cannot hold.
func parseNonFinite(r json.RawMessage) (float64, bool) {
	switch string(r) {
	case `"NaN"`:
		return math.NaN(), true
	case `"+Inf"`:
		return math.Inf(1), true
	case `"-Inf"`:
		return math.Inf(-1), true
	}
	return 0, false
}

// finite replaces non-finite floats, which JSON cannot hold, by strings.
func finite(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nonFinite(x)
		}
	case float32:
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return nonFinite(f)
		}
	case map[string]float64:
		out := make(map[string]any, len(x))
		for k, f := range x {
			out[k] = finite(f)
		}
		return out
	}
	return v
}

func nonFinite(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case f > 0:
		return "+Inf"
	default:
		return "-Inf"
	}
}
