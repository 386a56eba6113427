package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"spottrain/configs"
)

const configUsage = `Usage:
  spottrain config <command> [flags]

Commands:
  show   print the merged config of an experiment (or a file), as the trainer would run it
  list   list the models, strategies and experiments of the config tree

Run 'spottrain config <command> --help' for a command's flags.
`

func runConfig(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, configUsage)
		return usageError{"config: no command given"}
	}
	switch args[0] {
	case "show":
		return runConfigShow(args[1:], stdout)
	case "list":
		return runConfigList(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, configUsage)
		return nil
	default:
		fmt.Fprint(os.Stderr, configUsage)
		return usageError{fmt.Sprintf("config: unknown command %q", args[0])}
	}
}

func runConfigShow(args []string, stdout io.Writer) error {
	fs := newFlagSet("config show", "config show (EXPERIMENT | --config FILE) [--set key=value]... [--origins]", stdout)
	cf := addConfigFlags(fs, "config show")
	origins := fs.Bool("origins", false, "say after each value which file and line (or flag) set it")
	if err := fs.Parse(args); err != nil {
		return parseError(fs.Name(), err)
	}
	switch {
	case fs.NArg() == 1 && cf.experiment == "":
		cf.experiment = fs.Arg(0)
	case fs.NArg() > 1 || fs.NArg() == 1 && cf.experiment != "":
		return usageError{fmt.Sprintf("config show: unexpected argument %q", fs.Arg(fs.NArg()-1))}
	}
	if err := cf.check(); err != nil {
		return err
	}
	var doc []byte
	var err error
	if cf.experiment != "" {
		doc, err = cf.tree().ShowExperiment(cf.experiment, cf.sets, *origins)
	} else {
		doc, err = cf.tree().ShowFile(cf.file, cf.sets, *origins)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(doc)
	return err
}

func runConfigList(args []string, stdout io.Writer) error {
	fs := newFlagSet("config list", "config list [--config-dir DIR]", stdout)
	dir := fs.String("config-dir", "", "the config tree `DIR`; default: the one built into the binary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tree := configs.Builtin()
	if *dir != "" {
		tree = configs.DirTree(*dir)
	}
	for _, kind := range []string{configs.Models, configs.Strategies, configs.Experiments} {
		names, err := tree.List(kind)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (%s/%s):\n", kind, tree, kind)
		for _, n := range names {
			fmt.Fprintf(stdout, "  %s\n", n)
		}
	}
	return nil
}

// parseError turns a flag parse error into a usage error (--help stays as it is).
func parseError(cmd string, err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return usageError{fmt.Sprintf("%s: %v", cmd, err)}
}
