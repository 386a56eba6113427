package train_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/data/cifar"
	"spottrain/train"
)

// tinyResNet is a width-reduced ResNet-18 on synthetic CIFAR-shaped images.
func tinyResNet(t *testing.T) configs.Config {
	t.Helper()
	c := configs.DefaultFor(configs.KindResNet)
	c.Name, c.Device, c.Threads, c.RunDir = "tiny-resnet", "cpu", 2, filepath.Join(t.TempDir(), "run")
	*c.Model.ResNet = configs.ResNetModel{Depth: 18, Width: 0.125, Stem: "cifar", ZeroInitResidual: true}
	c.Data.Source = "synthetic-cifar"
	*c.Data.ResNet = configs.ResNetData{Augment: true, SyntheticSamples: 320, Classes: 10, Workers: 2}
	c.Train = configs.TrainConfig{Epochs: 2, BatchSize: 32, LogEvery: 5, EvalBatchSize: 64, Precision: "fp32",
		ResNet: &configs.ResNetTrain{LabelSmoothing: 0.1, ChannelsLast: true}}
	c.Optimizer = configs.OptimizerConfig{Name: "sgd", LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
		Betas: [2]float64{0.9, 0.999}, Eps: 1e-8}
	c.Schedule = configs.ScheduleConfig{Name: "onecycle", WarmupSteps: 4, StepSize: 1, Gamma: 1}
	c.Checkpoint.EverySteps, c.Checkpoint.EverySeconds, c.Checkpoint.Keep = 3, 0, 2
	require.NoError(t, c.Validate())
	return c
}

// finalWeights hashes the weights of the newest checkpoint in dir.
func finalWeights(t *testing.T, dir string) string {
	t.Helper()
	cks, invalid, err := checkpoint.List(dir)
	require.NoError(t, err)
	require.Empty(t, invalid)
	require.NotEmpty(t, cks)
	digest, err := train.WeightsDigest(&cks[len(cks)-1])
	require.NoError(t, err)
	return digest
}

// A ResNet run preempted mid-epoch resumes at the exact batch (the loader starts there, with the
// same augmentation) with BatchNorm buffers restored: the final weights are the uninterrupted
// run's, bit for bit.
func TestImageRunResumesExactly(t *testing.T) {
	base := tinyResNet(t)
	sum, err := train.Run(context.Background(), base, train.Options{Log: io.Discard})
	require.NoError(t, err)
	assert.Equal(t, 20, sum.Result.Steps)
	assert.Greater(t, sum.Test["top1"], 0.3, "well above chance (0.1) after 20 steps")
	want := finalWeights(t, base.RunDir)

	cfg := tinyResNet(t)
	stop := make(chan train.Notice, 1)
	_, err = train.Run(context.Background(), cfg, train.Options{Log: stopAfter(stop, 5), Stop: stop})
	var pe *train.PreemptedError
	require.True(t, errors.As(err, &pe), "%v", err)
	assert.Equal(t, 6, pe.Step, "mid-epoch: batch 6 of 10")
	sum, err = train.Run(context.Background(), cfg, train.Options{Log: io.Discard})
	require.NoError(t, err)
	assert.Equal(t, want, finalWeights(t, cfg.RunDir))
	assert.Equal(t, 20, sum.Result.Steps)
}

func TestImageRunMissingDataset(t *testing.T) {
	cfg := tinyResNet(t)
	cfg.Data.Source, cfg.Data.Path = "cifar100", filepath.Join(t.TempDir(), "nowhere")
	_, err := train.Run(context.Background(), cfg, train.Options{Log: io.Discard, Stop: make(chan train.Notice)})
	require.Error(t, err)
	assert.Equal(t, codes.ExitBadInput, train.ExitCode(err))
	var de *cifar.DataError
	assert.True(t, errors.As(err, &de), "%v", err)
	assert.Contains(t, err.Error(), "cifar-100-binary.tar.gz")
	assert.NoDirExists(t, cfg.RunDir, "nothing is created for bad input")
}
