// Command spottrain trains PyTorch models from Go on machines that can be taken away at any moment.
//
// Exit codes: 0 done, 1 failure, 2 bad input or usage, 130 stopped by a signal.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"spottrain/configs"
	"spottrain/data/solar"
	"spottrain/train"
)

const usage = `spottrain trains PyTorch models (through libtorch) on spot / preemptible machines.

Usage:
  spottrain <command> [flags]

Commands:
  train   train the job a config file describes
  demo    train the LSTM solar forecaster on synthetic data (a few minutes on 2 cores)

Run 'spottrain <command> --help' for a command's flags.
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "spottrain:", err)
	}
	os.Exit(exitCode(err))
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "train":
		return runTrain(ctx, args[1:], stdout)
	case "demo":
		return runDemo(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// exitCode maps an error to the process's exit status, in one place.
func exitCode(err error) int {
	var ue usageError
	var ce *configs.Error
	var pe *solar.ParseError
	var ie *train.InputError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, &ue), errors.As(err, &ce), errors.As(err, &pe), errors.As(err, &ie):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
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
