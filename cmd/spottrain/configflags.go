package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"spottrain/configs"
)

// configFlags pick a job's config: an experiment of a config tree (--experiment, from
// --config-dir or the tree built into the binary) or a file (--config), with --set overrides
// and, where the command has it (addNProcFlag), --nproc-per-node.
type configFlags struct {
	file, experiment, dir string
	sets                  []string
	nproc                 string // --nproc-per-node, an integer; "": not given
	cmd                   string // for messages
}

func addConfigFlags(fs *pflag.FlagSet, cmd string) *configFlags {
	c := &configFlags{cmd: cmd}
	fs.StringVar(&c.experiment, "experiment", "", "the experiment `NAME` to run: configs/experiments/NAME.yaml ('spottrain config list')")
	fs.StringVar(&c.file, "config", "", "a config `FILE` instead of an experiment; it may name layers of the tree too")
	fs.StringVar(&c.dir, "config-dir", "", "the config tree `DIR` (models/, strategies/, experiments/); default: the one built into the binary")
	fs.StringArrayVar(&c.sets, "set", nil, "override a config value, e.g. --set train.epochs=3 (repeatable)")
	return c
}

// addNProcFlag adds --nproc-per-node to fs: --set distributed.nproc_per_node=N after the --set
// flags, for the commands that train (train, run).
func (c *configFlags) addNProcFlag(fs *pflag.FlagSet) {
	fs.Func("nproc-per-node", "start `N` worker processes on this machine (as torchrun --nproc-per-node; one per GPU on a "+
		"GPU machine): --set distributed.nproc_per_node=N after the --set flags", func(v string) error {
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		c.nproc = v
		return nil
	})
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
	if c.nproc != "" {
		sets = append(sets, "distributed.nproc_per_node="+c.nproc)
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
