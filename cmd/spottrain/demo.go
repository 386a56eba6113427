package main

import (
	"context"
	"io"

	"spottrain/configs"
	"spottrain/train"
)

func runDemo(ctx context.Context, args []string, stdout io.Writer, stop <-chan train.Notice) error {
	fs := newFlagSet("demo", "demo [--set key=value]...", stdout)
	sets := fs.StringArray("set", nil, "override a value of the demo config, e.g. --set train.epochs=1 (repeatable)")
	force := fs.Bool("force", false, "resume the run dir's checkpoints even though the config changed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := configs.LoadBytes("demo:lstm-solar.yaml", configs.DemoLSTM, ".", *sets)
	if err != nil {
		return err
	}
	return trainAndReport(ctx, cfg, stdout, train.Options{Stop: stop, Force: *force})
}
