package main

import (
	"github.com/spf13/pflag"

	"spottrain/configs"
)

// configFlags pick a job's config: an experiment of a config tree (--experiment, from
// --config-dir or the tree built into the binary) or a file (--config), with --set overrides.
type configFlags struct {
	file, experiment, dir string
	sets                  []string
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

// load returns the merged config, with extra overrides after the flags' own.
func (c *configFlags) load(extra ...string) (configs.Config, error) {
	sets := append(append([]string{}, c.sets...), extra...)
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
	for _, s := range append(append([]string{}, c.sets...), extra...) {
		args = append(args, "--set", s)
	}
	return args
}
