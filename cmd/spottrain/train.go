package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"spottrain/configs"
	"spottrain/preemption"
	"spottrain/train"
)

func runTrain(ctx context.Context, args []string, stdout io.Writer, stop <-chan train.Notice) error {
	fs := newFlagSet("train", "train (--experiment NAME | --config FILE) [--set key=value]...", stdout)
	cf := addConfigFlags(fs, "train")
	force := fs.Bool("force", false, "resume the run dir's checkpoints even though the config changed in a way that breaks resume")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop = withCloudNotices(ctx, cfg.Preemption.Notice, stop, stdout)
	return trainAndReport(ctx, cfg, stdout, train.Options{Stop: stop, Force: *force})
}

// withCloudNotices starts watching for the cloud's preemption notice as source (the config's
// preemption.notice) says, and returns a channel that carries the first notice, the cloud's or
// one of stop's (a signal); the watch ends with ctx. A cloud named in the config whose metadata
// server cannot be reached is one warning on stderr.
func withCloudNotices(ctx context.Context, source string, stop <-chan train.Notice, log io.Writer) <-chan train.Notice {
	if source == preemption.NoticeNone {
		return stop
	}
	cloud := make(chan train.Notice, 1)
	go preemption.WatchNotices(ctx, source,
		func(n preemption.CloudNotice) { cloud <- train.Notice{Signal: n, At: time.Now()} },
		func(msg string) { fmt.Fprintln(log, msg) },
		func(msg string) { fmt.Fprintln(os.Stderr, "spottrain: warning: "+msg) })
	first := make(chan train.Notice, 1)
	go func() {
		select {
		case n := <-stop:
			first <- n
		case n := <-cloud:
			first <- n
		case <-ctx.Done():
		}
	}()
	return first
}

// testHook, when set, changes the options of every training job before it starts. Only a build
// with -tags testhooks sets it (testhooks.go); a normal build leaves it nil.
var testHook func(*train.Options) error

// trainAndReport runs the job and prints its test scores against persistence.
func trainAndReport(ctx context.Context, cfg configs.Config, stdout io.Writer, opt train.Options) error {
	opt.Log, opt.Terminal = stdout, isTerminal(stdout)
	if testHook != nil {
		if err := testHook(&opt); err != nil {
			return err
		}
	}
	sum, err := train.Run(ctx, cfg, opt)
	var pe *train.PreemptedError
	if err != nil && !errors.As(err, &pe) && sum != nil && sum.Result != nil {
		fmt.Fprintf(stdout, "stopped after %d steps\n", sum.Result.Steps)
	}
	if err != nil {
		return err
	}
	t := sum.Test
	if cfg.Model.Kind == configs.KindResNet {
		fmt.Fprintf(stdout, "\n%s: %d steps in %s; test set (%d images): top-1 %s%%, top-5 %s%%\nrun dir: %s\n",
			sum.Name, sum.Result.Steps, sum.Wall.Round(1e7), sum.Samples[2], score(t, "top1", 100, "%.2f"), score(t, "top5", 100, "%.2f"), sum.RunDir)
		return nil
	}
	fmt.Fprintf(stdout, "\n%s: %d steps in %s; test split (%d windows of %d h):\n", sum.Name, sum.Result.Steps,
		sum.Wall.Round(1e7), sum.Samples[2], cfg.Data.LSTM.HorizonHours)
	printForecastScores(stdout, t)
	fmt.Fprintf(stdout, "run dir: %s\n", sum.RunDir)
	return nil
}

// printForecastScores prints the LSTM's test scores t: its errors beside the persistence
// forecast's, and its skill.
func printForecastScores(stdout io.Writer, t map[string]float64) {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "forecast\tMAE kW\tRMSE kW\t")
	fmt.Fprintf(tw, "LSTM\t%s\t%s\t\n", score(t, "mae_kw", 1, "%.4f"), score(t, "rmse_kw", 1, "%.4f"))
	fmt.Fprintf(tw, "persistence (24 h)\t%s\t%s\t\n", score(t, "persistence_mae_kw", 1, "%.4f"), score(t, "persistence_rmse_kw", 1, "%.4f"))
	tw.Flush()
	fmt.Fprintf(stdout, "skill vs persistence: %s (1 - RMSE/RMSE_persistence; above 0 beats persistence)\n", score(t, "skill", 1, "%+.3f"))
}

// score formats the metric name of t, times scale, with format; "-" when t lacks it (a score
// undefined on the data, left out with a warning).
func score(t train.Metrics, name string, scale float64, format string) string {
	v, ok := t[name]
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, scale*v)
}
