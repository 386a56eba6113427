package analysis_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/analysis"
	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/events"
	"spottrain/internal/testutil"
)

// The run directories below are built by hand: an event log in the compact form of writeEvents,
// real checkpoints committed with the checkpoint package, and a metrics.json. Every run has 30
// steps in two epochs of 15.

// runSpec is a run directory to build.
type runSpec struct {
	log     string  // the event log, as writeEvents reads it
	ckpts   []int64 // steps of the checkpoints on disk; nil: every step the log commits
	metrics string  // metrics.json; "": goodMetrics; noMetrics: none
	world   int     // the checkpoints' group size (manifest.world); 0: one process
	after   func(t *testing.T, dir string)
}

// counts are the fields of a Verdict that a test expects, compared as a whole.
type counts struct {
	Completed                           bool
	Starts, Notice, Killed, Redo, Final int
}

const (
	goodMetrics = `{"steps":30,"epochs":[{"epoch":1,"step":15,"val":{"rmse_kw":0.4}},{"epoch":2,"step":30,"val":{"rmse_kw":0.35}}],"test":{"rmse_kw":0.3}}`
	noMetrics   = "none"
)

// verifyCase is a run and what Verify must find of it.
type verifyCase struct {
	name string
	run  runSpec
	want counts
	// problems are substrings, one per problem (in any order); {dir} stands for the run
	// directory. None: the run is sound.
	problems []string
}

// verifyCases are the runs of TestVerify.
var verifyCases = []verifyCase{
	// Sound runs.
	{
		name: "single incarnation",
		run: runSpec{log: `
				1 start
				1 step 5
				1 ckpt 10
				1 step 15
				1 ckpt 20
			` + done(1)},
		want: counts{Completed: true, Starts: 1, Final: 30},
	},
	{
		name: "SIGTERM: emergency checkpoint, exit 75, resumed at its step",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 15
				0 notice
				1 emergency 17
				1 exit 75 17 stopped by terminated
				0 child 75
				0 restart
				2 start
				2 resume 17
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Notice: 1, Final: 30},
	},
	{
		name: "SIGKILL: resumed from the last commit, the steps since are redone",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 14
				0 kill
				0 child -1
				0 restart
				2 start
				2 resume 10
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Killed: 1, Redo: 4, Final: 30},
	},
	{
		name: "SIGKILL before any checkpoint: started afresh",
		run: runSpec{log: `
				1 start
				1 step 5
				1 step 8
				2 start
				2 ckpt 10
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Killed: 1, Redo: 8, Final: 30},
	},
	{
		name: "SIGKILL took the commit event: resumed from the checkpoint only begun",
		run: runSpec{
			log: `
					1 start
					1 ckpt 10
					1 begin 12
					2 start
					2 resume 12
				` + done(2),
			ckpts: []int64{10, 12, 30},
		},
		want: counts{Completed: true, Starts: 2, Killed: 1, Redo: 0, Final: 30},
	},
	{
		name: "SIGKILL after the final checkpoint: the next one only evaluates",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 final 30
				2 start
				2 resume 30
				2 epoch 2 30
				2 exit 0 30
			`},
		want: counts{Completed: true, Starts: 2, Killed: 1, Final: 30},
	},
	{
		name: "a notice and two kills, one inside a checkpoint write",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 emergency 13
				1 exit 75 13 stopped by terminated
				2 start
				2 resume 13
				2 ckpt 20
				2 step 24
				3 start
				3 resume 20
				3 begin 25
				4 start
				4 resume 20
			` + done(4)},
		want: counts{Completed: true, Starts: 4, Notice: 1, Killed: 2, Redo: 4 + 5, Final: 30},
	},

	// Takeovers.
	{
		name: "resumed from an older checkpoint than the newest committed",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 ckpt 20
				1 step 22
				2 start
				2 resume 10
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Killed: 1, Redo: 12, Final: 30},
		problems: []string{"incarnation 2 resumed at step 10, not from the newest checkpoint (step 20)"},
	},
	{
		name: "started afresh although a checkpoint was committed",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 12
				2 start
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Killed: 1, Redo: 12, Final: 30},
		problems: []string{"incarnation 2 started afresh although the checkpoint of step 10 had been committed"},
	},
	{
		name: "resumed although nothing was committed",
		run: runSpec{log: `
				1 start
				1 step 5
				2 start
				2 resume 5
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Killed: 1, Redo: 0, Final: 30},
		problems: []string{"incarnation 2 resumed at step 5, but no checkpoint had been committed"},
	},
	{
		name: "resumed at a step no earlier trainer checkpointed",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 14
				2 start
				2 resume 13
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Killed: 1, Redo: 1, Final: 30},
		problems: []string{"incarnation 2 resumed at step 13, from no checkpoint an earlier trainer wrote"},
	},
	{
		name: "resumed beyond the last step of the previous trainer",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 14
				2 start
				2 resume 20
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Killed: 1, Redo: 0, Final: 30},
		problems: []string{
			"incarnation 2 resumed at step 20, from no checkpoint an earlier trainer wrote",
			"steps 15 to 20 were skipped: incarnation 1 stopped at step 14 and incarnation 2 resumed at 20",
		},
	},
	{
		name: "skipped steps, the resume itself from the newest checkpoint",
		run: runSpec{log: `
				1 start
				1 ckpt 20
				1 step 22
				2 start
				2 resume 10
				2 step 14
				3 start
				3 resume 20
			` + done(3)},
		want: counts{Completed: true, Starts: 3, Killed: 2, Redo: 12, Final: 30},
		problems: []string{
			"incarnation 2 resumed at step 10, not from the newest checkpoint (step 20)",
			"steps 15 to 20 were skipped: incarnation 2 stopped at step 14 and incarnation 3 resumed at 20",
		},
	},
	{
		name: "after exit 75, resumed at another step than its emergency checkpoint",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 emergency 17
				1 exit 75 17 stopped by terminated
				2 start
				2 resume 10
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Notice: 1, Final: 30},
		problems: []string{
			"incarnation 2 resumed at step 10, not from the newest checkpoint (step 17)",
			"incarnation 1 exited after an emergency checkpoint at step 17, but incarnation 2 resumed at 10 (steps repeated without a kill)",
		},
	},

	// How trainers ended.
	{
		name: "exit 75 without an emergency checkpoint",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 12
				1 exit 75 12 stopped by terminated
				2 start
				2 resume 10
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Notice: 1, Final: 30},
		problems: []string{"incarnation 1 exited 75 at step 12 without an emergency checkpoint", "incarnation 2 resumed at 10 (steps repeated without a kill)"},
	},
	{
		// A notice during an evaluation (or the final one) after a step that a periodic
		// checkpoint saved, or before the first step after a resume: nothing new to save.
		name: "exit 75 with its last step saved already",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 exit 75 10 stopped by terminated during the evaluation
				2 start
				2 resume 10
				2 exit 75 10 stopped by hangup during restore
				3 start
				3 resume 10
			` + done(3)},
		want: counts{Completed: true, Starts: 3, Notice: 2, Final: 30},
	},
	{
		name: "a trainer failed",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 12
				1 exit 1 12 out of memory
				2 start
				2 resume 10
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Final: 30},
		problems: []string{"incarnation 1 failed with exit code 1: out of memory"},
	},
	{
		name: "not completed: the last trainer was killed",
		run: runSpec{
			log: `
					1 start
					1 ckpt 10
					1 step 14
				`,
			metrics: noMetrics,
		},
		want:     counts{Starts: 1, Killed: 1, Final: 14},
		problems: []string{"not completed: the last trainer (incarnation 1) was killed at step 14"},
	},
	{
		name: "not completed: the last trainer exited 75",
		run: runSpec{
			log: `
					1 start
					1 ckpt 10
					1 emergency 17
					1 exit 75 17 stopped by terminated
				`,
			metrics: noMetrics,
		},
		want:     counts{Starts: 1, Notice: 1, Final: 17},
		problems: []string{"not completed: the last trainer (incarnation 1) was preempted at step 17 (exit 75)"},
	},
	{
		name: "not completed: the last trainer failed",
		run: runSpec{
			log: `
					1 start
					1 ckpt 10
					1 exit 2 10 run dir made with another config
				`,
			metrics: noMetrics,
		},
		want: counts{Starts: 1, Final: 10},
		problems: []string{
			"incarnation 1 failed with exit code 2: run dir made with another config",
			"not completed: the last trainer (incarnation 1) exited 2 at step 10: run dir made with another config",
		},
	},
	{
		name: "exit 0 before the run's last step",
		run: runSpec{
			log: `
					1 start
					1 ckpt 10
					1 final 25
					1 exit 0 25
				`,
			metrics: `{"steps":25,"epochs":[{"epoch":1,"step":15,"val":{}},{"epoch":2,"step":25,"val":{}}],"test":{"rmse_kw":0.3}}`,
		},
		want:     counts{Completed: true, Starts: 1, Final: 25},
		problems: []string{"the last trainer exited 0 at step 25, not at the run's last step 30"},
	},
	{
		name:     "no trainer ever started",
		run:      runSpec{log: "0 child -1", metrics: noMetrics},
		want:     counts{},
		problems: []string{"no trainer ever started"},
	},

	// metrics.json.
	{
		name:     "metrics.json missing",
		run:      runSpec{log: "1 start\n" + done(1), metrics: noMetrics},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: open {dir}/metrics.json: no such file"},
	},
	{
		name:     "metrics.json unreadable",
		run:      runSpec{log: "1 start\n" + done(1), metrics: `{"steps":`},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: {dir}/metrics.json: unexpected end of JSON input"},
	},
	{
		name: "metrics.json steps mismatch",
		run: runSpec{log: "1 start\n" + done(1),
			metrics: `{"steps":29,"epochs":[{"epoch":1,"step":15,"val":{}},{"epoch":2,"step":30,"val":{}}],"test":{"rmse_kw":0.3}}`},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: metrics.json says 29 steps, the trainer 30"},
	},
	{
		name: "metrics.json epoch numbering gap",
		run: runSpec{log: "1 start\n" + done(1),
			metrics: `{"steps":30,"epochs":[{"epoch":1,"step":15,"val":{}},{"epoch":3,"step":30,"val":{}}],"test":{"rmse_kw":0.3}}`},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: epoch 3 listed as number 2"},
	},
	{
		name: "metrics.json last validation not at the last step",
		run: runSpec{log: "1 start\n" + done(1),
			metrics: `{"steps":30,"epochs":[{"epoch":1,"step":15,"val":{}},{"epoch":2,"step":28,"val":{}}],"test":{"rmse_kw":0.3}}`},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: the last validation is not at the last step 30"},
	},
	{
		name:     "metrics.json without validations",
		run:      runSpec{log: "1 start\n" + done(1), metrics: `{"steps":30,"epochs":[],"test":{"rmse_kw":0.3}}`},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: the last validation is not at the last step 30"},
	},
	{
		name: "metrics.json without test scores",
		run: runSpec{log: "1 start\n" + done(1),
			metrics: `{"steps":30,"epochs":[{"epoch":1,"step":15,"val":{}},{"epoch":2,"step":30,"val":{}}],"test":{}}`},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"final metrics: no test scores in metrics.json"},
	},

	// Checkpoints on disk.
	{
		name: "a checkpoint corrupted after its commit",
		run: runSpec{
			log: "1 start\n1 ckpt 10\n1 ckpt 20\n" + done(1),
			after: func(t *testing.T, dir string) {
				testutil.Corrupt(t, filepath.Join(dir, checkpoint.DirName(10), "model.pt"))
			},
		},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"checkpoint {dir}/step-00000010 does not verify: model.pt: sha256 mismatch"},
	},
	{
		name: "the final checkpoint corrupted",
		run: runSpec{
			log: "1 start\n1 ckpt 10\n1 ckpt 20\n" + done(1),
			after: func(t *testing.T, dir string) {
				testutil.Corrupt(t, filepath.Join(dir, checkpoint.DirName(30), "optim.pt"))
			},
		},
		want: counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{
			"checkpoint {dir}/step-00000030 does not verify: optim.pt: sha256 mismatch",
			"the newest checkpoint is of step 20, not of the last step 30",
		},
	},
	{
		name: "a corrupted checkpoint in a run not completed",
		run: runSpec{
			log:     "1 start\n1 ckpt 10\n1 step 12",
			metrics: noMetrics,
			after: func(t *testing.T, dir string) {
				testutil.Corrupt(t, filepath.Join(dir, checkpoint.DirName(10), "model.pt"))
			},
		},
		want: counts{Starts: 1, Killed: 1, Final: 12},
		problems: []string{
			"not completed: the last trainer (incarnation 1) was killed at step 12",
			"checkpoint {dir}/step-00000010 does not verify: model.pt: sha256 mismatch",
		},
	},
	{
		name:     "the newest checkpoint is not of the final step",
		run:      runSpec{log: "1 start\n1 ckpt 10\n1 ckpt 20\n" + done(1), ckpts: []int64{10, 20}},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"the newest checkpoint is of step 20, not of the last step 30"},
	},
	{
		name:     "no checkpoint left in a completed run",
		run:      runSpec{log: "1 start\n" + done(1), ckpts: []int64{}},
		want:     counts{Completed: true, Starts: 1, Final: 30},
		problems: []string{"no checkpoint left in a completed run"},
	},

	// What the trainers and the runner reported.
	{
		name: "the runner saw a child killed that it had not killed",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 14
				0 child -1 uncaused
				0 restart
				2 start
				2 resume 10
			` + done(2)},
		want:     counts{Completed: true, Starts: 2, Killed: 1, Redo: 4, Final: 30},
		problems: []string{"the runner saw a child fail that it had not interrupted: code -1, signal killed"},
	},
	{
		name: "the runner saw a child fail on its own",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 12
				1 exit 1 12 out of memory
				0 child 1 uncaused
				0 restart
				2 start
				2 resume 10
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Final: 30},
		problems: []string{
			"incarnation 1 failed with exit code 1: out of memory",
			"the runner saw a child fail that it had not interrupted: code 1, signal ",
		},
	},
	{
		name: "a trainer found an invalid checkpoint",
		run: runSpec{log: `
				1 start
				1 ckpt 10
				1 step 14
				2 start
				2 invalid step-00000012 manifest.json is missing
				2 resume 10
			` + done(2)},
		want: counts{Completed: true, Starts: 2, Killed: 1, Redo: 4, Final: 30},
		problems: []string{
			"incarnation 2 found an invalid checkpoint: {dir}/step-00000012: manifest.json is missing",
		},
	},
	{
		name: "a trainer found the newest checkpoint invalid and resumed from the one before",
		run: runSpec{
			log: `
					1 start
					1 ckpt 10
					1 ckpt 20
					1 step 22
					2 start
					2 invalid step-00000020 model.pt: sha256 mismatch
					2 resume 10
				` + done(2),
			ckpts: []int64{10, 30},
		},
		want: counts{Completed: true, Starts: 2, Killed: 1, Redo: 12, Final: 30},
		problems: []string{
			"incarnation 2 found an invalid checkpoint: {dir}/step-00000020: model.pt: sha256 mismatch",
			"incarnation 2 resumed at step 10, not from the newest checkpoint (step 20)",
		},
	},
}

func TestVerify(t *testing.T) {
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			dir := buildRun(t, c.run)
			v, err := analysis.Verify(dir)
			require.NoError(t, err)
			assert.Equal(t, dir, v.Dir)
			assert.Equal(t, c.want, countsOf(v))
			assertProblems(t, dir, c.problems, v.Problems)
			assert.Equal(t, c.want.Completed && len(c.problems) == 0, v.OK())
		})
	}
}

// TestVerifyGroup: runs whose trainers were data-parallel groups (rank 0 writes the events). A
// group that lost a peer exits 75 without an emergency checkpoint: it counts as a kill (its
// unsaved steps are redone), not as an unsound notice; the final checkpoint must be of the last
// group's size.
func TestVerifyGroup(t *testing.T) {
	lostPeer := `
		1 start 11 30 2
		1 ckpt 10
		1 step 14
		0 kill
		1 exit 75 14 rank 1 of 2 stopped responding (killed, frozen or its machine lost) during step: leaving the group
		0 child 75
		0 restart
		2 start 12 30 2
		2 resume 10
		2 step 15
		0 notice
		2 emergency 17
		2 exit 75 17 stopped by terminated
		0 child 75
		0 restart
		3 start 13 30 1
		3 resume 17
	` + done(3)
	t.Run("a lost peer, a notice, resumed by one process", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: lostPeer})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assert.Empty(t, v.Problems)
		assert.Equal(t, counts{Completed: true, Starts: 3, Notice: 1, Redo: 4, Final: 30}, countsOf(v))
		assert.Equal(t, 1, v.PeerLost)
		assert.Equal(t, []int{2, 1}, v.Worlds)
	})
	t.Run("the final checkpoint is of another group size", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: lostPeer, world: 2})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assertProblems(t, dir, []string{"is of a group of 2 processes, the last trainer had 1"}, v.Problems)
	})
	elastic := `
		1 start 11 30 2
		1 ckpt 10
		1 step 14
		1 regroup 2 1 14 10
		1 step 20
		1 ckpt 20
		1 regroup 1 2 20 20
	` + done(1)
	t.Run("an elastic group shrinks and grows back without a restart", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: elastic, world: 2})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assert.Empty(t, v.Problems)
		assert.Equal(t, counts{Completed: true, Starts: 1, Redo: 4, Final: 30}, countsOf(v))
		assert.Equal(t, []int{2, 1, 2}, v.Worlds)
	})
	t.Run("a regroup from a checkpoint never committed", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: strings.Replace(elastic, "regroup 2 1 14 10", "regroup 2 1 14 12", 1), world: 2})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assertProblems(t, dir, []string{"incarnation 1 regrouped (generation 1) from step 12, whose checkpoint was never committed"}, v.Problems)
	})
	t.Run("a notice before the restore, after a kill that left a checkpoint without its commit event", func(t *testing.T) {
		// Incarnation 2 was killed between the rename of step 14 and its commit event; incarnation
		// 3 found step 14 and stopped on a notice before restoring it (its exit names step 14);
		// incarnation 4 resumed there.
		dir := buildRun(t, runSpec{log: `
			1 start 11 30 2
			1 ckpt 10
			1 step 12
			1 emergency 12
			1 exit 75 12 stopped by terminated
			2 start 12 30 2
			2 resume 12
			2 begin 14
			3 start 13 30 2
			3 exit 75 14 stopped by terminated during open
			4 start 14 30 2
			4 resume 14
		` + done(4), world: 2})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assert.Empty(t, v.Problems)
		assert.Equal(t, counts{Completed: true, Starts: 4, Notice: 2, Killed: 1, Final: 30}, countsOf(v))
	})
	t.Run("a group's notice without an emergency checkpoint is still a problem", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: `
			1 start 11 30 2
			1 ckpt 10
			1 step 14
			1 exit 75 14 stopped by terminated
		`})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assertProblems(t, dir, []string{"exited 75 at step 14 without an emergency checkpoint", "not completed"}, v.Problems)
		assert.Equal(t, 0, v.PeerLost)
	})
}

// TestVerifyKillLeftovers: a SIGKILL inside a checkpoint write leaves a .tmp- directory, which
// the next trainer reports (as checkpoint_invalid: train/job.go emits one for every Invalid that
// Store.Latest returns, leftovers included) and removes only if it finds a valid checkpoint. Such
// runs are sound, as the crash test (cmd/spottrain/crash_test.go) holds them to be.
//
// These cases fail: Verify reports the leftover as an invalid checkpoint (see the report).
func TestVerifyKillLeftovers(t *testing.T) {
	t.Run("killed inside a periodic write", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: `
			1 start
			1 ckpt 10
			1 begin 20
			1 step 21
			2 start
			2 invalid .tmp-step-00000020-123456 unfinished checkpoint write
			2 resume 10
		` + done(2)})
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assert.Equal(t, 11, v.Redo)
		assert.Empty(t, v.Problems, "the leftover of an interrupted write is no invalid checkpoint")
	})
	t.Run("killed inside the first write", func(t *testing.T) {
		dir := buildRun(t, runSpec{log: `
			1 start
			1 begin 10
			2 start
			2 invalid .tmp-step-00000010-123456 unfinished checkpoint write
		` + done(2)})
		// Store.Latest found no valid checkpoint, so it removed nothing: the leftover stays.
		leaveTmp(t, dir, 10)
		v, err := analysis.Verify(dir)
		require.NoError(t, err)
		assert.Equal(t, 10, v.Redo)
		assert.Empty(t, v.Problems, "the leftover of an interrupted write is no invalid checkpoint")
	})
}

// TestVerifyKilledInStartup: a trainer killed after its run_start but before its resume event
// (while Store.Latest verifies the newest checkpoint, or while it is restored: train/job.go emits
// resume only after both) did no step and decided nothing. The run is sound: the next trainer
// resumes from the newest checkpoint, and the steps redone are those of the first kill.
//
// This case fails: Verify says incarnation 2 started afresh, that steps 1 to 10 were skipped,
// and counts 14 steps redone (see the report).
func TestVerifyKilledInStartup(t *testing.T) {
	dir := buildRun(t, runSpec{log: `
		1 start
		1 ckpt 10
		1 step 14
		2 start
		3 start
		3 resume 10
	` + done(3)})
	v, err := analysis.Verify(dir)
	require.NoError(t, err)
	assert.Equal(t, counts{Completed: true, Starts: 3, Killed: 2, Redo: 4, Final: 30}, countsOf(v))
	assert.Empty(t, v.Problems)
}

func TestVerifyUnreadable(t *testing.T) {
	t.Run("no event log", func(t *testing.T) {
		dir := t.TempDir()
		_, err := analysis.Verify(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), events.FileName)
	})
	t.Run("a line that is not an event", func(t *testing.T) {
		dir := t.TempDir()
		testutil.WriteFile(t, filepath.Join(dir, events.FileName), "{\"type\":\"progress\"}\n")
		_, err := analysis.Verify(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "line 1")
	})
}

func TestReadRun(t *testing.T) {
	dir := t.TempDir()
	writeEvents(t, dir, `
		1 start
		1 step 5
		1 ckpt 10
		1 begin 12
		0 kill
		0 child -1
		0 restart
		2 start 4242 31
		2 invalid step-00000012 manifest.json is missing
		2 resume 10
		2 emergency 17
		2 exit 75 17 stopped by terminated
	`)
	r, err := analysis.ReadRun(dir)
	require.NoError(t, err)
	assert.Equal(t, dir, r.Dir)

	require.Len(t, r.Runner, 3)
	for i, p := range []events.Payload{
		events.InterruptSent{Kind: codes.Kill, Reason: codes.Schedule, PID: 11},
		events.ChildExit{PID: 11, Code: -1, Signal: "killed", Caused: true},
		events.Restart{Attempt: 1, DelayS: 0.5},
	} {
		assert.Equal(t, p, r.Runner[i].Payload)
		assert.Equal(t, 0, r.Runner[i].Incarnation)
	}

	require.Len(t, r.Incarnations, 2)
	one, two := r.Incarnations[0], r.Incarnations[1]
	assert.Equal(t, &analysis.Incarnation{
		N: 1, Start: at(0), End: at(4), PID: 11, TotalSteps: 30, World: 1,
		LastStep: 12, Exit: -1, Trained: true,
		Begun:   []int{10, 12},
		Commits: []analysis.Commit{{Step: 10, Reason: "periodic", Dir: ckptDir(dir, 10)}},
	}, one)
	assert.True(t, one.Killed())
	assert.Equal(t, &analysis.Incarnation{
		N: 2, Start: at(8), End: at(15), PID: 4242, TotalSteps: 31, World: 1,
		ResumeStep: 10, ResumeDir: ckptDir(dir, 10), Resumed: true,
		LastStep: 17, Exit: codes.ExitPreempted, ExitReason: "stopped by terminated", Emergency: true,
		Begun:   []int{17},
		Commits: []analysis.Commit{{Step: 17, Reason: "emergency", Dir: ckptDir(dir, 17)}},
		Invalid: []string{filepath.Join(dir, "step-00000012") + ": manifest.json is missing"},
	}, two)
	assert.False(t, two.Killed())
}

func TestReadRunErrors(t *testing.T) {
	_, err := analysis.ReadRun(t.TempDir())
	require.Error(t, err)

	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, events.FileName), "not json\n")
	_, err = analysis.ReadRun(dir)
	require.Error(t, err)
}

func TestCompleted(t *testing.T) {
	cases := []struct {
		name    string
		log     string // "": no event log
		metrics bool
		want    bool
	}{
		{"done, with metrics", "1 start\n" + done(1), true, true},
		{"done, no metrics", "1 start\n" + done(1), false, false},
		{"resumed and done", "1 start\n1 ckpt 10\n1 step 12\n2 start\n2 resume 10\n" + done(2), true, true},
		{"last killed", "1 start\n" + done(1) + "2 start\n2 resume 30", true, false},
		{"last preempted", "1 start\n1 emergency 17\n1 exit 75 17", true, false},
		{"last failed", "1 start\n1 exit 1 3 boom", true, false},
		{"only the runner", "0 child -1", true, false},
		{"no event log", "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.log != "" {
				writeEvents(t, dir, c.log)
			}
			if c.metrics {
				testutil.WriteFile(t, filepath.Join(dir, analysis.MetricsFile), goodMetrics)
			}
			assert.Equal(t, c.want, analysis.Completed(dir))
		})
	}
}

func TestReadMetrics(t *testing.T) {
	dir := t.TempDir()
	_, err := analysis.ReadMetrics(dir)
	require.ErrorIs(t, err, os.ErrNotExist)

	testutil.WriteFile(t, filepath.Join(dir, analysis.MetricsFile), goodMetrics)
	m, err := analysis.ReadMetrics(dir)
	require.NoError(t, err)
	assert.Equal(t, 30, m.Steps)
	require.Len(t, m.Epochs, 2)
	assert.Equal(t, 2, m.Epochs[1].Epoch)
	assert.Equal(t, 30, m.Epochs[1].Step)
	assert.Equal(t, map[string]float64{"rmse_kw": 0.35}, m.Epochs[1].Val)
	assert.Equal(t, map[string]float64{"rmse_kw": 0.3}, m.Test)
}

func TestFindRuns(t *testing.T) {
	t.Run("nested, dot directories skipped", func(t *testing.T) {
		root := t.TempDir()
		for _, d := range []string{"b", "a/x", "a/x/.tmp-step-00000010-1", ".hidden", "c/.cache/d"} {
			testutil.WriteFile(t, filepath.Join(root, d, events.FileName), "")
		}
		testutil.WriteFile(t, filepath.Join(root, "empty", "config.yaml"), "")
		got, err := analysis.FindRuns(root)
		require.NoError(t, err)
		assert.Equal(t, []string{filepath.Join(root, "a/x"), filepath.Join(root, "b")}, got)
	})
	t.Run("root is a run", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), ".runs") // a dot name is skipped only below the root
		testutil.WriteFile(t, filepath.Join(root, events.FileName), "")
		testutil.WriteFile(t, filepath.Join(root, "sub", events.FileName), "")
		got, err := analysis.FindRuns(root)
		require.NoError(t, err)
		assert.Equal(t, []string{root, filepath.Join(root, "sub")}, got)
	})
	t.Run("none", func(t *testing.T) {
		root := t.TempDir()
		testutil.WriteFile(t, filepath.Join(root, ".tmp", events.FileName), "")
		_, err := analysis.FindRuns(root)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no run directories")
		assert.Contains(t, err.Error(), root)
	})
	t.Run("missing root", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "nope")
		_, err := analysis.FindRuns(root)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

// done is the end of a run by incarnation n: steps to 30, the final checkpoint, exit 0.
func done(n int) string {
	return fmt.Sprintf("%[1]d step 25\n%[1]d final 30\n%[1]d epoch 2 30\n%[1]d exit 0 30\n", n)
}

func countsOf(v *analysis.Verdict) counts {
	return counts{v.Completed, v.Starts, v.Notice, v.Killed, v.Redo, v.FinalStep}
}

// assertProblems checks that each problem got contains its own one of the substrings want (in
// any order), {dir} standing for dir.
func assertProblems(t *testing.T, dir string, want, got []string) {
	t.Helper()
	if len(want) == 0 {
		assert.Empty(t, got)
		return
	}
	left := append([]string{}, got...)
	for _, w := range want {
		w = strings.ReplaceAll(w, "{dir}", dir)
		i := indexContaining(left, w)
		if !assert.GreaterOrEqual(t, i, 0, "no problem contains %q in %q", w, got) {
			continue
		}
		left = append(left[:i], left[i+1:]...)
	}
	assert.Empty(t, left, "unexpected problems")
}

func indexContaining(list []string, sub string) int {
	for i, s := range list {
		if strings.Contains(s, sub) {
			return i
		}
	}
	return -1
}

// buildRun makes a run directory: its event log, its checkpoints and its metrics.json.
func buildRun(t *testing.T, spec runSpec) string {
	t.Helper()
	dir := t.TempDir()
	committed := writeEvents(t, dir, spec.log)
	steps := spec.ckpts
	if steps == nil {
		steps = committed
	}
	commitCheckpoints(t, dir, steps, spec.world)
	switch spec.metrics {
	case noMetrics:
	case "":
		testutil.WriteFile(t, filepath.Join(dir, analysis.MetricsFile), goodMetrics)
	default:
		testutil.WriteFile(t, filepath.Join(dir, analysis.MetricsFile), spec.metrics)
	}
	if spec.after != nil {
		spec.after(t, dir)
	}
	return dir
}

// t0 is the time of the first event of a log.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// at is the time of the i-th event (from 0) that writeEvents writes.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

func ckptDir(dir string, step int) string { return filepath.Join(dir, checkpoint.DirName(int64(step))) }

// writeEvents writes dir's events.jsonl from desc, one event (or a few) a line, one second
// apart, and returns the steps of the checkpoints the trainers committed. A line is
//
//	INCARNATION VERB ARGS...
//
// The verbs, with the required fields filled in:
//
//	start [PID [TOTAL]]  run_start (pid 10+incarnation, total_steps 30)
//	resume S             resume at step S from its checkpoint
//	step S               progress at step S
//	begin S [REASON]     checkpoint_begin (periodic)
//	commit S [REASON]    checkpoint_commit (periodic)
//	ckpt S [REASON]      begin and commit
//	final S              begin and commit, reason final
//	emergency S          signal_received, begin, emergency_checkpoint and commit, reason emergency
//	epoch E S            epoch_end of epoch E at step S
//	exit CODE S [WORDS]  exit (reason "done" or the words)
//	invalid NAME WORDS   checkpoint_invalid of dir/NAME, the words the reason
//	notice, kill         the runner's interrupt_sent of that kind
//	child CODE [uncaused]  the runner's child_exit (signal "killed" for code -1; caused unless uncaused)
//	restart              the runner's restart
//	spawn                the runner's child_start (of the pid child's child_exit names)
func writeEvents(t *testing.T, dir, desc string) []int64 {
	t.Helper()
	w := &eventWriter{t: t, dir: dir}
	for l := range strings.Lines(desc) {
		words := strings.Fields(l)
		if len(words) == 0 {
			continue
		}
		require.GreaterOrEqual(t, len(words), 2, "event line %q", l)
		w.line, w.inc, w.args = l, atoi(t, words[0]), words[2:]
		w.verb(words[1])
	}
	testutil.WriteFile(t, filepath.Join(dir, events.FileName), w.buf.String())
	return w.committed
}

// eventWriter is the state of writeEvents.
type eventWriter struct {
	t         *testing.T
	dir       string
	buf       bytes.Buffer
	n         int // events written
	committed []int64
	restarts  int
	regroups  int
	// the line being written
	line string
	inc  int
	args []string
}

// verb writes the events of the verb of the current line.
func (w *eventWriter) verb(verb string) {
	switch verb {
	case "start":
		p := events.RunStart{ConfigHash: "9f86d081", Device: "cpu", PID: 10 + w.inc, Libtorch: "1.13.1", TotalSteps: 30}
		if len(w.args) > 0 {
			p.PID = w.arg(0)
		}
		if len(w.args) > 1 {
			p.TotalSteps = w.arg(1)
		}
		if len(w.args) > 2 {
			p.World = w.arg(2)
		}
		w.emit(p)
	case "resume":
		w.emit(events.Resume{Step: w.arg(0), Epoch: w.arg(0) / 15, Batch: w.arg(0) % 15, Dir: ckptDir(w.dir, w.arg(0))})
	case "regroup": // FROM_WORLD TO_WORLD AT_STEP STEP
		w.regroups++
		w.emit(events.Regroup{Generation: w.regroups, FromWorld: w.arg(0), ToWorld: w.arg(1), AtStep: w.arg(2), Step: w.arg(3),
			Epoch: w.arg(3) / 15, Batch: w.arg(3) % 15, Dir: ckptDir(w.dir, w.arg(3)), TookMS: 1200})
	case "step":
		w.emit(events.Progress{Step: w.arg(0), Epoch: w.arg(0) / 15, Loss: 0.5})
	case "begin":
		w.begin(w.arg(0), codes.CheckpointReason(w.rest(1, string(codes.Periodic))))
	case "commit":
		w.commit(w.arg(0), codes.CheckpointReason(w.rest(1, string(codes.Periodic))))
	case "ckpt":
		w.begin(w.arg(0), codes.CheckpointReason(w.rest(1, string(codes.Periodic))))
		w.commit(w.arg(0), codes.CheckpointReason(w.rest(1, string(codes.Periodic))))
	case "final":
		w.begin(w.arg(0), codes.Final)
		w.commit(w.arg(0), codes.Final)
	case "emergency":
		w.emit(events.SignalReceived{Signal: "terminated", Step: w.arg(0), WaitMS: 3})
		w.begin(w.arg(0), codes.Emergency)
		w.emit(events.EmergencyCheckpoint{Step: w.arg(0), Reason: codes.Emergency})
		w.commit(w.arg(0), codes.Emergency)
	case "epoch":
		w.emit(events.EpochEnd{Epoch: w.arg(0), Step: w.arg(1), TrainLoss: 0.4, Metrics: map[string]float64{"rmse_kw": 0.4}})
	case "exit":
		reason := w.rest(2, "done")
		w.emit(events.Exit{Code: w.arg(0), Step: w.arg(1), Reason: reason,
			PeerLost: strings.Contains(reason, "stopped responding")}) // as train.PeerLostError says
	case "invalid":
		require.NotEmpty(w.t, w.args, "event line %q: no directory", w.line)
		w.emit(events.CheckpointInvalid{Dir: filepath.Join(w.dir, w.args[0]), Reason: w.rest(1, "")})
	case "notice", "kill":
		w.emit(events.InterruptSent{Kind: codes.InterruptKind(verb), Reason: codes.Schedule, PID: 11 + w.restarts})
	case "child":
		p := events.ChildExit{PID: 11 + w.restarts, Code: w.arg(0), Caused: w.rest(1, "") != "uncaused"}
		if p.Code == -1 {
			p.Signal = "killed"
		}
		w.emit(p)
	case "restart":
		w.restarts++
		w.emit(events.Restart{Attempt: w.restarts, DelayS: 0.5})
	case "spawn":
		w.emit(events.ChildStart{Attempt: w.restarts, PID: 11 + w.restarts})
	default:
		w.t.Fatalf("event line %q: unknown verb %q", w.line, verb)
	}
}

func (w *eventWriter) emit(p events.Payload) {
	line, err := events.Encode(at(w.n), w.inc, p)
	require.NoError(w.t, err)
	w.buf.Write(line)
	w.n++
}

// arg is the i-th argument of the line, an integer.
func (w *eventWriter) arg(i int) int {
	require.Greater(w.t, len(w.args), i, "event line %q: argument %d missing", w.line, i+1)
	return atoi(w.t, w.args[i])
}

// rest is the arguments of the line from i on, or def if there are none.
func (w *eventWriter) rest(i int, def string) string {
	if len(w.args) > i {
		return strings.Join(w.args[i:], " ")
	}
	return def
}

func (w *eventWriter) begin(step int, reason codes.CheckpointReason) {
	w.emit(events.CheckpointBegin{Step: step, Reason: reason})
}

func (w *eventWriter) commit(step int, reason codes.CheckpointReason) {
	w.committed = append(w.committed, int64(step))
	w.emit(events.CheckpointCommit{Step: step, Reason: reason, BlockingMS: 1.5, PersistMS: 20.25, Bytes: 1000, Dir: ckptDir(w.dir, step)})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	i, err := strconv.Atoi(s)
	require.NoError(t, err, "not an integer: %q", s)
	return i
}

// commitCheckpoints commits a real checkpoint of each step in dir, with the checkpoint package,
// made by a group of world processes (0: one).
func commitCheckpoints(t *testing.T, dir string, steps []int64, world int) {
	t.Helper()
	store, err := checkpoint.Open(dir, checkpoint.Options{Keep: 100})
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	for _, step := range steps {
		p, err := store.Begin(step)
		require.NoError(t, err)
		writePayload(t, p, step)
		_, err = p.Commit(checkpoint.Manifest{
			RunID: "test-run", ConfigHash: "9f86d081", Epoch: int(step) / 15, Step: step, Batch: int(step) % 15,
			Loss: 0.5, Libtorch: "1.13.1", Device: "cpu", Reason: codes.Periodic, Time: at(int(step)), World: world,
		})
		require.NoError(t, err)
	}
}

// leaveTmp leaves in dir the temporary directory of a checkpoint of step that was never
// committed, as a SIGKILL inside its write does.
func leaveTmp(t *testing.T, dir string, step int64) {
	t.Helper()
	store, err := checkpoint.Open(dir, checkpoint.Options{Keep: 100})
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	p, err := store.Begin(step)
	require.NoError(t, err)
	writePayload(t, p, step)
}

func writePayload(t *testing.T, p *checkpoint.Pending, step int64) {
	t.Helper()
	require.NoError(t, p.Write("model.pt", bytes.Repeat([]byte(fmt.Sprintf("weights at step %d;", step)), 64)))
	require.NoError(t, p.Write("optim.pt", []byte(fmt.Sprintf("adam moments at step %d", step))))
}

// TestVerifyStall: trainer starts cut before their first step (stopped at startup, killed before
// their log was open, stopped during restore) are noted as a stall when StallStarts or more come
// in a row, without making the run unsound; a start that did a step ends a streak.
func TestVerifyStall(t *testing.T) {
	for _, c := range []struct {
		name    string
		log     string
		longest int
	}{
		{
			name: "three starts in a row cut",
			log: `
				1 start 11
				1 exit 75 0 stopped by terminated during startup
				0 child 75
				0 restart
				0 child -1
				0 restart
				2 start 13
				2 exit 75 0 stopped by hangup during restore
				0 child 75
				0 restart
				3 start 14
			` + done(3) + "0 child 0\n",
			longest: 3,
		},
		{
			name: "a step between",
			log: `
				1 start 11
				1 exit 75 0 stopped by terminated during startup
				0 child 75
				0 restart
				2 start 12
				2 emergency 4
				2 exit 75 4
				0 child 75
				0 restart
				0 child -1
				0 restart
				3 start 14
				3 resume 4
			` + done(3) + "0 child 0\n",
			longest: 1,
		},
		{
			// The children are launchers of groups: rank 0 writes the events with its own pid.
			name: "a group's start that trained",
			log: `
				0 spawn
				1 start 99
				1 step 3
				1 emergency 3
				1 exit 75 3
				0 child 75
				0 restart
				0 spawn
				2 start 98
				2 resume 3
			` + done(2) + "0 child 0\n",
			longest: 0,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := buildRun(t, runSpec{log: c.log})
			v, err := analysis.Verify(dir)
			require.NoError(t, err)
			assert.Equal(t, c.longest, v.CutStarts)
			assert.True(t, v.OK(), "problems: %v", v.Problems)
			if c.longest >= analysis.StallStarts {
				assert.Equal(t, []string{analysis.StallNote(c.longest)}, v.Notes)
			} else {
				assert.Empty(t, v.Notes)
			}
		})
	}
}
