package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A layer is one source of settings: a document or one --set flag.
type layer struct {
	name string     // file or document name, or "--set key=value"
	dir  string     // a relative data.path set here resolves against dir ("" = current directory)
	flag bool       // a --set flag: its nodes carry no line worth reporting
	root *yaml.Node // a mapping
}

// Load reads the config file at path, lays it over Default() and the layers of the built-in tree
// it names, applies overrides ("dotted.key=value", e.g. "train.epochs=3" or
// "optimizer.betas=[0.9,0.98]") in order, decodes strictly and validates. A relative data.path
// in the file resolves against the file's directory. Every error about the configuration is an
// *Error. Builtin().File is the same; DirTree(dir).File takes the layers from dir.
func Load(path string, overrides []string) (Config, error) {
	return Builtin().File(path, overrides)
}

// LoadBytes is Load for an in-memory document: name stands for the file in errors, and a
// relative data.path in doc resolves against baseDir ("" = the current directory).
func LoadBytes(name string, doc []byte, baseDir string, overrides []string) (Config, error) {
	top, err := parseDocument(name, doc, baseDir)
	if err != nil {
		return Config{}, err
	}
	c, _, err := Builtin().stack(top, nil, overrides)
	return c, err
}

// parseDocument parses doc as the layer of one YAML document whose top level is a mapping.
func parseDocument(name string, doc []byte, dir string) (*layer, error) {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "no settings (the document is empty)"}
		}
		line, msg := yamlSyntax(err)
		return nil, &Error{File: name, Line: line, Msg: msg}
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			line, msg := yamlSyntax(err)
			return nil, &Error{File: name, Line: line, Msg: msg}
		}
		return nil, &Error{File: name, Line: next.Line, Msg: "more than one YAML document"}
	}
	root := n.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Msg: "top level must be a mapping of settings (got " + describe(root) + ")"}
	}
	return &layer{name: name, dir: dir, root: root}, nil
}

// yamlSyntax splits a yaml.v3 parse error ("yaml: line 3: did not find expected key")
// into its line (0 if none) and a message.
func yamlSyntax(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	return line, "invalid YAML: " + msg
}

// parseSet turns "a.b.c=value" into the layer {a: {b: {c: value}}}; value is parsed as
// YAML (so "[0.9,0.98]" is a list and "foo" a string), and an empty value is "". A key under
// layers is an error: the layers are loaded before the flags apply, so it could not take effect.
func parseSet(arg string) (*layer, error) {
	name := "--set " + arg
	key, value, ok := strings.Cut(arg, "=")
	if !ok {
		return nil, &Error{File: name, Msg: "want dotted.key=value"}
	}
	parts := strings.Split(key, ".")
	if slices.Contains(parts, "") {
		return nil, &Error{File: name, Key: key, Msg: "malformed key: want dotted.key=value"}
	}
	if parts[0] == "layers" {
		return nil, &Error{File: name, Key: key, Msg: "cannot be set with --set (the layers are read before any flag): " +
			"name them in the layers section of an experiment or a --config file"}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		_, msg := yamlSyntax(err)
		return nil, &Error{File: name, Key: key, Msg: msg}
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str"}
	if len(doc.Content) > 0 {
		n = doc.Content[0]
	}
	for i := len(parts) - 1; i >= 0; i-- {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: parts[i]}
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, n}}
	}
	return &layer{name: name, flag: true, root: n}, nil
}

// build merges layers in order over Default(), decodes, resolves and validates; the decoder
// knows where each value came from.
func build(layers []*layer) (Config, *decoder, error) {
	d := &decoder{origin: map[*yaml.Node]*layer{}, set: map[string]*yaml.Node{}}
	var root *yaml.Node
	for _, l := range layers {
		if !l.flag {
			d.first = l // the top file: named by errors that no value locates
		}
		if err := d.collect(l, l.root, ""); err != nil {
			return Config{}, nil, err
		}
		root = merge(root, l.root)
	}
	kind, err := d.modelKind(root)
	if err != nil {
		return Config{}, nil, err
	}
	d.kind = kind
	c := DefaultFor(kind)
	if err := d.decode(root, reflect.ValueOf(&c).Elem(), ""); err != nil {
		return Config{}, nil, err
	}
	if d.set["run_dir"] == nil {
		c.RunDir = filepath.Join("runs", c.Name)
	}
	if n := d.set["data.path"]; n != nil && c.Data.Path != "" && !filepath.IsAbs(c.Data.Path) {
		c.Data.Path = filepath.Join(d.origin[n].dir, c.Data.Path)
	}
	if p := c.problem(); p != nil {
		return Config{}, nil, d.locate(p)
	}
	return c, d, nil
}

// modelKind returns the model kind that the merged tree root names in model.kind, or Default's
// when it names none; an error when model.kind is not one of modelKinds. A model section that is
// no mapping is left to decode to report.
func (d *decoder) modelKind(root *yaml.Node) (string, error) {
	kind := Default().Model.Kind
	model := child(root, "model")
	if model == nil || model.Kind != yaml.MappingNode {
		return kind, nil
	}
	n := child(model, "kind")
	if n == nil {
		return kind, nil
	}
	if err := d.value(n, reflect.ValueOf(&kind).Elem(), "model.kind"); err != nil {
		return "", err
	}
	if !slices.Contains(modelKinds, kind) {
		return "", d.errorf(n, "model.kind", "must be one of %s (got %q)", strings.Join(modelKinds, ", "), kind)
	}
	return kind, nil
}

// child returns the value of key in the mapping m, or nil.
func child(m *yaml.Node, key string) *yaml.Node {
	if i := keyIndex(m, key); i >= 0 {
		return m.Content[i+1]
	}
	return nil
}

// merge lays src over dst: mappings merge key by key (recursively), anything else in src
// replaces what dst has. It reuses (and may modify) the nodes of both.
func merge(dst, src *yaml.Node) *yaml.Node {
	if dst == nil || dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		return src
	}
	for i := 0; i < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j := keyIndex(dst, k.Value)
		if j < 0 {
			dst.Content = append(dst.Content, k, v)
			continue
		}
		dst.Content[j+1] = merge(dst.Content[j+1], v)
	}
	return dst
}

// keyIndex returns the index in m.Content of the key node named key, or -1.
func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// A decoder fills a Config from a merged tree, remembering where each value came from.
type decoder struct {
	origin map[*yaml.Node]*layer // every node of every layer -> its layer
	set    map[string]*yaml.Node // dotted key -> the value node that set it
	first  *layer                // the top file, named by errors that no node locates
	kind   string                // the model kind: the subsections it names exist
}

// errorf returns an *Error for key located at n (nil: the first layer, no line).
func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) *Error {
	e := &Error{File: d.first.name, Key: key, Msg: fmt.Sprintf(format, args...)}
	if l := d.origin[n]; l != nil {
		e.File = l.name
		if !l.flag {
			e.Line = n.Line
		}
	}
	return e
}

// locate places a validation problem at the first of its keys that a layer set.
func (d *decoder) locate(p *problem) *Error {
	for _, k := range p.keys {
		if n := d.set[k]; n != nil {
			return d.errorf(n, p.keys[0], "%s", p.msg)
		}
	}
	return d.errorf(nil, p.keys[0], "%s", p.msg)
}

// collect records the layer of each node of n and rejects what the merge cannot
// represent faithfully: duplicate keys and aliases.
func (d *decoder) collect(l *layer, n *yaml.Node, key string) error {
	d.origin[n] = l
	switch n.Kind {
	case yaml.AliasNode:
		return d.errorf(n, key, "YAML aliases are not supported")
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i]
			d.origin[k] = l
			sub := join(key, k.Value)
			if j := keyIndex(n, k.Value); j < i {
				return d.errorf(k, sub, "duplicate key (first on line %d)", n.Content[j].Line)
			}
			if err := d.collect(l, n.Content[i+1], sub); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			if err := d.collect(l, e, fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
)

// decode sets v (a struct or a value) from n; keys n does not name keep their value. A pointer
// field is the subsection of the model kind its key names: nil unless that kind is d.kind.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, key string) error {
	if v.Kind() != reflect.Struct || v.Type() == timeType {
		return d.value(n, v, key)
	}
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, key, "must be a mapping (got %s)", describe(n))
	}
	names := yamlNames(v.Type())
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		sub := join(key, k.Value)
		f := slices.Index(names, k.Value)
		if f < 0 {
			return d.unknown(k, v.Type(), key)
		}
		field := v.Field(f)
		if field.Kind() == reflect.Pointer {
			if field.IsNil() {
				return d.errorf(k, sub, "only for model.kind %s (model.kind is %s)", k.Value, d.kind)
			}
			field = field.Elem()
		}
		if err := d.decode(n.Content[i+1], field, sub); err != nil {
			return err
		}
	}
	return nil
}

// unknown is the error for the key k that struct type t (at key) lacks: where it moved, if it is
// a key of one of t's kind subsections, else the key of t or of its active kind subsection that
// comes closest.
func (d *decoder) unknown(k *yaml.Node, t reflect.Type, key string) *Error {
	sub := join(key, k.Value)
	var known []string
	for i, name := range yamlNames(t) {
		ft := t.Field(i).Type
		if ft.Kind() != reflect.Pointer {
			known = append(known, name)
			continue
		}
		subNames := yamlNames(ft.Elem())
		if slices.Contains(subNames, k.Value) {
			to := join(key, name+"."+k.Value)
			if name != d.kind {
				return d.errorf(k, sub, "moved to %s, only for model.kind %s (model.kind is %s)", to, name, d.kind)
			}
			return d.errorf(k, sub, "moved to %s", to)
		}
		if name == d.kind {
			known = append(known, name)
			for _, s := range subNames {
				known = append(known, name+"."+s)
			}
		}
	}
	return d.errorf(k, sub, "unknown key; %s", suggest(k.Value, known))
}

// value sets a leaf field: no coercion beyond YAML's own (3.5 is no integer, "3" no
// number, null nothing), no NaN or infinity.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) error {
	d.set[key] = n
	if v.Kind() == reflect.Array {
		if n.Kind != yaml.SequenceNode || len(n.Content) != v.Len() {
			return d.errorf(n, key, "must be a list of %d numbers (got %s)", v.Len(), describe(n))
		}
		for i, e := range n.Content {
			if err := d.value(e, v.Index(i), fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
		return nil
	}
	tag := n.ShortTag()
	if v.Type() == timeType {
		t, err := parseTime(n.Value)
		if n.Kind != yaml.ScalarNode || tag == "!!null" || err != nil {
			return d.errorf(n, key, "must be a date (YYYY-MM-DD) or an RFC 3339 time (got %s)", describe(n))
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	if v.Type() == durationType {
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || tag != "!!str" || err != nil {
			return d.errorf(n, key, "must be a duration such as 90s, 15m or 2h30m (got %s)", describe(n))
		}
		v.SetInt(int64(dur))
		return nil
	}
	var ok bool
	switch v.Kind() {
	case reflect.String:
		ok = tag != "!!null"
	case reflect.Bool:
		ok = tag == "!!bool"
	case reflect.Int, reflect.Uint64:
		ok = tag == "!!int"
	case reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	}
	if !ok || n.Kind != yaml.ScalarNode || n.Decode(v.Addr().Interface()) != nil ||
		v.Kind() == reflect.Float64 && (math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0)) {
		return d.errorf(n, key, "must be %s (got %s)", expected(v.Kind()), describe(n))
	}
	return nil
}

func expected(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "an integer"
	case reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float64:
		return "a finite number"
	default:
		return "a string"
	}
}

// parseTime accepts YYYY-MM-DD (midnight UTC) or RFC 3339, and returns UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t, err = time.Parse(time.RFC3339, s)
	}
	return t.UTC(), err
}

// describe names what a node holds, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return fmt.Sprintf("a list of %d", len(n.Content))
	case n.ShortTag() == "!!null":
		return "null"
	default:
		return strconv.Quote(n.Value)
	}
}

// yamlNames returns the YAML key of each field of struct type t, by field index.
func yamlNames(t reflect.Type) []string {
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
	}
	return names
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// suggest proposes the known key closest to an unknown one (the last part of a dotted known
// key counts), or lists them all.
func suggest(unknown string, known []string) string {
	best, bestDist := "", len(unknown)/3+2 // suggest within a third of the length, plus one
	for _, k := range known {
		if dist := editDistance(unknown, k[strings.LastIndex(k, ".")+1:]); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	return "known keys: " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance between a and b (bytes).
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
