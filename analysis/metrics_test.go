package analysis_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/analysis"
	"spottrain/configs"
)

// timedLog builds an events.jsonl from lines "SECONDS INCARNATION TYPE key=value ...": SECONDS
// of wall time after a fixed instant; values are JSON objects (no spaces), numbers, true/false,
// or strings.
func timedLog(t *testing.T, dir, log string) {
	t.Helper()
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		require.GreaterOrEqual(t, len(f), 3, "line %q", line)
		secs, err := strconv.ParseFloat(f[0], 64)
		require.NoError(t, err)
		inc, err := strconv.Atoi(f[1])
		require.NoError(t, err)
		ev := map[string]any{
			"time":        base.Add(time.Duration(secs * float64(time.Second))).Format(time.RFC3339Nano),
			"type":        f[2],
			"incarnation": inc,
		}
		for _, kv := range f[3:] {
			k, v, ok := strings.Cut(kv, "=")
			require.True(t, ok, "field %q of line %q", kv, line)
			switch {
			case strings.HasPrefix(v, "{"):
				var obj map[string]any
				require.NoError(t, json.Unmarshal([]byte(v), &obj), "field %q", kv)
				ev[k] = obj
			case v == "true" || v == "false":
				ev[k] = v == "true"
			default:
				if n, err := strconv.ParseFloat(v, 64); err == nil {
					ev[k] = n
				} else {
					ev[k] = v
				}
			}
		}
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		out.Write(b)
		out.WriteByte('\n')
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte(out.String()), 0o644))
}

// writeConfig writes the run's config.yaml: the defaults under the lstm-solar and fixed layers,
// with sets ("key=value" or "section.key=value") applied.
func writeConfig(t *testing.T, dir string, sets ...string) {
	t.Helper()
	doc := "layers: {model: lstm-solar, strategy: fixed}\n"
	sections := map[string][]string{}
	var order []string
	for _, s := range sets {
		k, v, _ := strings.Cut(s, "=")
		if sec, key, ok := strings.Cut(k, "."); ok {
			if sections[sec] == nil {
				order = append(order, sec)
			}
			sections[sec] = append(sections[sec], key+": "+v)
		} else {
			doc += k + ": " + v + "\n"
		}
	}
	for _, sec := range order {
		doc += sec + ": {" + strings.Join(sections[sec], ", ") + "}\n"
	}
	cfg, err := configs.ParseSaved("config.yaml", []byte(doc))
	require.NoError(t, err)
	y, err := cfg.YAML()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), y, 0o644))
}

// spotRun is a run with time scale 10 that is killed once (after a checkpoint at step 100 and
// progress to step 150), then preempted with notice once, and completes at step 300. Every
// number in TestMeasure follows from these times.
const spotRun = `
0    0 runner_start name=lstm-fixed-poisson index=2 pattern=poisson seed=3 time_scale=10 pid=9
0    0 child_start attempt=0 pid=100
1    1 run_start pid=100 total_steps=300 config_hash=a device=cpu libtorch=1.13.0
6    1 progress step=50 epoch=0 loss=0.9
11   1 checkpoint_begin step=100 reason=periodic
11.5 1 checkpoint_commit step=100 reason=periodic blocking_ms=200 persist_ms=500 bytes=1 dir=step-100
12   1 epoch_end epoch=0 step=100 train_loss=0.5 metrics={"rmse_kw":0.4,"skill":0.1}
16   1 progress step=150 epoch=1 loss=0.4
20   0 interrupt_sent kind=kill reason=schedule pid=100 at_spot_s=200
20   0 child_exit pid=100 code=-1 signal=killed caused=true
20   0 restart attempt=1 delay_s=30
23   0 child_start attempt=1 pid=101
24   2 run_start pid=101 total_steps=300 config_hash=a device=cpu libtorch=1.13.0
25   2 resume step=100 epoch=1 batch=0 dir=step-100
35   2 progress step=200 epoch=1 loss=0.35
40   0 interrupt_sent kind=notice reason=schedule pid=101 at_spot_s=370
40   2 signal_received signal=terminated step=250
40.1 2 checkpoint_begin step=250 reason=emergency
40.3 2 emergency_checkpoint step=250
40.3 2 checkpoint_commit step=250 reason=emergency blocking_ms=100 persist_ms=150 bytes=1 dir=step-250
40.5 2 exit code=75 reason=preempted step=250
40.6 0 child_exit pid=101 code=75 signal= caused=true
40.6 0 restart attempt=2 delay_s=30
43.6 0 child_start attempt=2 pid=102
44   3 run_start pid=102 total_steps=300 config_hash=a device=cpu libtorch=1.13.0
45   3 resume step=250 epoch=2 batch=50 dir=step-250
50   3 checkpoint_begin step=300 reason=final
50.5 3 checkpoint_commit step=300 reason=final blocking_ms=500 persist_ms=100 bytes=1 dir=step-300
51   3 exit code=0 reason=done step=300
51.2 0 child_exit pid=102 code=0 signal= caused=false
`

const spotMetrics = `{"steps":300,"epochs":[{"epoch":1,"step":100,"val":{"rmse_kw":0.4}}],"test":{"rmse_kw":0.3,"mae_kw":0.2}}`

func measureRun(t *testing.T, log, metrics string, sets ...string) *analysis.RunMetrics {
	t.Helper()
	dir := t.TempDir()
	timedLog(t, dir, log)
	writeConfig(t, dir, sets...)
	if metrics != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, analysis.MetricsFile), []byte(metrics), 0o644))
	}
	m, err := analysis.Measure(dir)
	require.NoError(t, err)
	return m
}

func TestMeasure(t *testing.T) {
	m := measureRun(t, spotRun, spotMetrics, "name=lstm-fixed-poisson", "interrupts.pattern=poisson", "interrupts.time_scale=10")

	assert.Equal(t, "lstm-fixed-poisson", m.Name)
	assert.Equal(t, 2, m.Index)
	assert.Equal(t, "lstm-solar", m.Model)
	assert.Equal(t, "fixed", m.Strategy)
	assert.Equal(t, "poisson", m.Pattern)
	assert.Equal(t, 0.25, m.NoNoticeShare)
	assert.True(t, m.Completed)
	assert.False(t, m.Baseline())

	// Spot seconds are wall seconds times 10.
	const eps = 1e-6
	assert.InDelta(t, 512, m.WallS, eps, "first child start to the last event")
	assert.InDelta(t, 60, m.DownS, eps, "two restarts of 3 s wall")
	assert.InDelta(t, 452, m.BilledS, eps)
	assert.InDelta(t, 10+20+14, m.StartupS, eps, "child start to run_start (fresh) or resume")
	assert.InDelta(t, 20+14, m.RestartS, eps)
	assert.InDelta(t, 2+5, m.CheckpointS, eps, "periodic and final blocking, not the emergency one")
	assert.InDelta(t, 6, m.EmergencyS, eps, "notice at 40 to the child's exit at 40.6")
	assert.InDelta(t, 88, m.WastedS, eps, "from the checkpoint at step 100 (t=11) to the kill (t=20), less its 0.2 s of blocking")
	assert.InDelta(t, 452-44-7-6-88, m.UsefulS, eps)
	assert.InDelta(t, m.BilledS, m.StartupS+m.CheckpointS+m.EmergencyS+m.WastedS+m.UsefulS, eps, "the parts add up")

	assert.Equal(t, 300, m.Steps)
	assert.Equal(t, 50, m.RedoSteps)
	assert.Equal(t, 2, m.Checkpoints)
	assert.Equal(t, 1, m.Notices)
	assert.Equal(t, 1, m.Kills)
	assert.Equal(t, 0, m.GraceKills)
	assert.Equal(t, 2, m.Interruptions())
	assert.InDelta(t, 2/(452.0/3600), m.RatePerHour(), eps)

	assert.Equal(t, "rmse_kw", m.Metric)
	assert.False(t, m.HigherBetter)
	assert.Equal(t, 0.3, m.MetricValue)

	assert.Equal(t, []analysis.Span{
		{Incarnation: 1, Start: 0, Ready: 10, End: 200, Lost: 110, Ending: "kill"},
		{Incarnation: 2, Start: 230, Ready: 250, End: 406, Lost: 406, Ending: "notice"},
		{Incarnation: 3, Start: 436, Ready: 450, End: 512, Lost: 512, Ending: "done"},
	}, roundSpans(m.Incarnations))
	assert.Equal(t, []analysis.Interrupt{{At: 200, Step: 150, Kind: "kill"}, {At: 400, Step: 250, Kind: "notice"}}, m.Interrupts)
	assert.Equal(t, [][2]float64{{200, 230}, {406, 436}}, roundPairs(m.Downs))
	assert.Equal(t, []analysis.StepValue{{Step: 50, Value: 0.9, Incarnation: 1}, {Step: 150, Value: 0.4, Incarnation: 1},
		{Step: 200, Value: 0.35, Incarnation: 2}}, m.Losses)
	assert.Equal(t, []analysis.StepValue{{Step: 100, Value: 0.4, Incarnation: 1}}, m.Validations)
}

func TestMeasureCases(t *testing.T) {
	cases := []struct {
		name, log, metrics string
		sets               []string // of the run's config
		check              func(t *testing.T, m *analysis.RunMetrics)
	}{
		{
			name: "trainer alone, no runner: wall time from its first to its last event",
			log: `
				2 1 run_start pid=7 total_steps=10 config_hash=a device=cpu libtorch=1.13.0
				3 1 checkpoint_begin step=10 reason=final
				3.5 1 checkpoint_commit step=10 reason=final blocking_ms=1000 persist_ms=1 bytes=1 dir=x
				4 1 exit code=0 reason=done step=10`,
			metrics: `{"steps":10,"test":{"top1":0.8,"top5":0.9}}`,
			sets:    []string{"model.kind=resnet", "data.source=synthetic-cifar"},
			check: func(t *testing.T, m *analysis.RunMetrics) {
				assert.True(t, m.Completed)
				assert.InDelta(t, 2, m.WallS, 1e-9)
				assert.InDelta(t, 2, m.BilledS, 1e-9)
				assert.InDelta(t, 0, m.StartupS, 1e-9)
				assert.InDelta(t, 1, m.CheckpointS, 1e-9)
				assert.InDelta(t, 1, m.UsefulS, 1e-9)
				assert.Equal(t, "top1", m.Metric)
				assert.True(t, m.HigherBetter)
				assert.Equal(t, 0, m.Interruptions())
			},
		},
		{
			name: "a trainer killed before it resumed: its whole life is startup, the next takes over",
			log: `
				0 0 runner_start time_scale=1 index=0
				0 0 child_start attempt=0 pid=1
				1 1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				5 1 checkpoint_begin step=10 reason=periodic
				5 1 checkpoint_commit step=10 reason=periodic blocking_ms=0 persist_ms=1 bytes=1 dir=x
				8 1 progress step=16 epoch=0 loss=1
				9 0 interrupt_sent kind=kill reason=schedule pid=1
				9 0 child_exit pid=1 code=-1 signal=killed caused=true
				9 0 restart attempt=1 delay_s=1
				10 0 child_start attempt=1 pid=2
				11 2 run_start pid=2 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				12 0 interrupt_sent kind=kill reason=schedule pid=2
				12 0 child_exit pid=2 code=-1 signal=killed caused=true
				12 0 restart attempt=2 delay_s=1
				13 0 child_start attempt=2 pid=3
				14 3 run_start pid=3 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				15 3 resume step=10 epoch=0 batch=10 dir=x
				20 3 exit code=0 reason=done step=20
				20 0 child_exit pid=3 code=0 signal= caused=false`,
			metrics: spotMetrics,
			check: func(t *testing.T, m *analysis.RunMetrics) {
				assert.InDelta(t, 2, m.DownS, 1e-9)
				assert.InDelta(t, 1+2+2, m.StartupS, 1e-9, "1 s, the idle trainer's 2 s, 2 s")
				assert.InDelta(t, 4, m.WastedS, 1e-9, "the first trainer's work from step 10 (t=5) to its kill (t=9)")
				assert.Equal(t, 6, m.RedoSteps)
				assert.Equal(t, 2, m.Kills)
				assert.Equal(t, "kill", m.Incarnations[1].Ending)
				assert.InDelta(t, 5, m.Incarnations[0].Lost, 1e-9)
				assert.InDelta(t, m.Incarnations[1].End, m.Incarnations[1].Ready, 1e-9, "never began")
			},
		},
		{
			name: "killed while a checkpoint persisted: resumed from the begun step",
			log: `
				0 1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				4 1 checkpoint_begin step=12 reason=periodic
				6 1 progress step=15 epoch=0 loss=1
				7 2 run_start pid=2 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				7 2 resume step=12 epoch=0 batch=12 dir=x
				9 2 exit code=0 reason=done step=20`,
			metrics: spotMetrics,
			check: func(t *testing.T, m *analysis.RunMetrics) {
				assert.InDelta(t, 2, m.WastedS, 1e-9, "from the begun checkpoint (t=4) to the last sign of life (t=6)")
				assert.InDelta(t, 1, m.DownS, 1e-9, "no runner: the gap between the trainers is not billed")
				assert.InDelta(t, 8, m.BilledS, 1e-9)
				assert.Equal(t, 3, m.RedoSteps)
			},
		},
		{
			name: "a Ctrl+C and a grace kill: the cancel is no interruption, the grace kill follows a notice",
			log: `
				0 0 runner_start time_scale=1
				0 0 child_start attempt=0 pid=1
				0 1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				2 0 interrupt_sent kind=notice reason=schedule pid=1
				3 0 interrupt_sent kind=kill reason=grace pid=1
				3 0 child_exit pid=1 code=-1 signal=killed caused=true
				3 0 restart attempt=1 delay_s=0
				3 0 child_start attempt=1 pid=2
				3 2 run_start pid=2 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				4 0 interrupt_sent kind=notice reason=cancel pid=2
				4 2 exit code=75 reason=stopped step=5
				4 0 child_exit pid=2 code=75 signal= caused=true`,
			check: func(t *testing.T, m *analysis.RunMetrics) {
				assert.False(t, m.Completed)
				assert.Equal(t, 1, m.Notices)
				assert.Equal(t, 1, m.GraceKills)
				assert.Equal(t, 0, m.Kills)
				assert.Len(t, m.Interrupts, 1)
				assert.Equal(t, "notice", m.Incarnations[1].Ending)
			},
		},
		{
			name: "stopped with Ctrl+C and taken up by another runner later: no VM in between",
			log: `
				0 0 runner_start time_scale=1
				0 0 child_start attempt=0 pid=1
				1 1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				5 0 interrupt_sent kind=notice reason=cancel pid=1
				5 1 signal_received signal=interrupt step=10
				5.5 1 exit code=75 reason=stopped step=10
				5.5 0 child_exit pid=1 code=75 signal= caused=true
				105 0 runner_start time_scale=1
				105 0 child_start attempt=0 pid=2
				106 2 run_start pid=2 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				106.5 2 resume step=10 epoch=0 batch=10 dir=x
				110 2 exit code=0 reason=done step=20
				110 0 child_exit pid=2 code=0 signal= caused=false`,
			metrics: spotMetrics,
			check: func(t *testing.T, m *analysis.RunMetrics) {
				assert.True(t, m.Completed)
				assert.InDelta(t, 110, m.WallS, 1e-9)
				assert.InDelta(t, 99.5, m.DownS, 1e-9)
				assert.InDelta(t, 10.5, m.BilledS, 1e-9)
				assert.InDelta(t, 1+1.5, m.StartupS, 1e-9)
				assert.InDelta(t, 0.5, m.EmergencyS, 1e-9)
				assert.Equal(t, 0, m.Interruptions(), "a Ctrl+C is not an interruption of the spot job")
			},
		},
		{
			name: "exited 0 but metrics.json is missing: not completed",
			log: `
				0 1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
				4 1 exit code=0 reason=done step=20`,
			check: func(t *testing.T, m *analysis.RunMetrics) {
				assert.False(t, m.Completed)
				assert.Empty(t, m.Metric)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, measureRun(t, tc.log, tc.metrics, tc.sets...))
		})
	}
}

func TestMeasureErrors(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir)
	timedLog(t, dir, "0 0 runner_start time_scale=1")
	_, err := analysis.Measure(dir)
	assert.ErrorIs(t, err, analysis.ErrNoRun)

	dir = t.TempDir()
	timedLog(t, dir, "0 1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0")
	_, err = analysis.Measure(dir)
	require.Error(t, err, "no config.yaml")
	assert.Contains(t, err.Error(), filepath.Join(dir, "config.yaml"))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("epochs: [\n"), 0o644))
	_, err = analysis.Measure(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config.yaml")
}

func roundSpans(spans []analysis.Span) []analysis.Span {
	out := make([]analysis.Span, len(spans))
	for i, s := range spans {
		s.Start, s.Ready, s.End, s.Lost = round(s.Start), round(s.Ready), round(s.End), round(s.Lost)
		out[i] = s
	}
	return out
}

func roundPairs(ps [][2]float64) [][2]float64 {
	out := make([][2]float64, len(ps))
	for i, p := range ps {
		out[i] = [2]float64{round(p[0]), round(p[1])}
	}
	return out
}

func round(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// groupRun is a run whose first trainer was a group of two processes (rank 0 writes the log),
// stopped by a notice at t=10, and whose second trainer, started by hand at t=12, was one process
// (a resume may change the group's size): 10 s at two processes and 8 s at one bill 28
// process-seconds.
const groupRun = `
0    1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0 world=2
5    1 progress step=5 epoch=0 loss=0.9
9    1 signal_received signal=terminated step=9
9.5  1 emergency_checkpoint step=10
9.5  1 checkpoint_commit step=10 reason=emergency blocking_ms=100 persist_ms=1 bytes=1 dir=step-10
9.8  1 group_stats world=2 backend=gloo steps=10 bytes=4096 reduce_ms=2 bare_ms=1.5
10   1 exit code=75 reason=preempted step=10
12   2 run_start pid=2 total_steps=20 config_hash=a device=cpu libtorch=1.13.0
13   2 resume step=10 epoch=0 batch=10 dir=step-10
20   2 exit code=0 reason=done step=20`

// groupBaseline is an on-demand run of one trainer, a group of two, for 20 s: 40 process-seconds.
const groupBaseline = `
0  1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0 world=2
19 1 group_stats world=2 backend=gloo steps=10 bytes=4096 reduce_ms=4 bare_ms=3
19 1 group_stats world=2 backend=gloo steps=30 bytes=4096 reduce_ms=2 bare_ms=1
20 1 exit code=0 reason=done step=20`

var groupPrices = []string{"cost.spot_per_hour=3.6", "cost.on_demand_per_hour=7.2"}

func TestMeasureGroup(t *testing.T) {
	m := measureRun(t, groupRun, spotMetrics, append(groupPrices, "interrupts.pattern=poisson")...)
	const eps = 1e-9
	assert.InDelta(t, 18, m.BilledS, eps, "the 2 s between the trainers started by hand are not billed")
	assert.Equal(t, 1, m.World, "the last trainer's")
	assert.Equal(t, []int{2, 1}, m.Worlds)
	assert.InDelta(t, 2*10+1*8, m.ProcS, eps, "each trainer's billed time times its own group size")
	assert.InDelta(t, 28.0/3600, m.GPUHours(), eps)
	assert.InDelta(t, 3.6*28/3600, m.CostUSD(), eps, "the spot price per GPU-hour times the GPU-hours")
	assert.InDelta(t, 28.0/18, m.Procs(), eps)
	assert.InDelta(t, 0.75, m.AllreduceEfficiency(), eps)
	assert.Equal(t, "notice", m.Incarnations[0].Ending)

	b := measureRun(t, groupBaseline, spotMetrics, append(groupPrices, "interrupts.pattern=none")...)
	assert.Equal(t, 2, b.World)
	assert.InDelta(t, 7.2*40/3600, b.CostUSD(), eps, "the on-demand price for two processes")
	assert.InDelta(t, (10*3+30*1)/(10*4+30*2.0), b.AllreduceEfficiency(), eps, "means weighted by steps")

	s := analysis.NewStudy([]*analysis.RunMetrics{b, m})
	require.Len(t, s.Groups, 2)
	base, spot := s.Groups[0], s.Groups[1]
	require.Same(t, base, spot.Baseline)
	assert.Equal(t, 2, base.Procs)
	assert.Equal(t, 2, spot.Procs, "the largest size the runs had")
	assert.InDelta(t, 40.0/3600, base.GPUH.Mean, eps)
	assert.InDelta(t, 20.0/3600, base.BilledH.Mean, eps, "billed hours stay wall hours")
	assert.InDelta(t, 1-(3.6*28)/(7.2*40), spot.Savings.Mean, eps, "savings on GPU-hours")
}

// TestMeasureLostPeer: a group that lost a peer exits 75 with nothing saved: its work since the
// checkpoint resumed from is lost, as a kill's.
func TestMeasureLostPeer(t *testing.T) {
	dir := t.TempDir()
	timedLog(t, dir, `
0  1 run_start pid=1 total_steps=20 config_hash=a device=cpu libtorch=1.13.0 world=2
2  1 checkpoint_begin step=4 reason=periodic
2  1 checkpoint_commit step=4 reason=periodic blocking_ms=0 persist_ms=1 bytes=1 dir=step-4
6  1 progress step=9 epoch=0 loss=1
7  1 exit code=75 reason=RANKLOST step=9
8  2 run_start pid=2 total_steps=20 config_hash=a device=cpu libtorch=1.13.0 world=2
9  2 resume step=4 epoch=0 batch=4 dir=step-4
12 2 exit code=0 reason=done step=20`)
	// The exit of train.PeerLostError: a reason with spaces, which timedLog's fields cannot hold.
	log := filepath.Join(dir, "events.jsonl")
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	data = bytes.Replace(data, []byte(`"RANKLOST"`), []byte(`"rank 1 of 2 stopped responding (killed, frozen or its machine lost) during step","peer_lost":true,"lost_ranks":[1]`), 1)
	require.NoError(t, os.WriteFile(log, data, 0o644))
	writeConfig(t, dir, groupPrices...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, analysis.MetricsFile), []byte(spotMetrics), 0o644))
	m, err := analysis.Measure(dir)
	require.NoError(t, err)

	assert.InDelta(t, 5, m.WastedS, 1e-9, "from the checkpoint at t=2 to the exit at t=7")
	assert.Equal(t, 5, m.RedoSteps)
	assert.Equal(t, "kill", m.Incarnations[0].Ending)
	assert.InDelta(t, 2*11, m.ProcS, 1e-9)
}

func TestReportGroup(t *testing.T) {
	b := measureRun(t, groupBaseline, spotMetrics, append(groupPrices, "interrupts.pattern=none")...)
	m := measureRun(t, groupRun, spotMetrics, append(groupPrices, "interrupts.pattern=poisson")...)
	dir := t.TempDir()
	require.NoError(t, analysis.WriteReport(dir, analysis.NewStudy([]*analysis.RunMetrics{b, m}), analysis.ReportOptions{}))

	rows := readCSV(t, filepath.Join(dir, analysis.RunsFile))
	require.Len(t, rows, 3)
	assert.Equal(t, "2", rows[1]["world"])
	assert.Equal(t, "1", rows[2]["world"], "the last trainer's")
	assert.Equal(t, strconv.FormatFloat(28.0/3600, 'g', -1, 64), rows[2]["gpu_h"])
	assert.Equal(t, strconv.FormatFloat(3.6*28/3600, 'g', -1, 64), rows[2]["cost_usd"])
	assert.Equal(t, "0.75", rows[2]["allreduce_efficiency"])

	sum := readCSV(t, filepath.Join(dir, analysis.SummaryFile))
	require.Len(t, sum, 3)
	assert.Equal(t, "2", sum[1]["procs"])
	assert.Equal(t, strconv.FormatFloat(40.0/3600, 'g', -1, 64), sum[1]["gpu_h_mean"])

	md, err := os.ReadFile(filepath.Join(dir, analysis.ReportFile))
	require.NoError(t, err)
	assert.Contains(t, string(md), "groups of up to 2 processes")
	assert.Contains(t, string(md), "| billed (GPU-h) |")
}

// readCSV reads a CSV file into its rows, each a map from the header's names; rows[0] is the
// header's names mapped to themselves.
func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	var rows []map[string]string
	for _, rec := range recs {
		row := map[string]string{}
		for i, v := range rec {
			row[recs[0][i]] = v
		}
		rows = append(rows, row)
	}
	return rows
}
