package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/internal/testutil"
)

// TestVerifyAnalyzeGroup: verify and analyze show the group size of a run whose first trainer
// was a group of two that lost a peer, taken up by one process; verify notes the lost peer.
// The run is written by hand (events, config, metrics, no checkpoints: verify fails it for that).
func TestVerifyAnalyzeGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := filepath.Join(dir, "runs", "lstm-ondemand", "rep-0")
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var log bytes.Buffer
	for i, e := range []struct {
		inc int
		p   events.Payload
	}{
		{1, events.RunStart{ConfigHash: "a", Device: "cpu", PID: 1, Libtorch: "1.13.1", TotalSteps: 20, World: 2}},
		{1, events.CheckpointBegin{Step: 4, Reason: codes.Periodic}},
		{1, events.CheckpointCommit{Step: 4, Reason: codes.Periodic, Dir: filepath.Join(run, "step-00000004")}},
		{1, events.Progress{Step: 6, Loss: 1}},
		{1, events.Exit{Code: codes.ExitPreempted, Step: 6,
			Reason:   "rank 1 of 2 stopped responding (killed, frozen or its machine lost) during step",
			PeerLost: true, LostRanks: []int{1}}},
		{2, events.RunStart{ConfigHash: "a", Device: "cpu", PID: 2, Libtorch: "1.13.1", TotalSteps: 20}},
		{2, events.Resume{Step: 4, Batch: 4, Dir: filepath.Join(run, "step-00000004")}},
		{2, events.Exit{Code: codes.ExitDone, Step: 20, Reason: "done"}},
	} {
		line, err := events.Encode(t0.Add(time.Duration(i)*time.Minute), e.inc, e.p)
		require.NoError(t, err)
		log.Write(line)
	}
	testutil.WriteFile(t, filepath.Join(run, events.FileName), log.String())
	cfg, err := configs.ParseSaved("config.yaml", []byte("layers: {model: lstm-solar, strategy: fixed}\nname: lstm-ondemand\n"))
	require.NoError(t, err)
	y, err := cfg.YAML()
	require.NoError(t, err)
	testutil.WriteFile(t, filepath.Join(run, "config.yaml"), y)
	testutil.WriteFile(t, filepath.Join(run, "metrics.json"),
		`{"steps":20,"epochs":[{"epoch":1,"step":20,"val":{"rmse_kw":0.4}}],"test":{"rmse_kw":0.3}}`)

	r := spottrain(t, dir, "verify", "runs")
	assert.Equal(t, 1, r.code, "no checkpoint left: stdout: %s", r.stdout)
	assert.Regexp(t, `(?m)^RUN\s+STATUS\s+PROCS\s+STARTS\s+NOTICE\s+KILLED\s+REDO\s+STEP\s+WEIGHTS$`, r.stdout)
	assert.Regexp(t, `(?m)^lstm-ondemand/rep-0\s+FAIL\s+2→1\s+2\s+0\s+0\s+2\s+20\s+-$`, r.stdout)
	assert.Contains(t, r.stdout, "1 trainer group(s) left when a peer stopped responding")
	assert.NotContains(t, r.stdout, "without an emergency checkpoint")

	r = spottrain(t, dir, "analyze", "runs", "--out", "report")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	// 4 minutes at two processes, 2 at one (the minute between trainers started by hand is not
	// billed): 10 GPU-minutes.
	assert.Regexp(t, `(?m)^lstm-ondemand\s+-\s+1\s+2\s+0\.167\s`, r.stdout)
}
