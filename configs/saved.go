package configs

import (
	"os"
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"
)

// ReadSaved reads a config that Config.YAML wrote (a run dir's config.yaml): every key is set, so
// it does not load the layers it names. A config.yaml saved before model, data and train had a
// subsection per model kind is read too (see upgradeSaved).
func ReadSaved(file string) (Config, error) {
	doc, err := os.ReadFile(file)
	if err != nil {
		return Config{}, &Error{File: file, Msg: "cannot read: " + pathErr(err)}
	}
	return ParseSaved(file, doc)
}

// ParseSaved is ReadSaved for a document in memory; name stands for its file in errors.
func ParseSaved(name string, doc []byte) (Config, error) {
	top, err := parseDocument(name, doc, "")
	if err != nil {
		return Config{}, err
	}
	upgradeSaved(top.root)
	c, _, err := build([]*layer{top})
	return c, err
}

// upgradeSaved rewrites, in place, a saved config whose model, data and train sections hold the
// keys of every model kind flat (as spottrain saved them before the kind subsections) into the
// layout of today: the keys of its own model.kind move into that kind's subsection, and those of
// the other kinds, which it never used, are dropped. A saved config of today's layout has no
// such key and is left as it is. Only saved configs are upgraded: a config a person writes with
// a key in its old place gets an error that names the new place.
func upgradeSaved(root *yaml.Node) {
	kind := Default().Model.Kind
	if model := child(root, "model"); model != nil && model.Kind == yaml.MappingNode {
		if n := child(model, "kind"); n != nil {
			kind = n.Value
		}
	}
	t := reflect.TypeFor[Config]()
	names := yamlNames(t)
	for i := 0; i < len(root.Content); i += 2 {
		f := slices.Index(names, root.Content[i].Value)
		if section := root.Content[i+1]; f >= 0 && section.Kind == yaml.MappingNode && t.Field(f).Type.Kind() == reflect.Struct {
			upgradeSection(section, t.Field(f).Type, kind)
		}
	}
}

// upgradeSection moves the flat keys of kind in section (of struct type t) into its subsection,
// and drops those of other kinds.
func upgradeSection(section *yaml.Node, t reflect.Type, kind string) {
	for i, name := range yamlNames(t) {
		if t.Field(i).Type.Kind() != reflect.Pointer {
			continue
		}
		subKeys := yamlNames(t.Field(i).Type.Elem())
		var moved []*yaml.Node
		kept := section.Content[:0]
		for j := 0; j < len(section.Content); j += 2 {
			k, v := section.Content[j], section.Content[j+1]
			switch {
			case !slices.Contains(subKeys, k.Value):
				kept = append(kept, k, v)
			case name == kind:
				moved = append(moved, k, v)
			}
		}
		section.Content = kept
		if len(moved) > 0 {
			section.Content = append(section.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name},
				&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: moved})
		}
	}
}
