package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/distributed"
)

// TestTrainHelpGroup: train --help documents --nproc-per-node and the variables of a group.
func TestTrainHelpGroup(t *testing.T) {
	t.Parallel()
	r := spottrain(t, t.TempDir(), "train", "--help")
	require.Equal(t, 0, r.code, r.stderr)
	for _, s := range []string{"--nproc-per-node N", "distributed.nproc_per_node=N", "torchrun", "PyTorchJob",
		"RANK, WORLD_SIZE", "MASTER_ADDR, MASTER_PORT", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_USE_AGENT_STORE=True"} {
		assert.Contains(t, r.stdout, s)
	}
}

// TestGroupInputErrors: a bad group variable, a bad --nproc-per-node (or another of torchrun's
// flags, each the --set of its key after the --set flags) or a batch that the processes cannot
// share is bad input (exit 2), refused before any worker starts.
func TestGroupInputErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		msg  string
	}{
		{"BadRank", []string{"WORLD_SIZE=2", "RANK=abc", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500"}, nil,
			"a worker of a group (WORLD_SIZE is set): RANK=abc: not an integer"},
		{"NoMaster", []string{"WORLD_SIZE=2", "RANK=1"}, nil,
			"a worker of a group (WORLD_SIZE is set): MASTER_ADDR is not set (WORLD_SIZE=2 is)"},
		{"NProcNotInteger", nil, []string{"--nproc-per-node", "two"},
			`train: invalid argument "two" for "--nproc-per-node" flag: not an integer: "two"`},
		{"NProcZero", nil, []string{"--nproc-per-node", "0"},
			"--set distributed.nproc_per_node=0: distributed.nproc_per_node: must be in [1, 1024] (got 0)"},
		{"BatchNotShared", nil, []string{"--nproc-per-node", "3"}, "train.batch_size: 64 is not divisible by distributed.nproc_per_node 3 " +
			"(each process takes an equal share of every batch)"},
		{"NProcAfterSets", nil, []string{"--nproc-per-node", "3", "--set", "distributed.nproc_per_node=2"},
			"train.batch_size: 64 is not divisible by distributed.nproc_per_node 3"},
		{"NodesNoMasterAddr", nil, []string{"--nnodes", "2"}, "--set distributed.nnodes=2: distributed.master_addr: required when " +
			"distributed.nnodes is more than 1 (got 2): the address of node 0, which hosts the rendezvous store"},
		{"NodeRankNotBelow", nil, []string{"--nnodes", "2", "--master-addr", "h", "--node-rank", "2"},
			"--set distributed.node_rank=2: distributed.node_rank: must be in [0, distributed.nnodes) = [0, 2) (got 2)"},
		{"NodeRankNotInteger", nil, []string{"--node-rank", "one"}, `train: invalid argument "one" for "--node-rank" flag: not an integer: "one"`},
		{"MasterPortOut", nil, []string{"--master-port", "70000"},
			"--set distributed.master_port=70000: distributed.master_port: must be in [1, 65535] (got 70000)"},
		{"NNodesAfterSets", nil, []string{"--nnodes", "3", "--set", "distributed.nnodes=2", "--master-addr", "h"},
			"train.batch_size: 64 is not divisible by distributed.nnodes 3 × distributed.nproc_per_node 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append(append(lstmTrain(), tiny("run")...), tt.args...)
			r := spottrainEnv(t, dir, tt.env, args...)
			assert.Equal(t, codes.ExitBadInput, r.code)
			assert.Contains(t, errorLine(t, r.stderr), tt.msg)
			assert.Empty(t, r.stdout, "no worker started")
			assert.NoDirExists(t, filepath.Join(dir, "run"))
		})
	}
}

// TestGroupBadInput: a launcher whose workers all refuse their input (a data file that is
// missing) exits 2, with one line per worker's exit and the output of rank 1 prefixed.
func TestGroupBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append(append(lstmTrain(), tiny("run")...), "--set", "data.source=csv", "--set", "data.path=missing.csv",
		"--nproc-per-node", "2")
	r := spottrain(t, dir, args...)
	assert.Equal(t, codes.ExitBadInput, r.code, r.stderr)
	assert.Contains(t, r.stderr, "launcher: rank 0: exit status 2\n")
	assert.Contains(t, r.stderr, "launcher: rank 1: exit status 2\n")
	assert.Regexp(t, `(?m)^\[rank 1\] spottrain: read PV CSV: open missing.csv: no such file or directory$`, r.stderr)
	assert.Regexp(t, `(?m)^spottrain: read PV CSV: open missing.csv: no such file or directory$`, r.stderr, "rank 0's as it is")
	assert.True(t, strings.HasSuffix(r.stderr, "spottrain: worker group failed (rank 0: exit status 2)\n"), r.stderr)
}

// TestGroupErrorExitCode: the group's status is the launcher's exit status.
func TestGroupErrorExitCode(t *testing.T) {
	for code, want := range map[int]int{75: codes.ExitPreempted, 2: codes.ExitBadInput, 1: codes.ExitFailure, 3: codes.ExitFailure} {
		err := groupError(&distributed.ExitError{Code: code, Rank: 1, Status: "exit status"})
		assert.Equal(t, want, exitCode(err), "group status %d", code)
	}
	assert.Equal(t, codes.ExitDone, exitCode(groupError(nil)))
	assert.Equal(t, codes.ExitFailure, exitCode(groupError(os.ErrNotExist)), "a launch that failed")
}

// TestGroupNoticeAndResume: a launcher of 2 workers forwards its SIGTERM to both, which stop
// after the same step with an emergency checkpoint: it exits 75. Started again, the group resumes
// there and completes (exit 0), and rank 0 alone reports the scores.
func TestGroupNoticeAndResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append(exactJob("run", 2), "--nproc-per-node", "2")
	p := startSpottrain(t, dir, pauseAt("step", time.Minute), args...)
	paused := map[string]bool{} // both ranks hold their first step, whichever says so first
	require.True(t, p.read(func(l string) bool {
		if l == "test hook: pausing in step" || l == "[rank 1] test hook: pausing in step" {
			paused[l] = true
		}
		return len(paused) == 2
	}, time.Now().Add(time.Minute)), "both ranks pause: stdout %s", p.tail(20))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), p.stderr.String())
	m := regexp.MustCompile(`(?m)^terminated received: checkpointing at step (\d+)$`).FindStringSubmatch(p.stdout())
	require.NotNil(t, m, p.stdout())
	assert.Regexp(t, `(?m)^\[rank 1\] spottrain: stopped by terminated at step `+m[1]+` after an emergency checkpoint`, p.stderr.String(),
		"rank 1 got the notice too, and stopped after the same step")
	assert.Contains(t, p.stderr.String(), "launcher: rank 0: exit status 75\n")
	assert.Contains(t, p.stderr.String(), "launcher: rank 1: exit status 75\n")
	assert.True(t, strings.HasSuffix(p.stderr.String(), "; start again to resume\n"), p.stderr.String())

	r := spottrain(t, dir, args...)
	require.Equal(t, codes.ExitDone, r.code, r.stderr)
	assert.Regexp(t, `(?m)^resumed from step `+m[1]+`, `, r.stdout)
	assert.Regexp(t, `(?m)^run dir: run$`, r.stdout)
	assert.NotContains(t, r.stdout, "[rank 1] run dir:", "rank 0 alone reports")
	assert.Empty(t, r.stderr)
}
