package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"spottrain/configs"
)

// configFlags pick a job's config: an experiment of a config tree (--experiment, from
// --config-dir or the tree built into the binary) or a file (--config), with --set overrides
// and, where the command has them (addGroupFlags), torchrun's --nproc-per-node, --nnodes,
// --node-rank, --master-addr and --master-port.
type configFlags struct {
	file, experiment, dir string
	sets                  []string
	group                 []groupFlag // in the order of their keys in the config
	cmd                   string      // for messages
}

// A groupFlag is one of torchrun's flags, a spelling of a key of the distributed section.
type groupFlag struct {
	name, key, arg, usage string // arg: the value's name in usage
	integer               bool
	value                 string // "": not given
}

func addConfigFlags(fs *pflag.FlagSet, cmd string) *configFlags {
	c := &configFlags{cmd: cmd}
	fs.StringVar(&c.experiment, "experiment", "", "the experiment `NAME` to run: configs/experiments/NAME.yaml ('spottrain config list')")
	fs.StringVar(&c.file, "config", "", "a config `FILE` instead of an experiment; it may name layers of the tree too")
	fs.StringVar(&c.dir, "config-dir", "", "the config tree `DIR` (models/, strategies/, experiments/); default: the one built into the binary")
	fs.StringArrayVar(&c.sets, "set", nil, "override a config value, e.g. --set train.epochs=3 (repeatable)")
	return c
}

// addGroupFlags adds torchrun's flags to fs, for the commands that train (train, run): each is
// --set of its key of the distributed section, after the --set flags.
func (c *configFlags) addGroupFlags(fs *pflag.FlagSet) {
	c.group = []groupFlag{
		{name: "nproc-per-node", arg: "N", key: "nproc_per_node", integer: true,
			usage: "start `N` worker processes on this machine (as torchrun --nproc-per-node; one per GPU on a GPU machine)"},
		{name: "nnodes", arg: "N", key: "nnodes", integer: true, usage: "the job runs on `N` machines, each started with its own --node-rank"},
		{name: "node-rank", arg: "R", key: "node_rank", integer: true, usage: "this machine's place `R` among the --nnodes, 0 to N-1; node 0 hosts the rendezvous store"},
		{name: "master-addr", arg: "HOST", key: "master_addr", usage: "the address `HOST` of node 0 (required with --nnodes above 1)"},
		{name: "master-port", arg: "PORT", key: "master_port", integer: true, usage: "the `PORT` on which node 0 hosts the rendezvous store (with --nnodes above 1)"},
	}
	for i := range c.group {
		f := &c.group[i]
		fs.Func(f.name, f.usage+": --set distributed."+f.key+"="+f.arg+" after the --set flags", func(v string) error {
			if _, err := strconv.Atoi(v); f.integer && err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			f.value = v
			return nil
		})
	}
}

// tree returns the config tree the flags name.
func (c *configFlags) tree() configs.Tree {
	if c.dir != "" {
		return configs.DirTree(c.dir)
	}
	return configs.Builtin()
}

// check wants exactly one of --experiment and --config.
func (c *configFlags) check() error {
	switch {
	case c.file == "" && c.experiment == "":
		return usageError{c.cmd + ": --experiment NAME or --config FILE is required"}
	case c.file != "" && c.experiment != "":
		return usageError{c.cmd + ": give --experiment or --config, not both"}
	}
	return nil
}

// overrides returns the flags' overrides, then extra.
func (c *configFlags) overrides(extra ...string) []string {
	sets := append([]string{}, c.sets...)
	for _, f := range c.group {
		if f.value != "" {
			sets = append(sets, "distributed."+f.key+"="+f.value)
		}
	}
	return append(sets, extra...)
}

// load returns the merged config, with extra overrides after the flags' own.
func (c *configFlags) load(extra ...string) (configs.Config, error) {
	sets := c.overrides(extra...)
	if c.experiment != "" {
		return c.tree().Experiment(c.experiment, sets)
	}
	return c.tree().File(c.file, sets)
}

// args returns the flags again, for a child process, with extra overrides.
func (c *configFlags) args(extra ...string) []string {
	var args []string
	if c.experiment != "" {
		args = append(args, "--experiment", c.experiment)
	} else {
		args = append(args, "--config", c.file)
	}
	if c.dir != "" {
		args = append(args, "--config-dir", c.dir)
	}
	for _, s := range c.overrides(extra...) {
		args = append(args, "--set", s)
	}
	return args
}
