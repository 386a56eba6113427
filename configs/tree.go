package configs

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// The kinds of layer a Tree holds, each a folder of NAME.yaml files.
const (
	Models      = "models"
	Strategies  = "strategies"
	Experiments = "experiments"
)

//go:embed models/*.yaml strategies/*.yaml experiments/*.yaml
var builtin embed.FS

// Tree is a folder of config layers: models/, strategies/ and experiments/, each holding NAME.yaml
// files. An experiment names a model and a strategy in its layers section and may set any key
// besides; the layers are merged as Default() < model < strategy < experiment < --set flags.
//
// A relative data.path set in a layer of a tree resolves against the current directory (an
// embedded tree has no directory of its own), unlike one in a standalone file.
type Tree struct {
	fsys fs.FS
	name string // the folder as errors name it: "configs" (built in) or the --config-dir path
}

// Builtin returns the tree built into the binary: the configs/ folder of the source.
func Builtin() Tree { return Tree{fsys: builtin, name: "configs"} }

// DirTree returns the tree in the folder dir (a --config-dir).
func DirTree(dir string) Tree { return Tree{fsys: os.DirFS(dir), name: dir} }

// String returns the folder the tree stands for.
func (t Tree) String() string { return t.name }

// List returns the names of the layers of a kind (Models, Strategies or Experiments), sorted.
func (t Tree) List(kind string) ([]string, error) {
	entries, err := fs.ReadDir(t.fsys, kind)
	if err != nil {
		return nil, &Error{File: filepath.Join(t.name, kind), Msg: "cannot list: " + pathErr(err)}
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, name)
		}
	}
	return names, nil
}

// Match returns the experiments whose names match pattern (path.Match syntax: "lstm-*"), or
// pattern itself when it has no wildcard and names one; an error when nothing matches.
func (t Tree) Match(pattern string) ([]string, error) {
	all, err := t.List(Experiments)
	if err != nil {
		return nil, err
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, &Error{File: filepath.Join(t.name, Experiments), Msg: fmt.Sprintf("bad pattern %q: %v", pattern, err)}
	}
	var names []string
	for _, n := range all {
		if ok, _ := path.Match(pattern, n); ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, &Error{File: filepath.Join(t.name, Experiments), Msg: fmt.Sprintf("no experiment matches %q ('spottrain config list' lists them)", pattern)}
	}
	return names, nil
}

// Experiment loads experiments/<name>.yaml with its layers and the overrides. The config's name
// is the experiment's unless a layer sets it; run_dir then defaults to runs/<name>.
func (t Tree) Experiment(name string, overrides []string) (Config, error) {
	c, _, err := t.experiment(name, overrides)
	return c, err
}

// File loads a standalone config file (a relative data.path in it resolves against its folder)
// with the layers it names from t, and the overrides.
func (t Tree) File(file string, overrides []string) (Config, error) {
	c, _, err := t.file(file, overrides)
	return c, err
}

// ShowExperiment returns the merged config of an experiment as YAML. With origins, each value
// carries a comment naming the file and line (or the flag) that set it, or "default".
func (t Tree) ShowExperiment(name string, overrides []string, origins bool) ([]byte, error) {
	c, d, err := t.experiment(name, overrides)
	if err != nil {
		return nil, err
	}
	return show(c, d, origins)
}

// ShowFile is ShowExperiment for a standalone file.
func (t Tree) ShowFile(file string, overrides []string, origins bool) ([]byte, error) {
	c, d, err := t.file(file, overrides)
	if err != nil {
		return nil, err
	}
	return show(c, d, origins)
}

func (t Tree) experiment(name string, overrides []string) (Config, *decoder, error) {
	if !nameRE.MatchString(name) {
		return Config{}, nil, &Error{Msg: fmt.Sprintf("bad experiment name %q: letters, digits, '.', '_' or '-'", name)}
	}
	top, err := t.layer(Experiments, name)
	var missing *missingLayer
	if errors.As(err, &missing) {
		return Config{}, nil, &Error{Msg: missing.Error()}
	}
	if err != nil {
		return Config{}, nil, err
	}
	// The experiment's name, beneath the experiment file: it may set another.
	named := &layer{name: top.name + " (its file name)", flag: true, root: mapping("name", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name})}
	return t.stack(top, named, overrides)
}

func (t Tree) file(file string, overrides []string) (Config, *decoder, error) {
	doc, err := os.ReadFile(file)
	if err != nil {
		return Config{}, nil, &Error{File: file, Msg: "cannot read: " + pathErr(err)}
	}
	top, err := parseDocument(file, doc, filepath.Dir(file))
	if err != nil {
		return Config{}, nil, err
	}
	return t.stack(top, nil, overrides)
}

// stack loads the layers top names, then builds model < strategy < named < top < overrides.
func (t Tree) stack(top, named *layer, overrides []string) (Config, *decoder, error) {
	var layers []*layer
	if i := keyIndex(top.root, "layers"); i >= 0 {
		refs := top.root.Content[i+1]
		if refs.Kind != yaml.MappingNode {
			return Config{}, nil, &Error{File: top.name, Line: refs.Line, Key: "layers", Msg: "must be a mapping (got " + describe(refs) + ")"}
		}
		for _, kind := range []struct{ key, dir string }{{"model", Models}, {"strategy", Strategies}} {
			j := keyIndex(refs, kind.key)
			if j < 0 {
				continue
			}
			ref := refs.Content[j+1]
			if ref.Kind == yaml.ScalarNode && ref.ShortTag() == "!!str" && ref.Value == "" {
				continue // no such layer
			}
			if ref.Kind != yaml.ScalarNode || ref.ShortTag() != "!!str" || !nameRE.MatchString(ref.Value) {
				return Config{}, nil, &Error{File: top.name, Line: ref.Line, Key: "layers." + kind.key, Msg: "must name a file of " + kind.dir + "/ (got " + describe(ref) + ")"}
			}
			l, err := t.layer(kind.dir, ref.Value)
			var missing *missingLayer
			if errors.As(err, &missing) {
				return Config{}, nil, &Error{File: top.name, Line: ref.Line, Key: "layers." + kind.key, Msg: missing.Error()}
			}
			if err != nil {
				return Config{}, nil, err
			}
			if k := keyIndex(l.root, "layers"); k >= 0 {
				return Config{}, nil, &Error{File: l.name, Line: l.root.Content[k].Line, Key: "layers", Msg: "only an experiment or a --config file names layers"}
			}
			layers = append(layers, l)
		}
	}
	if named != nil {
		layers = append(layers, named)
	}
	layers = append(layers, top)
	for _, o := range overrides {
		l, err := parseSet(o)
		if err != nil {
			return Config{}, nil, err
		}
		layers = append(layers, l)
	}
	return build(layers)
}

// missingLayer is a layer a config names that the tree lacks.
type missingLayer struct {
	tree, kind, name string
	have             []string
}

func (e *missingLayer) Error() string {
	msg := fmt.Sprintf("no %s/%s.yaml in %s", e.kind, e.name, e.tree)
	if s := suggest(e.name, e.have); strings.HasPrefix(s, "did you mean") {
		msg += " (" + s + ")"
	} else if len(e.have) > 8 {
		msg += fmt.Sprintf(" (it has %d: 'spottrain config list' shows them)", len(e.have))
	} else if len(e.have) > 0 {
		msg += " (have: " + strings.Join(e.have, ", ") + ")"
	}
	return msg
}

// layer reads and parses kind/name.yaml of t.
func (t Tree) layer(kind, name string) (*layer, error) {
	rel := kind + "/" + name + ".yaml"
	doc, err := fs.ReadFile(t.fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		have, _ := t.List(kind)
		return nil, &missingLayer{tree: t.name, kind: kind, name: name, have: have}
	}
	file := filepath.Join(t.name, filepath.FromSlash(rel))
	if err != nil {
		return nil, &Error{File: file, Msg: "cannot read: " + pathErr(err)}
	}
	return parseDocument(file, doc, "")
}

// show renders a built config; with origins, each value names where d says it was set.
func show(c Config, d *decoder, origins bool) ([]byte, error) {
	if !origins {
		return c.YAML()
	}
	var root yaml.Node
	if err := root.Encode(c); err != nil {
		return nil, err
	}
	d.annotate(&root, "")
	return encodeYAML(&root)
}

// annotate adds to each value of n a comment naming where it was set.
func (d *decoder) annotate(n *yaml.Node, key string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := join(key, k.Value)
		if v.Kind == yaml.MappingNode {
			d.annotate(v, sub)
			continue
		}
		k.LineComment = d.source(sub)
	}
}

// source names the source of the value of key: "file:line", the flag, or "default".
func (d *decoder) source(key string) string {
	n := d.set[key]
	if n == nil {
		if key == "run_dir" {
			return "default: runs/<name>"
		}
		return "default"
	}
	l := d.origin[n]
	if l.flag {
		return l.name
	}
	return fmt.Sprintf("%s:%d", l.name, n.Line)
}

// mapping returns the mapping {key: value}.
func mapping(key string, value *yaml.Node) *yaml.Node {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, value}}
}

// pathErr returns the message of err without the path an *fs.PathError repeats.
func pathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
