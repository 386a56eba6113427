package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Change is a key whose value differs between two configs.
type Change struct {
	Key      string // dotted, e.g. "optimizer.lr"
	Old, New string // the values as YAML
	// Breaks is true when resuming a run's checkpoints under the new value would not continue
	// the training the old one began: another model, data, seed, batching, optimizer or
	// schedule. Where the run trains (device, threads, precision, data.path, the number of
	// processes), how it logs, checkpoints and is interrupted, and its name do not break resume.
	Breaks bool
}

// String formats c as "key: old -> new".
func (c Change) String() string { return c.Key + ": " + c.Old + " -> " + c.New }

// resumable lists the keys (a key or a section followed by a dot) whose change keeps resume
// exact in what it computes.
var resumable = []string{
	"name", "layers.", "device", "threads", "deterministic", "run_dir", "data.path", "data.resnet.workers",
	"train.log_every", "train.eval_batch_size", "train.precision", "train.resnet.channels_last", "train.cudnn_benchmark",
	"checkpoint.", "interrupts.", "preemption.", "distributed.", "cost.",
}

// TrainingHash returns the hex SHA-256 of the keys of c whose change breaks resume (see
// Change.Breaks): two configs with the same TrainingHash train the same weights, however and
// wherever they run, are checkpointed and are interrupted.
func (c Config) TrainingHash() string {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		panic("configs: encode config: " + err.Error())
	}
	h := sha256.New()
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				walk(n.Content[i+1], join(key, n.Content[i].Value))
			}
			return
		}
		if breaks(key) {
			fmt.Fprintf(h, "%s=%s\n", key, flow(n))
		}
	}
	walk(&n, "")
	return hex.EncodeToString(h.Sum(nil))
}

// Diff lists the keys whose values differ between old and new, in the order of Config's fields.
func Diff(old, new Config) []Change {
	var a, b yaml.Node
	if err := a.Encode(old); err != nil {
		panic("configs: encode config: " + err.Error()) // a Config of plain fields always encodes
	}
	if err := b.Encode(new); err != nil {
		panic("configs: encode config: " + err.Error())
	}
	var out []Change
	diffNodes(&a, &b, "", &out)
	return out
}

func diffNodes(a, b *yaml.Node, key string, out *[]Change) {
	if a.Kind == yaml.MappingNode && b.Kind == yaml.MappingNode {
		for i := 0; i < len(a.Content); i += 2 {
			if j := keyIndex(b, a.Content[i].Value); j >= 0 {
				diffNodes(a.Content[i+1], b.Content[j+1], join(key, a.Content[i].Value), out)
			}
		}
		return
	}
	av, bv := flow(a), flow(b)
	if av == bv {
		return
	}
	*out = append(*out, Change{Key: key, Old: av, New: bv, Breaks: breaks(key)})
}

// breaks reports whether a change of key breaks resume.
func breaks(key string) bool {
	for _, r := range resumable {
		if key == r || strings.HasSuffix(r, ".") && strings.HasPrefix(key, r) {
			return false
		}
	}
	return true
}

// flow renders a value node on one line.
func flow(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "" {
			return `""`
		}
		return n.Value
	}
	c := *n
	c.Style = yaml.FlowStyle
	out, err := yaml.Marshal(&c)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
