package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"spottrain/configs"
	"spottrain/train"
)

func runTrain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("train", "train --config FILE [--set key=value]...", stdout)
	path := fs.String("config", "", "YAML config `file` of the job (required)")
	sets := fs.StringArray("set", nil, "override a config value, e.g. --set train.epochs=3 (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"train: --config FILE is required"}
	}
	cfg, err := configs.Load(*path, *sets)
	if err != nil {
		return err
	}
	return trainAndReport(ctx, cfg, stdout)
}

// trainAndReport runs the job and prints its test scores against persistence.
func trainAndReport(ctx context.Context, cfg configs.Config, stdout io.Writer) error {
	sum, err := train.Run(ctx, cfg, stdout, isTerminal(stdout))
	if err != nil {
		if sum != nil && sum.Result != nil {
			fmt.Fprintf(stdout, "stopped after %d steps\n", sum.Result.Steps)
		}
		return err
	}
	t := sum.Test
	fmt.Fprintf(stdout, "\n%s: %d steps in %s; test split (%d windows of %d h):\n", sum.Name, sum.Result.Steps,
		sum.Wall.Round(1e7), sum.Samples[2], cfg.Data.HorizonHours)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "forecast\tMAE kW\tRMSE kW\t")
	fmt.Fprintf(tw, "LSTM\t%.4f\t%.4f\t\n", t["mae_kw"], t["rmse_kw"])
	fmt.Fprintf(tw, "persistence (24 h)\t%.4f\t%.4f\t\n", t["persistence_mae_kw"], t["persistence_rmse_kw"])
	tw.Flush()
	fmt.Fprintf(stdout, "skill vs persistence: %+.3f (1 - RMSE/RMSE_persistence; above 0 beats persistence)\nrun dir: %s\n",
		t["skill"], sum.RunDir)
	return nil
}
