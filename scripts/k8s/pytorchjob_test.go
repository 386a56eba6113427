package k8s_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pytorchJob is pytorchjob.yaml: a PyTorchJob of Kubeflow's training operator (kubeflow.org/v1).
type pytorchJob struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       struct {
		RunPolicy struct {
			CleanPodPolicy string `yaml:"cleanPodPolicy"`
			BackoffLimit   *int   `yaml:"backoffLimit"`
		} `yaml:"runPolicy"`
		NprocPerNode        *string                `yaml:"nprocPerNode"`
		ElasticPolicy       map[string]any         `yaml:"elasticPolicy"`
		PyTorchReplicaSpecs map[string]replicaSpec `yaml:"pytorchReplicaSpecs"`
	} `yaml:"spec"`
}

type replicaSpec struct {
	Replicas      *int        `yaml:"replicas"`
	RestartPolicy string      `yaml:"restartPolicy"`
	Template      podTemplate `yaml:"template"`
}

func loadPyTorchJob(t *testing.T) pytorchJob {
	t.Helper()
	var j pytorchJob
	load(t, "pytorchjob.yaml", &j)
	return j
}

// replica returns the replica spec of type rtype (Master, Worker) and its container.
func (j pytorchJob) replica(t *testing.T, rtype string) (replicaSpec, container) {
	t.Helper()
	r, ok := j.Spec.PyTorchReplicaSpecs[rtype]
	require.True(t, ok, "a %s replica", rtype)
	require.NotNil(t, r.Replicas)
	return r, trainerIn(t, r.Template.Spec)
}

// kubeflowRetries reports whether the training operator starts a pod again after its container
// exited with code, under restartPolicy ExitCode (pkg/util/train.IsRetryableExitCode).
func kubeflowRetries(code int) bool { return code >= 128 }

func TestPyTorchJobKind(t *testing.T) {
	j := loadPyTorchJob(t)
	assert.Equal(t, "kubeflow.org/v1", j.APIVersion)
	assert.Equal(t, "PyTorchJob", j.Kind)
	assert.Regexp(t, `^[a-z]([-a-z0-9]*[a-z0-9])?$`, j.Metadata.Name)
	assert.Len(t, j.Spec.PyTorchReplicaSpecs, 2, "Master and Worker")
	master, _ := j.replica(t, "Master")
	worker, _ := j.replica(t, "Worker")
	assert.Equal(t, 1, *master.Replicas, "the operator allows one Master: node 0")
	assert.Positive(t, *worker.Replicas)
	assert.Nil(t, j.Spec.NprocPerNode, "unset: WORLD_SIZE stays the number of pods for operators before v1.7")
	assert.Nil(t, j.Spec.ElasticPolicy, "a static group: PET_NNODES is a number")
	assert.Equal(t, "Running", j.Spec.RunPolicy.CleanPodPolicy, "a finished job's pods do not keep their GPUs")
}

func TestPyTorchJobReplicasAreAlike(t *testing.T) {
	j := loadPyTorchJob(t)
	master, _ := j.replica(t, "Master")
	worker, _ := j.replica(t, "Worker")
	assert.True(t, reflect.DeepEqual(master.Template, worker.Template), "the Master's and the Worker's templates are the same")
	assert.Equal(t, master.RestartPolicy, worker.RestartPolicy)
}

func TestPyTorchJobRestartPolicy(t *testing.T) {
	j := loadPyTorchJob(t)
	for _, rtype := range []string{"Master", "Worker"} {
		r, c := j.replica(t, rtype)
		assert.Equal(t, "ExitCode", r.RestartPolicy, "%s: the exit code decides between retry and failure", rtype)
		assert.Empty(t, r.Template.Spec.RestartPolicy, "%s: the operator sets the pod's restartPolicy from the replica's", rtype)
		assert.Equal(t, "pytorch", c.Name, "%s: the operator reads the exit code of the container named pytorch", rtype)
		require.Len(t, c.Command, 4, "%s: bash -c SCRIPT NAME, then the args", rtype)
		assert.Equal(t, []string{"/bin/bash", "-c"}, c.Command[:2])
	}
}

func TestPyTorchJobPods(t *testing.T) {
	j := loadPyTorchJob(t)
	var trainers []container
	for _, rtype := range []string{"Master", "Worker"} {
		r, c := j.replica(t, rtype)
		trainers = append(trainers, c)
		pod := r.Template.Spec
		checkSpotNodes(t, pod)
		checkGracePeriod(t, pod, c)
		checkRunDirs(t, pod, c)
		checkSharedMemory(t, pod, c)
		n, ok := flag(c.Args, "--nproc-per-node")
		require.True(t, ok, "--nproc-per-node")
		assert.Equal(t, strconv.Itoa(gpus(t, c)), n, "%s: one process per GPU", rtype)
		var port int
		for _, p := range c.Ports {
			if p.Name == "pytorchjob-port" {
				port = p.ContainerPort
			}
		}
		assert.Positive(t, port, "%s: the port named pytorchjob-port is MASTER_PORT", rtype)
		for _, name := range []string{"--nnodes", "--node-rank", "--master-addr", "--master-port"} {
			_, ok := flag(c.Args, name)
			assert.False(t, ok, "%s: %s comes from the operator's variables, through the script", rtype, name)
		}
	}
	checkPlaceholders(t, "pytorchjob.yaml", trainers)
}

// script is a trainer's command, runnable here: bash -c SCRIPT NAME ARGS... with a fake
// spottrain first on PATH that records its arguments and environment in dir and exits with
// $FAKE_EXIT ("wait": runs until SIGTERM, then exits 75, or exits 99 after 10 s; "kill":
// SIGKILLs itself). The script runs in a process group of its own, killed at the end of the test.
type script struct {
	t    *testing.T
	dir  string
	cmd  []string
	env  []string
	args []string
}

const fakeSpottrain = `#!/bin/sh
printf '%s\n' "$@" >"$FAKE_DIR/args"
env >"$FAKE_DIR/env"
case $FAKE_EXIT in
wait)
	trap 'echo TERM >"$FAKE_DIR/signal"; exit 75' TERM
	: >"$FAKE_DIR/ready"
	i=0
	while [ $i -lt 500 ]; do /bin/sleep 0.02; i=$((i + 1)); done
	exit 99
	;;
kill) kill -KILL $$ ;;
*) exit "$FAKE_EXIT" ;;
esac
`

// fakeGetent resolves no name while the file FAKE_DIR/unresolved lists it; fakeSleep counts its
// calls in FAKE_DIR/sleeps, sleeps not, and empties FAKE_DIR/unresolved at the third.
const fakeGetent = `#!/bin/sh
! grep -qx "$2" "$FAKE_DIR/unresolved" 2>/dev/null
`

const fakeSleep = `#!/bin/sh
echo >>"$FAKE_DIR/sleeps"
if [ "$(wc -l <"$FAKE_DIR/sleeps")" -ge 3 ]; then : >"$FAKE_DIR/unresolved"; fi
`

func newScript(t *testing.T, c container) *script {
	t.Helper()
	require.Len(t, c.Command, 4)
	bin, dir := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "spottrain"), []byte(fakeSpottrain), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "getent"), []byte(fakeGetent), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "sleep"), []byte(fakeSleep), 0o755))
	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	return &script{t: t, dir: dir, cmd: append([]string{bash}, c.Command[1:]...), args: c.Args,
		env: []string{"PATH=" + bin + ":/usr/bin:/bin", "FAKE_DIR=" + dir, "LC_ALL=C"}}
}

// start starts the script with the operator's variables env and the fake's exit.
func (s *script) start(ctx context.Context, exit string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, s.cmd[0], append(s.cmd[1:], s.args...)...)
	cmd.Env = append(append(slices.Clone(s.env), "FAKE_EXIT="+exit), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second // a fake spottrain left behind keeps the output open
	require.NoError(s.t, cmd.Start())
	pgid := cmd.Process.Pid
	s.t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	return cmd, &out
}

// run runs the script to its end and returns its exit status and output.
func (s *script) run(exit string, env ...string) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, out := s.start(ctx, exit, env...)
	return s.wait(ctx, cmd), out.String()
}

func (s *script) wait(ctx context.Context, cmd *exec.Cmd) int {
	s.t.Helper()
	err := cmd.Wait()
	require.NoError(s.t, ctx.Err(), "the script timed out")
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(s.t, err)
	return 0
}

// fakeArgs returns the arguments the fake spottrain got.
func (s *script) fakeArgs() []string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "args"))
	require.NoError(s.t, err, "spottrain ran")
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// fakeEnv returns the environment the fake spottrain got.
func (s *script) fakeEnv() map[string]string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "env"))
	require.NoError(s.t, err, "spottrain ran")
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

// operatorEnv is what the training operator v1.9 sets in the container of replica rank of a job
// of world pods (nprocPerNode unset: "auto"), with its Master's port.
func operatorEnv(name string, rank, world, port int) []string {
	addr, p := name+"-master-0", strconv.Itoa(port)
	return []string{"PYTHONUNBUFFERED=1", "MASTER_PORT=" + p, "PET_MASTER_PORT=" + p, "MASTER_ADDR=" + addr,
		"PET_MASTER_ADDR=" + addr, "WORLD_SIZE=" + strconv.Itoa(world), "RANK=" + strconv.Itoa(rank),
		"PET_NODE_RANK=" + strconv.Itoa(rank), "PET_NPROC_PER_NODE=auto", "PET_NNODES=" + strconv.Itoa(world)}
}

// masterPort returns the Master's pytorchjob-port.
func masterPort(t *testing.T, j pytorchJob) int {
	t.Helper()
	_, c := j.replica(t, "Master")
	for _, p := range c.Ports {
		if p.Name == "pytorchjob-port" {
			return p.ContainerPort
		}
	}
	t.Fatal("no pytorchjob-port")
	return 0
}

// TestPyTorchJobScriptStartsTheGroup runs each replica's script with the variables the operator
// sets and checks that spottrain's launcher gets node rank, node count and node 0's address, and
// that spottrain accepts the result.
func TestPyTorchJobScriptStartsTheGroup(t *testing.T) {
	j := loadPyTorchJob(t)
	master, _ := j.replica(t, "Master")
	worker, _ := j.replica(t, "Worker")
	world := *master.Replicas + *worker.Replicas
	port := masterPort(t, j)
	for rank := range world {
		rtype := "Master"
		if rank > 0 {
			rtype = "Worker"
		}
		_, c := j.replica(t, rtype)
		s := newScript(t, c)
		code, out := s.run("0", operatorEnv(j.Metadata.Name, rank, world, port)...)
		require.Equal(t, 0, code, out)

		env := s.fakeEnv()
		for _, v := range []string{"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"} {
			assert.NotContains(t, env, v, "rank %d: spottrain is the launcher, not a worker that reads %s", rank, v)
		}
		args := s.fakeArgs()
		assert.Equal(t, c.Args, args[:len(c.Args)], "the container's args come first")
		cfg, err := trainConfig(t, args)
		require.NoError(t, err, "rank %d: spottrain accepts its arguments %q", rank, args)
		d := cfg.Distributed
		assert.Equal(t, world, d.NNodes)
		assert.Equal(t, rank, d.NodeRank)
		assert.Equal(t, j.Metadata.Name+"-master-0", d.MasterAddr, "the Master's service")
		assert.Equal(t, port, d.MasterPort)
		assert.Equal(t, gpus(t, c), d.NProcPerNode)
		assert.GreaterOrEqual(t, d.Timeout, time.Minute, "the rendezvous waits for pods that start later")
	}
}

// TestPyTorchJobScriptWaitsForTheMaster: spottrain starts once the Master's name resolves.
func TestPyTorchJobScriptWaitsForTheMaster(t *testing.T) {
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Master")
	s := newScript(t, c)
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "unresolved"), []byte(j.Metadata.Name+"-master-0\n"), 0o644))
	code, out := s.run("0", operatorEnv(j.Metadata.Name, 0, 2, masterPort(t, j))...)
	require.Equal(t, 0, code, out)
	sleeps, err := os.ReadFile(filepath.Join(s.dir, "sleeps"))
	require.NoError(t, err, "the script waited")
	assert.Equal(t, 3, strings.Count(string(sleeps), "\n"), "until the name resolved, no longer")
	assert.FileExists(t, filepath.Join(s.dir, "args"), "then spottrain ran")
}

// TestPyTorchJobScriptOlderOperator: before v1.7 the operator set no PET_ variables; WORLD_SIZE
// and RANK count pods then.
func TestPyTorchJobScriptOlderOperator(t *testing.T) {
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Worker")
	s := newScript(t, c)
	code, out := s.run("0", "MASTER_ADDR=m-master-0", "MASTER_PORT=29500", "WORLD_SIZE=3", "RANK=2")
	require.Equal(t, 0, code, out)
	args := s.fakeArgs()
	for name, want := range map[string]string{"--nnodes": "3", "--node-rank": "2", "--master-addr": "m-master-0", "--master-port": "29500"} {
		v, ok := flag(args, name)
		assert.True(t, ok && v == want, "%s %s in %q", name, want, args)
	}
}

// TestPyTorchJobScriptNprocPerNode: with spec.nprocPerNode set, WORLD_SIZE counts processes, and
// the script goes by PET_NNODES.
func TestPyTorchJobScriptNprocPerNode(t *testing.T) {
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Worker")
	s := newScript(t, c)
	env := operatorEnv("m", 1, 2, 29500)
	env = append(env, "WORLD_SIZE=4", "PET_NPROC_PER_NODE=2")
	code, out := s.run("0", env...)
	require.Equal(t, 0, code, out)
	v, _ := flag(s.fakeArgs(), "--nnodes")
	assert.Equal(t, "2", v)
}

func TestPyTorchJobScriptNeedsTheOperator(t *testing.T) {
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Master")
	for _, env := range [][]string{nil, {"MASTER_ADDR=m-master-0", "MASTER_PORT=29500"}, {"WORLD_SIZE=2", "RANK=0"}} {
		s := newScript(t, c)
		code, out := s.run("0", env...)
		assert.Equal(t, 2, code, "bad input: the job fails (%q)", env)
		assert.False(t, kubeflowRetries(code))
		assert.Equal(t, 1, strings.Count(out, "\n"), "one line: %q", out)
		assert.Contains(t, out, "MASTER_ADDR")
		assert.NoFileExists(t, filepath.Join(s.dir, "args"), "spottrain did not run")
	}
}

// TestPyTorchJobScriptExitCodes: what the operator does after each of spottrain's exits.
func TestPyTorchJobScriptExitCodes(t *testing.T) {
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Master")
	env := operatorEnv(j.Metadata.Name, 0, 2, masterPort(t, j))
	for _, tc := range []struct {
		name, exit string
		retried    bool
	}{
		{"done", "0", false},
		{"a failure", "1", false},
		{"bad input", "2", false},
		{"preempted, or a lost peer", "75", true},
		{"killed", "kill", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t, c)
			code, out := s.run(tc.exit, env...)
			switch tc.exit {
			case "75":
				assert.GreaterOrEqual(t, code, 128, out)
			case "kill":
				assert.Equal(t, 128+int(syscall.SIGKILL), code, out)
			default:
				assert.Equal(t, tc.exit, strconv.Itoa(code), "passed on: %s", out)
			}
			assert.LessOrEqual(t, code, 255)
			assert.Equal(t, tc.retried, code != 0 && kubeflowRetries(code), "exit %d", code)
		})
	}
}

// TestPyTorchJobScriptForwardsSIGTERM: the kubelet's SIGTERM reaches spottrain, whose emergency
// checkpoint's exit 75 the operator retries.
func TestPyTorchJobScriptForwardsSIGTERM(t *testing.T) {
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Worker")
	s := newScript(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, out := s.start(ctx, "wait", operatorEnv(j.Metadata.Name, 1, 2, masterPort(t, j))...)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(s.dir, "ready"))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "spottrain started")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	code := s.wait(ctx, cmd)
	assert.FileExists(t, filepath.Join(s.dir, "signal"), "spottrain got SIGTERM")
	assert.GreaterOrEqual(t, code, 128, "retried: %s", out)
	assert.NotEqual(t, 128+int(syscall.SIGTERM), code, "the script waited for spottrain's own exit")
}

// TestPyTorchJobScriptShellcheck runs shellcheck on the script.
func TestPyTorchJobScriptShellcheck(t *testing.T) {
	path, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: apt-get install shellcheck (make test installs it)")
	}
	j := loadPyTorchJob(t)
	_, c := j.replica(t, "Master")
	file := filepath.Join(t.TempDir(), "script.sh")
	require.NoError(t, os.WriteFile(file, []byte("#!/bin/bash\n"+c.Command[2]), 0o644))
	out, err := exec.Command(path, "--format=gcc", file).CombinedOutput()
	assert.NoError(t, err, "shellcheck:\n%s", out)
}
