// Command spottrain trains PyTorch models from Go on machines that can be taken away at any moment.
//
// Exit codes: 0 done, 1 failure, 2 bad input or usage, 75 stopped by a notice (SIGTERM, SIGINT,
// SIGHUP or the cloud's) with every step it did saved (start it again to resume).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"spottrain/codes"
	"spottrain/internal/notices"
	"spottrain/preemption"
	"spottrain/train"
)

const usage = `spottrain trains PyTorch models (through libtorch) on spot / preemptible machines.

Usage:
  spottrain <command> [flags]

Commands:
  train    train an experiment (or the job a config file describes), resuming where it stopped
  run      train an experiment under its simulated interruptions, restarting it until it completes
  batch    run experiments (names or globs) several times each; completed runs are skipped
  verify   check that the runs under a folder completed soundly across their interruptions
  analyze  measure the runs under a folder: wasted compute, overheads, cost, savings, break-even;
           plots, metrics_summary.csv and report.md
  config   show the merged config of an experiment, list the config tree
  ckpt     list, verify and export the checkpoints of a run dir
  forecast forecast a plant's next hours with a trained LSTM, from a PV history file
  evaluate score a trained LSTM by daylight against four baselines: table, CSV, figures
  demo     run the LSTM solar forecaster under simulated spot interruptions, then verify it
  help     show this, or a command's flags: spottrain help <command>
  version  show the version of spottrain, of its libtorch and of Go (also --version)

Run 'spottrain <command> --help' (or 'spottrain help <command>') for a command's flags.

Exit status: 0 done; 75 stopped by SIGTERM, SIGINT or SIGHUP with every step saved (run the same
command again to resume); 2 bad input (flags, config, data, device); 1 other failure (verify: a
run is not sound).
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// main first turns the notice signals into notices: those that came since the package
// initializers (internal/notices), and the one that came before the Go runtime started, if any
// (preinit.go). A SIGTERM, SIGINT or SIGHUP is then a notice, never a death by the default action.
func main() {
	sigs := notices.Signals()
	stop := make(chan train.Notice, 1)
	first := true
	if sig, at := earlyNotice(); sig != nil {
		stop <- train.Notice{Signal: sig, At: at}
		first = false
	}
	go forwardNotices(sigs, stop, first)
	err := run(context.Background(), os.Args[1:], os.Stdout, stop)
	if err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "spottrain:", err)
	}
	os.Exit(exitCode(err))
}

// forwardNotices turns the first signal (if first: none came before) into a stop notice for the
// training loop. Later signals are reported and otherwise ignored: they never abort an emergency
// checkpoint in progress.
func forwardNotices(sigs <-chan os.Signal, stop chan<- train.Notice, first bool) {
	for s := range sigs {
		if first {
			stop <- train.Notice{Signal: s, At: time.Now()}
			first = false
			continue
		}
		fmt.Fprintf(os.Stderr, "spottrain: %s received again: finishing the emergency checkpoint first\n", s)
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdout io.Writer, stop <-chan train.Notice) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "train":
		return runTrain(ctx, args[1:], stdout, stop)
	case "run", "batch", "demo":
		// A runner stops its child on the first notice: a cancelled context.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		switch args[0] {
		case "run":
			return runRun(ctx, args[1:], stdout)
		case "batch":
			return runBatch(ctx, args[1:], stdout)
		default:
			return runDemo(ctx, args[1:], stdout)
		}
	case "verify":
		return runVerify(args[1:], stdout)
	case "analyze":
		return runAnalyze(args[1:], stdout)
	case "config":
		return runConfig(args[1:], stdout)
	case "ckpt":
		return runCkpt(args[1:], stdout)
	case "forecast":
		return runForecast(args[1:], stdout)
	case "evaluate":
		return runEvaluate(args[1:], stdout)
	case "-h", "--help", "help":
		if len(args) > 1 && args[0] == "help" { // help ckpt verify: spottrain ckpt verify --help
			return run(ctx, append(slices.Clone(args[1:]), "--help"), stdout, stop)
		}
		fmt.Fprint(stdout, usage)
		return nil
	case "--version", "version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	default:
		if s := nearest(args[0], commands); s != "" {
			return usageError{fmt.Sprintf("unknown command %q: did you mean %s?", args[0], s)}
		}
		fmt.Fprint(os.Stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// exitCode maps an error to the process's exit status, in one place: usage errors here, the
// rest as train.ExitCode says.
func exitCode(err error) int {
	var ue usageError
	var ee *preemption.ExitError
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return codes.ExitDone
	case errors.As(err, &ue):
		return codes.ExitBadInput
	case errors.Is(err, errStopped):
		return codes.ExitPreempted
	case errors.As(err, &ee) && ee.Code == codes.ExitBadInput:
		return codes.ExitBadInput // the trainer refused its input
	default:
		return train.ExitCode(err)
	}
}

// newFlagSet returns a subcommand's flag set whose errors are usage errors. Its usage (only
// printed for --help, as pflag prints nothing on a parse error here) goes to stdout, like the
// top-level help.
func newFlagSet(name, synopsis string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: spottrain %s\n\nFlags:\n%s", synopsis, fs.FlagUsages())
	}
	return fs
}

// parseFlags parses args into fs, turning a bad flag into a usage error.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// isTerminal reports whether w is a terminal (a character device), where progress is drawn as a bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
