package train_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/configs"
	"spottrain/torch"
	"spottrain/train"
)

// A short run on synthetic data: the validation MAE falls far below the untrained model's, and the
// forecaster beats the day-ahead persistence, smart persistence and climatology forecasts.
func TestSolarTrainingBeatsTheBaselines(t *testing.T) {
	cfg := configs.Default()
	cfg.Data.LSTM.Days = 730
	data, err := train.LoadSolar(cfg.Data, cfg.Model, 3)
	require.NoError(t, err)
	task := &train.SolarTask{Data: data.Dataset, EvalBatch: 1024}

	torch.SetNumThreads(2)
	torch.ManualSeed(3)
	net, err := torch.NewLSTM(torch.LSTMConfig{Inputs: data.Train.Features, Hidden: 32, Layers: 1, Horizon: data.Train.Horizon,
		StepHead: cfg.Model.LSTM.FutureInputs, Loss: "mse"}, torch.CPU)
	require.NoError(t, err)
	defer net.Close()
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "adam", LR: 5e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	require.NoError(t, err)
	defer opt.Close()

	untrained, err := task.Evaluate(net, train.Shard{}, nil)
	require.NoError(t, err)
	c := train.Config{Epochs: 4, BatchSize: 32, LogEvery: 100, GradClip: 1, Seed: 3}
	c.Schedule = train.Schedule{Name: "cosine", BaseLR: 5e-3, Warmup: 20, Total: train.TotalSteps(task.TrainSize(), c)}
	res, err := (&train.Loop{Net: net, Opt: opt, Task: task, Config: c, Log: io.Discard}).Run(context.Background())
	require.NoError(t, err)
	require.Len(t, res.Epochs, 4)

	final := res.Epochs[3].Val
	t.Logf("val MAE: untrained %.4f, epochs %.4f %.4f %.4f, smart persistence %.4f kW; skill vs persistence %.3f, smart persistence %.3f, climatology %.3f, CLIPER %.3f",
		untrained["mae_kw"], res.Epochs[0].Val["mae_kw"], res.Epochs[2].Val["mae_kw"], final["mae_kw"], final["smart_persistence_mae_kw"],
		final["skill_persistence"], final["skill_smart_persistence"], final["skill_climatology"], final["skill_cliper"])
	assert.Less(t, final["mae_kw"], 0.5*untrained["mae_kw"], "validation MAE falls")
	assert.Less(t, final["mae_kw"], final["smart_persistence_mae_kw"], "beats smart persistence in MAE")
	assert.Greater(t, final["skill_persistence"], 0.1, "beats persistence in RMSE")
	assert.Greater(t, final["skill_smart_persistence"], 0.05, "beats smart persistence in RMSE")
	assert.Greater(t, final["skill_climatology"], 0.1, "beats climatology in RMSE")
	assert.Greater(t, res.Epochs[0].TrainLoss, res.Epochs[3].TrainLoss, "training loss falls")
}
