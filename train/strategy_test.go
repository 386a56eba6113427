package train_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/train"
)

// Tests of the checkpoint strategies as the job runs them (milestone, adaptive) and of the
// config check on resume.
//
// tinyConfig's data has 475 training windows: 15 batches of 32 per epoch.
const stepsPerEpoch = 15

// milestoneConfig is tinyConfig with the milestone strategy over epochs epochs at learning rate
// lr, every step logged (so that a notice can be sent after any step). With lr 0.01 the
// validation rmse_kw improves in epochs 1-3 and not in 4-6; with lr 0.007 it improves in 1-4 and
// not in 5-6 (the tests check what they need of that from the events, not these values).
func milestoneConfig(t *testing.T, epochs int, lr float64, keep int) configs.Config {
	t.Helper()
	c := tinyConfig(t)
	c.Train.Epochs, c.Train.LogEvery = epochs, 1
	c.Optimizer.LR = lr
	c.Checkpoint.Strategy, c.Checkpoint.Keep = "milestone", keep
	require.NoError(t, c.Validate())
	return c
}

// epochEnd is an epoch_end event: the 0-based epoch, the step at its end and its rmse_kw.
type epochEnd struct {
	epoch, step int
	rmse        float64
}

func epochEnds(t *testing.T, evs []events.Event) []epochEnd {
	t.Helper()
	var out []epochEnd
	for _, e := range eventstest.Of[events.EpochEnd](evs) {
		rmse, ok := e.Metrics["rmse_kw"]
		require.True(t, ok, "epoch_end without rmse_kw: %v", e.Metrics)
		out = append(out, epochEnd{epoch: e.Epoch, step: e.Step, rmse: rmse})
	}
	return out
}

// improving returns the epoch ends whose rmse_kw is strictly smaller than every earlier one.
func improving(ends []epochEnd) []epochEnd {
	var out []epochEnd
	for _, e := range ends {
		if len(out) == 0 || e.rmse < out[len(out)-1].rmse {
			out = append(out, e)
		}
	}
	return out
}

// commitSteps returns the steps of the checkpoint_commit events of reason, in log order (all
// incarnations).
func commitSteps(evs []events.Event, reason codes.CheckpointReason) []int {
	var out []int
	for _, e := range eventstest.Of[events.CheckpointCommit](evs) {
		if e.Reason == reason {
			out = append(out, e.Step)
		}
	}
	return out
}

// cancelOn returns a log writer that cancels a context once a line starting with prefix is
// logged: the loop stops after the step in progress without a checkpoint, as after a kill without
// notice.
func cancelOn(cancel context.CancelFunc, prefix string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if strings.HasPrefix(string(p), prefix) {
			cancel()
		}
		return len(p), nil
	})
}

// newest returns the newest valid checkpoint of dir.
func newest(t *testing.T, dir string) checkpoint.Checkpoint {
	t.Helper()
	cks, invalid, err := checkpoint.List(dir)
	require.NoError(t, err)
	require.Empty(t, invalid)
	require.NotEmpty(t, cks)
	return cks[len(cks)-1]
}

// preempt runs cfg until a notice sent with the log line of step n: the loop stops after step
// n+1 with an emergency checkpoint.
func preempt(t *testing.T, cfg configs.Config, n int) {
	t.Helper()
	stop := make(chan train.Notice, 1)
	_, err := train.Run(context.Background(), cfg, train.Options{Log: stopAfter(stop, n), Stop: stop})
	var pe *train.PreemptedError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, n+1, pe.Step)
	ck := newest(t, cfg.RunDir)
	require.Equal(t, codes.Emergency, ck.Manifest.Reason)
	require.EqualValues(t, n+1, ck.Manifest.Step)
}

// TestMilestoneCheckpointsOnImprovement: the milestone strategy checkpoints exactly after the
// evaluations that improved rmse_kw (and no periodic ones, whatever every_steps says), each at the
// start of the next epoch, with that evaluation's metrics; the run ends with a final checkpoint
// when its last epoch did not improve.
func TestMilestoneCheckpointsOnImprovement(t *testing.T) {
	cfg := milestoneConfig(t, 6, 0.01, 100)
	require.Equal(t, 2, cfg.Checkpoint.EverySteps, "ignored by the milestone strategy")
	sum, err := train.Run(context.Background(), cfg, train.Options{Log: io.Discard})
	require.NoError(t, err)
	require.Equal(t, 6*stepsPerEpoch, sum.Result.Steps)

	evs := eventstest.Read(t, cfg.RunDir)
	ends := epochEnds(t, evs)
	require.Len(t, ends, 6)
	better := improving(ends)
	require.NotEmpty(t, better)
	require.Less(t, len(better), len(ends), "the test needs an epoch that does not improve: %+v", ends)
	var want []int
	for _, e := range better {
		want = append(want, e.step)
	}
	assert.Equal(t, want, commitSteps(evs, codes.Milestone), "a milestone after each improvement, none else")
	assert.Empty(t, commitSteps(evs, codes.Periodic))
	for _, e := range eventstest.Of[events.CheckpointBegin](evs) {
		assert.Contains(t, []codes.CheckpointReason{codes.Milestone, codes.Final}, e.Reason)
	}

	cks, invalid, err := checkpoint.List(cfg.RunDir)
	require.NoError(t, err)
	require.Empty(t, invalid)
	byStep := map[int]checkpoint.Manifest{}
	for _, c := range cks {
		byStep[int(c.Manifest.Step)] = c.Manifest
	}
	for _, e := range better {
		m, ok := byStep[e.step]
		require.True(t, ok, "milestone checkpoint of step %d", e.step)
		assert.Equal(t, codes.Milestone, m.Reason, "step %d", e.step)
		assert.Equal(t, e.epoch+1, m.Epoch, "step %d: a resume starts the next epoch", e.step)
		assert.Equal(t, 0, m.Batch, "step %d", e.step)
		assert.Equal(t, e.rmse, m.Metrics["rmse_kw"], "step %d: the metrics of the evaluation", e.step)
	}
	last := ends[len(ends)-1]
	require.NotEqual(t, better[len(better)-1], last, "the last epoch does not improve with lr 0.01")
	final := byStep[sum.Result.Steps]
	assert.Equal(t, codes.Final, final.Reason)
	assert.Equal(t, last.rmse, final.Metrics["rmse_kw"])
	assert.Len(t, cks, len(better)+1, "the milestones and the final checkpoint")
}

// TestMilestoneRetentionKeepsBest: with keep 1, the best checkpoint by rmse_kw survives besides
// the newest, and nothing else does.
func TestMilestoneRetentionKeepsBest(t *testing.T) {
	cfg := milestoneConfig(t, 6, 0.01, 1)
	sum, err := train.Run(context.Background(), cfg, train.Options{Log: io.Discard})
	require.NoError(t, err)
	better := improving(epochEnds(t, eventstest.Read(t, cfg.RunDir)))
	best := better[len(better)-1]
	require.Less(t, best.step, sum.Result.Steps, "the best is not the newest")

	cks, invalid, err := checkpoint.List(cfg.RunDir)
	require.NoError(t, err)
	require.Empty(t, invalid)
	require.Len(t, cks, 2, "the best and the newest")
	assert.EqualValues(t, best.step, cks[0].Manifest.Step)
	assert.Equal(t, codes.Milestone, cks[0].Manifest.Reason)
	assert.Equal(t, best.rmse, cks[0].Manifest.Metrics["rmse_kw"])
	assert.EqualValues(t, sum.Result.Steps, cks[1].Manifest.Step)
	assert.Equal(t, codes.Final, cks[1].Manifest.Reason)
	for _, c := range cks {
		_, err := train.WeightsDigest(&c)
		assert.NoError(t, err, "%s loads", c.Dir)
	}
}

// TestMilestoneResumeExact: a milestone run interrupted anywhere (a notice mid-epoch, a notice on
// an epoch's last batch before its evaluation, a kill right after a milestone checkpoint) and
// resumed ends with the uninterrupted run's weights, bit for bit (CPU, 1 thread), and takes the
// same milestone checkpoints: on resume the strategy knows the best value so far, so an epoch
// that does not improve on it is no milestone.
func TestMilestoneResumeExact(t *testing.T) {
	const epochs, lr = 6, 0.007
	base := milestoneConfig(t, epochs, lr, 1)
	_, err := train.Run(context.Background(), base, train.Options{Log: io.Discard})
	require.NoError(t, err)
	want := finalWeights(t, base.RunDir)
	baseEvs := eventstest.Read(t, base.RunDir)
	wantMilestones := commitSteps(baseEvs, codes.Milestone)
	ends := epochEnds(t, baseEvs)
	require.Less(t, len(improving(ends)), len(ends), "the test needs an epoch that does not improve: %+v", ends)
	require.Equal(t, improving(ends[:4]), ends[:4], "epochs 1-4 improve with lr 0.007: %+v", ends)
	require.Greater(t, ends[4].rmse, ends[3].rmse, "epoch 5 does not improve with lr 0.007: %+v", ends)

	resume := func(t *testing.T, cfg configs.Config) string {
		t.Helper()
		var log strings.Builder
		sum, err := train.Run(context.Background(), cfg, train.Options{Log: &log})
		require.NoError(t, err)
		assert.Equal(t, epochs*stepsPerEpoch, sum.Result.Steps)
		assert.NotContains(t, log.String(), "config changed")
		assert.Equal(t, want, finalWeights(t, cfg.RunDir), "the final weights are the uninterrupted run's")
		assert.Equal(t, wantMilestones, commitSteps(eventstest.Read(t, cfg.RunDir), codes.Milestone),
			"the same milestones, over both incarnations")
		return log.String()
	}

	t.Run("notice mid-epoch", func(t *testing.T) {
		cfg := milestoneConfig(t, epochs, lr, 1)
		preempt(t, cfg, 4*stepsPerEpoch+5) // in epoch 5, which does not improve
		m := newest(t, cfg.RunDir).Manifest
		assert.Equal(t, 4, m.Epoch)
		assert.Equal(t, 6, m.Batch)
		log := resume(t, cfg)
		assert.Contains(t, log, "resumed from step 66, epoch 5, batch 6")
	})
	t.Run("notice on the last batch of a non-improving epoch", func(t *testing.T) {
		cfg := milestoneConfig(t, epochs, lr, 1)
		preempt(t, cfg, 5*stepsPerEpoch-1) // the emergency checkpoint is taken before epoch 5's evaluation
		m := newest(t, cfg.RunDir).Manifest
		assert.Equal(t, 4, m.Epoch)
		assert.Equal(t, stepsPerEpoch, m.Batch)
		resume(t, cfg)
	})
	t.Run("notice on the last batch of an improving epoch", func(t *testing.T) {
		// The emergency checkpoint of step 60 precedes epoch 4's evaluation; after the resume that
		// evaluation improves, and its milestone checkpoint of the same step replaces it. (Keep
		// 100 so that it stays to be looked at; keep does not change what is trained.)
		cfg := milestoneConfig(t, epochs, lr, 100)
		preempt(t, cfg, 4*stepsPerEpoch-1)
		m := newest(t, cfg.RunDir).Manifest
		assert.Equal(t, 3, m.Epoch)
		assert.Equal(t, stepsPerEpoch, m.Batch)
		resume(t, cfg)
		cks, invalid, err := checkpoint.List(cfg.RunDir)
		require.NoError(t, err)
		require.Empty(t, invalid)
		var found bool
		for _, c := range cks {
			if c.Manifest.Step == 4*stepsPerEpoch {
				found = true
				assert.Equal(t, codes.Milestone, c.Manifest.Reason)
				assert.Equal(t, 4, c.Manifest.Epoch)
				assert.Equal(t, 0, c.Manifest.Batch)
				assert.Equal(t, ends[3].rmse, c.Manifest.Metrics["rmse_kw"])
			}
		}
		assert.True(t, found, "the checkpoint of step 60")
	})
	t.Run("kill after a milestone checkpoint", func(t *testing.T) {
		cfg := milestoneConfig(t, epochs, lr, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := train.Run(ctx, cfg, train.Options{Log: cancelOn(cancel, "epoch 2 done")})
		require.ErrorIs(t, err, context.Canceled)
		ck := newest(t, cfg.RunDir)
		assert.Equal(t, codes.Milestone, ck.Manifest.Reason)
		assert.EqualValues(t, 2*stepsPerEpoch, ck.Manifest.Step)
		assert.Equal(t, 2, ck.Manifest.Epoch)
		assert.Equal(t, 0, ck.Manifest.Batch)
		log := resume(t, cfg)
		assert.Contains(t, log, "resumed from step 30, epoch 3, batch 0")
	})
}

// TestAdaptiveCheckpointSpacing: the adaptive strategy's interval is at least min_seconds spot
// time, min_seconds / time_scale of wall time. Only lower bounds are checked (a slow machine
// takes fewer checkpoints, not closer ones); the number of checkpoints only when the run lasted
// long enough that max_seconds must have forced one.
func TestAdaptiveCheckpointSpacing(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Train.Epochs = 8
	cfg.Checkpoint.Strategy, cfg.Checkpoint.Keep = "adaptive", 2
	cfg.Interrupts.TimeScale = 1000
	cfg.Checkpoint.MinSeconds, cfg.Checkpoint.MaxSeconds = 40, 80 // 40 ms and 80 ms of wall time
	require.NoError(t, cfg.Validate())
	minWall, maxWall := 40*time.Millisecond, 80*time.Millisecond
	// A checkpoint's begin event is written just after the strategy notes the checkpoint's time;
	// this is the most that may take (generous, for a loaded machine).
	const slack = 10 * time.Millisecond

	sum, err := train.Run(context.Background(), cfg, train.Options{Log: io.Discard})
	require.NoError(t, err)
	require.Equal(t, 8*stepsPerEpoch, sum.Result.Steps)

	evs := eventstest.Read(t, cfg.RunDir)
	require.Len(t, eventstest.Of[events.RunStart](evs), 1)
	started := evs[eventstest.Index[events.RunStart](evs, 0)].Time
	var begins []events.Event // of periodic checkpoints
	var finalAt time.Time
	for _, e := range evs {
		b, ok := e.Payload.(events.CheckpointBegin)
		switch {
		case !ok:
		case b.Reason == codes.Periodic:
			begins = append(begins, e)
		case b.Reason == codes.Final:
			finalAt = e.Time
		default:
			t.Errorf("unexpected checkpoint %+v", b)
		}
	}
	commits := commitSteps(evs, codes.Periodic)
	require.Len(t, commits, len(begins), "every periodic checkpoint is committed")
	for i, b := range begins {
		assert.Equal(t, commits[i], b.Payload.(events.CheckpointBegin).Step)
	}

	if len(begins) > 0 {
		assert.GreaterOrEqual(t, begins[0].Time.Sub(started), minWall, "the first one comes min_seconds after the start")
	}
	for i := 1; i < len(begins); i++ {
		gap := begins[i].Time.Sub(begins[i-1].Time)
		assert.GreaterOrEqual(t, gap, minWall-slack, "periodic checkpoints %d and %d (steps %v, %v)",
			i-1, i, commits[i-1], commits[i])
	}
	if !finalAt.IsZero() && finalAt.Sub(started) >= 2*maxWall {
		assert.NotEmpty(t, begins, "a run of %v has periodic checkpoints: time_scale divides min/max_seconds", finalAt.Sub(started))
	}
	t.Logf("%d periodic checkpoints in %v", len(begins), sum.Wall)
}

// TestAdaptiveLearnsFromKills: an incarnation killed without notice (no exit event in the log) is
// an interruption for the adaptive strategy of the next one: with the prior MTBI of an hour, the
// Daly interval is far beyond the run, but after a kill of a ~0.1 s incarnation it is a few
// milliseconds, so the resumed incarnation checkpoints much more often. An incarnation that
// stopped with an error (exit 1 here) is no interruption.
func TestAdaptiveLearnsFromKills(t *testing.T) {
	config := func() configs.Config {
		c := tinyConfig(t)
		c.Train.Epochs = 4
		c.Checkpoint.Strategy, c.Checkpoint.Keep = "adaptive", 2
		c.Checkpoint.MinSeconds, c.Checkpoint.MaxSeconds, c.Checkpoint.PriorMTBISeconds = 0.001, 100, 3600
		require.NoError(t, c.Validate())
		return c
	}
	// periodic counts the periodic checkpoints of the second incarnation, after a first one
	// stopped by a cancelled context after 21 steps, its exit event removed if killed.
	periodic := func(killed bool) int {
		cfg := config()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := train.Run(ctx, cfg, train.Options{Log: cancelOn(cancel, "step 20/")})
		require.ErrorIs(t, err, context.Canceled)
		if killed {
			path := filepath.Join(cfg.RunDir, events.FileName)
			doc, err := os.ReadFile(path)
			require.NoError(t, err)
			var kept []string
			for _, line := range strings.SplitAfter(string(doc), "\n") {
				if !strings.Contains(line, `"type":"exit"`) {
					kept = append(kept, line)
				}
			}
			require.Len(t, kept, len(strings.SplitAfter(string(doc), "\n"))-1, "one exit event removed")
			require.NoError(t, os.WriteFile(path, []byte(strings.Join(kept, "")), 0o644))
		}
		_, err = train.Run(context.Background(), cfg, train.Options{Log: io.Discard})
		require.NoError(t, err)
		n := 0
		for _, e := range eventstest.Read(t, cfg.RunDir) {
			if b, ok := e.Payload.(events.CheckpointBegin); ok && e.Incarnation == 2 && b.Reason == codes.Periodic {
				n++
			}
		}
		return n
	}
	errored, killed := periodic(false), periodic(true)
	t.Logf("periodic checkpoints after an error: %d, after a kill: %d", errored, killed)
	assert.LessOrEqual(t, errored, 2, "the prior MTBI of an hour: the first one (at min_seconds) and hardly another")
	assert.Greater(t, killed, errored+2, "a kill shortens the interval")
}

// changeConfig is a tinyConfig of 2 epochs (30 steps) whose run was preempted at step 11.
func changeConfig(t *testing.T) configs.Config {
	t.Helper()
	c := tinyConfig(t)
	c.Train.Epochs = 2
	require.NoError(t, c.Validate())
	preempt(t, c, 10)
	return c
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// TestResumeNonBreakingConfigChange: keys that do not change what is trained may change between
// incarnations: the run resumes, logs each change, and ends with the weights of an uninterrupted
// run of the original config.
func TestResumeNonBreakingConfigChange(t *testing.T) {
	base := tinyConfig(t)
	base.Train.Epochs = 2
	_, err := train.Run(context.Background(), base, train.Options{Log: io.Discard})
	require.NoError(t, err)
	want := finalWeights(t, base.RunDir)

	old := changeConfig(t)
	cfg := old
	cfg.Device = "cpu" // unchanged
	cfg.Checkpoint.EverySeconds = 30
	cfg.Train.LogEvery = 3
	cfg.Interrupts.Pattern = "poisson"
	require.NoError(t, cfg.Validate())
	var log strings.Builder
	sum, err := train.Run(context.Background(), cfg, train.Options{Log: &log})
	require.NoError(t, err, log.String())
	assert.Equal(t, 2*stepsPerEpoch, sum.Result.Steps)
	out := log.String()
	assert.Contains(t, out, "resumed from step 11")
	assert.Contains(t, out, "config changed since the checkpoint: checkpoint.every_seconds: 0 -> 30\n")
	assert.Contains(t, out, "config changed since the checkpoint: train.log_every: 5 -> 3\n")
	assert.Contains(t, out, "config changed since the checkpoint: interrupts.pattern: none -> poisson\n")
	assert.Equal(t, 3, strings.Count(out, "config changed since the checkpoint"), out)
	assert.NotContains(t, out, "device")
	assert.Equal(t, want, finalWeights(t, cfg.RunDir), "the same training")

	saved, err := configs.ReadSaved(filepath.Join(cfg.RunDir, "config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, cfg.Hash(), saved.Hash(), "config.yaml is the new config")
	assert.Equal(t, cfg.Hash(), newest(t, cfg.RunDir).Manifest.ConfigHash)
}

// TestResumeBreakingConfigChange: a change of a key that changes what is trained is refused, the
// error naming the key with its old and new values and --force; nothing is trained or written.
// With Force the run resumes and logs the change.
func TestResumeBreakingConfigChange(t *testing.T) {
	old := changeConfig(t)
	cfg := old
	cfg.Optimizer.LR = 2 * old.Optimizer.LR
	cfg.Train.LogEvery = 3 // not breaking: not in the error
	require.NoError(t, cfg.Validate())
	change := "optimizer.lr: " + formatFloat(old.Optimizer.LR) + " -> " + formatFloat(cfg.Optimizer.LR)

	var log strings.Builder
	_, err := train.Run(context.Background(), cfg, train.Options{Log: &log})
	require.Error(t, err)
	assert.Equal(t, codes.ExitBadInput, train.ExitCode(err), "%v", err)
	assert.Contains(t, err.Error(), change)
	assert.Contains(t, err.Error(), "--force")
	assert.Contains(t, err.Error(), old.RunDir)
	assert.NotContains(t, err.Error(), "log_every", "only the breaking changes")
	assert.NotContains(t, log.String(), "resumed")
	ck := newest(t, old.RunDir)
	assert.EqualValues(t, 11, ck.Manifest.Step, "nothing trained")
	assert.Equal(t, old.Hash(), ck.Manifest.ConfigHash)
	saved, err := configs.ReadSaved(filepath.Join(old.RunDir, "config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, old.Hash(), saved.Hash(), "config.yaml is not overwritten")
	exits := eventstest.Of[events.Exit](eventstest.Read(t, old.RunDir))
	require.NotEmpty(t, exits)
	assert.Equal(t, codes.ExitBadInput, exits[len(exits)-1].Code)

	// Again: the refusal left the run dir as it was.
	_, err = train.Run(context.Background(), cfg, train.Options{Log: io.Discard})
	require.Error(t, err)
	assert.Contains(t, err.Error(), change)

	log.Reset()
	sum, err := train.Run(context.Background(), cfg, train.Options{Log: &log, Force: true})
	require.NoError(t, err)
	assert.Equal(t, 2*stepsPerEpoch, sum.Result.Steps)
	assert.Contains(t, log.String(), "resumed from step 11")
	assert.Contains(t, log.String(), "config changed since the checkpoint: "+change+"\n")
	assert.Contains(t, log.String(), "config changed since the checkpoint: train.log_every: 5 -> 3\n")
}

// TestResumeIgnoresRunDirConfig: the change check reads the config saved in the checkpoint, not
// the run dir's config.yaml: with that file gone, unreadable or another config, a non-breaking
// change still resumes (and says so), a breaking one is still refused, and config.yaml is
// written again.
func TestResumeIgnoresRunDirConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(path string) error
	}{
		{"deleted", os.Remove},
		{"corrupted", func(path string) error { return os.WriteFile(path, []byte("train: [\x00 not yaml\n"), 0o644) }},
		{"another config", func(path string) error {
			c := configs.Default()
			doc, err := c.YAML()
			if err == nil {
				err = os.WriteFile(path, doc, 0o644)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := changeConfig(t)
			path := filepath.Join(old.RunDir, "config.yaml")
			require.NoError(t, tc.spoil(path))

			breaking := old
			breaking.Optimizer.LR *= 2
			_, err := train.Run(context.Background(), breaking, train.Options{Log: io.Discard})
			require.Error(t, err)
			assert.Equal(t, codes.ExitBadInput, train.ExitCode(err), "%v", err)
			assert.Contains(t, err.Error(), "optimizer.lr: "+formatFloat(old.Optimizer.LR)+" -> "+formatFloat(breaking.Optimizer.LR))
			assert.EqualValues(t, 11, newest(t, old.RunDir).Manifest.Step, "nothing trained")

			cfg := old
			cfg.Train.LogEvery = 3
			var log strings.Builder
			sum, err := train.Run(context.Background(), cfg, train.Options{Log: &log})
			require.NoError(t, err)
			assert.Equal(t, 2*stepsPerEpoch, sum.Result.Steps)
			assert.Contains(t, log.String(), "resumed from step 11")
			assert.Contains(t, log.String(), "config changed since the checkpoint: train.log_every: ")
			saved, err := configs.ReadSaved(path)
			require.NoError(t, err)
			assert.Equal(t, cfg.Hash(), saved.Hash(), "config.yaml is written again")
		})
	}
}

// TestResumeAfterChangedIncarnationDiedEarly: a run resumed under a non-breaking config change
// whose process then dies before its first checkpoint (killed without notice, or any error) has
// written config.yaml of the new config while the newest checkpoint is still of the old one.
// Starting it again with the same new config resumes as the first resume did: the change is
// found against the config saved in the checkpoint itself, not the run dir's config.yaml.
func TestResumeAfterChangedIncarnationDiedEarly(t *testing.T) {
	old := changeConfig(t)
	cfg := old
	cfg.Train.LogEvery = 1
	cfg.Checkpoint.EverySteps = 0 // only emergency and final checkpoints
	require.NoError(t, cfg.Validate())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log strings.Builder
	_, err := train.Run(ctx, cfg, train.Options{Log: io.MultiWriter(&log, cancelOn(cancel, "step 13/"))})
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, log.String(), "config changed since the checkpoint: train.log_every: 5 -> 1")
	require.EqualValues(t, 11, newest(t, cfg.RunDir).Manifest.Step, "no checkpoint since the resume")

	log.Reset()
	sum, err := train.Run(context.Background(), cfg, train.Options{Log: &log})
	require.NoError(t, err, "the same config as the last start")
	assert.Equal(t, 2*stepsPerEpoch, sum.Result.Steps)
	assert.Contains(t, log.String(), "resumed from step 11")
}
