package k8s_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jobSet is jobset.yaml: a JobSet of jobset.x-k8s.io/v1alpha2.
type jobSet struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       struct {
		Network struct {
			EnableDNSHostnames       *bool  `yaml:"enableDNSHostnames"`
			Subdomain                string `yaml:"subdomain"`
			PublishNotReadyAddresses *bool  `yaml:"publishNotReadyAddresses"`
		} `yaml:"network"`
		FailurePolicy struct {
			MaxRestarts     *int         `yaml:"maxRestarts"`
			RestartStrategy string       `yaml:"restartStrategy"`
			Rules           []jobSetRule `yaml:"rules"`
		} `yaml:"failurePolicy"`
		ReplicatedJobs []struct {
			Name     string `yaml:"name"`
			Replicas *int   `yaml:"replicas"`
			Template struct {
				Spec jobSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"replicatedJobs"`
	} `yaml:"spec"`
}

type jobSetRule struct {
	Name                        string   `yaml:"name"`
	Action                      string   `yaml:"action"`
	OnJobFailureReasons         []string `yaml:"onJobFailureReasons"`
	OnJobFailureMessagePatterns []string `yaml:"onJobFailureMessagePatterns"`
	TargetReplicatedJobs        []string `yaml:"targetReplicatedJobs"`
}

func loadJobSet(t *testing.T) jobSet {
	t.Helper()
	var js jobSet
	load(t, "jobset.yaml", &js)
	require.Len(t, js.Spec.ReplicatedJobs, 1, "one replicated job: the nodes")
	return js
}

// nodes returns the JobSet's one Job spec and its trainer container.
func (js jobSet) nodes(t *testing.T) (jobSpec, container) {
	t.Helper()
	spec := js.Spec.ReplicatedJobs[0].Template.Spec
	return spec, trainerIn(t, spec.Template.Spec)
}

// A failedPod is how a pod of the Job ended: its trainer's exit code (0: it did not exit, e.g.
// its node vanished) and its conditions (type True).
type failedPod struct {
	exitCode   int
	conditions []string
}

// jobFailure plays the Job controller (pkg/controller/job/pod_failure_policy.go, backoffLimit 0
// as here) on pod p of a Job with spec: the reason and message of the Job's Failed condition, or
// "" when the pod is replaced without failing the Job (Ignore). The messages are the controller's.
func jobFailure(t *testing.T, spec jobSpec, containerName string, p failedPod) (reason, message string) {
	t.Helper()
	const pod = "default/spottrain-resnet50-node-0-1-x7k2p"
	for i, r := range spec.PodFailurePolicy.Rules {
		matched, what := false, ""
		switch {
		case r.OnExitCodes != nil:
			e := r.OnExitCodes
			if p.exitCode != 0 && (e.ContainerName == "" || e.ContainerName == containerName) {
				in := slices.Contains(e.Values, p.exitCode)
				matched = e.Operator == "In" && in || e.Operator == "NotIn" && !in
			}
			what = fmt.Sprintf("Container %s for pod %s failed with exit code %d", containerName, pod, p.exitCode)
		case len(r.OnPodConditions) > 0:
			for _, c := range r.OnPodConditions {
				if slices.Contains(p.conditions, c.Type) && (c.Status == "" || c.Status == "True") {
					matched, what = true, fmt.Sprintf("Pod %s has condition %s", pod, c.Type)
					break
				}
			}
		default:
			t.Fatalf("pod failure rule %d has neither onExitCodes nor onPodConditions", i)
		}
		if !matched {
			continue
		}
		switch r.Action {
		case "FailJob":
			return "PodFailurePolicy", fmt.Sprintf("%s matching FailJob rule at index %d", what, i)
		case "Ignore":
			return "", ""
		case "Count":
			return backoffLimitExceeded(t, spec)
		default:
			t.Fatalf("pod failure rule %d: action %q", i, r.Action)
		}
	}
	return backoffLimitExceeded(t, spec)
}

func backoffLimitExceeded(t *testing.T, spec jobSpec) (string, string) {
	t.Helper()
	require.NotNil(t, spec.BackoffLimit)
	require.Zero(t, *spec.BackoffLimit, "the Job fails at its first counted failure")
	return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
}

// jobSetAction plays the JobSet controller (pkg/controllers/failure_policy.go): the action of
// the first rule that matches the failed Job's reason and message; RestartJobSet when none does.
func jobSetAction(js jobSet, reason, message string) string {
	for _, r := range js.Spec.FailurePolicy.Rules {
		if len(r.OnJobFailureReasons) > 0 && !slices.Contains(r.OnJobFailureReasons, reason) {
			continue
		}
		if len(r.OnJobFailureMessagePatterns) > 0 && !slices.ContainsFunc(r.OnJobFailureMessagePatterns, func(p string) bool {
			ok, err := regexp.MatchString(p, message)
			return err == nil && ok
		}) {
			continue
		}
		if len(r.TargetReplicatedJobs) > 0 && !slices.Contains(r.TargetReplicatedJobs, js.Spec.ReplicatedJobs[0].Name) {
			continue
		}
		return r.Action
	}
	return "RestartJobSet"
}

func TestJobSetKind(t *testing.T) {
	js := loadJobSet(t)
	assert.Equal(t, "jobset.x-k8s.io/v1alpha2", js.APIVersion)
	assert.Equal(t, "JobSet", js.Kind)
	assert.Regexp(t, `^[a-z]([-a-z0-9]*[a-z0-9])?$`, js.Metadata.Name)
	rj := js.Spec.ReplicatedJobs[0]
	require.NotNil(t, rj.Replicas)
	assert.Equal(t, 1, *rj.Replicas, "one Job, whose pods are the nodes")

	spec, _ := js.nodes(t)
	assert.Equal(t, "Never", spec.Template.Spec.RestartPolicy, "podFailurePolicy requires restartPolicy Never")
	assert.Equal(t, "Failed", spec.PodReplacementPolicy)
	require.NotNil(t, spec.BackoffLimit)
	assert.Zero(t, *spec.BackoffLimit, "a pod is never replaced alone: the JobSet restarts the group")
	assert.Equal(t, "BlockingRecreate", js.Spec.FailurePolicy.RestartStrategy,
		"the old group's pods are gone (node 0's upload done) before the new group starts")
}

func TestJobSetFailurePolicyIsValid(t *testing.T) {
	js := loadJobSet(t)
	rules := js.Spec.FailurePolicy.Rules
	require.NotEmpty(t, rules)
	names := map[string]bool{}
	for _, r := range rules {
		assert.Regexp(t, `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`, r.Name, "JobSet's rule names")
		assert.False(t, names[r.Name], "rule %s named twice", r.Name)
		names[r.Name] = true
		assert.Contains(t, []string{"FailJobSet", "RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts"}, r.Action, "rule %s", r.Name)
		for _, reason := range r.OnJobFailureReasons {
			assert.Contains(t, []string{"PodFailurePolicy", "BackoffLimitExceeded", "DeadlineExceeded", "MaxFailedIndexesExceeded"}, reason, "rule %s", r.Name)
		}
		for _, p := range r.OnJobFailureMessagePatterns {
			_, err := regexp.Compile(p)
			assert.NoError(t, err, "rule %s: JobSet skips a pattern that RE2 rejects", r.Name)
		}
	}
	mr := js.Spec.FailurePolicy.MaxRestarts
	require.NotNil(t, mr, "maxRestarts bounds the restarts after real failures")
	assert.Positive(t, *mr)
	assert.LessOrEqual(t, *mr, 10)
}

// TestJobSetFailures follows each way a node's pod ends through the Job's podFailurePolicy and
// the JobSet's failure policy, as their controllers do.
func TestJobSetFailures(t *testing.T) {
	js := loadJobSet(t)
	spec, c := js.nodes(t)
	const restartUncounted, restartCounted, fail = "RestartJobSetAndIgnoreMaxRestarts", "RestartJobSet", "FailJobSet"
	for _, tc := range []struct {
		name string
		pod  failedPod
		want string
	}{
		{"exit 75: preempted after an emergency checkpoint, or a lost peer", failedPod{exitCode: 75}, restartUncounted},
		{"exit 75 on a node being drained", failedPod{exitCode: 75, conditions: []string{"DisruptionTarget"}}, restartUncounted},
		{"killed at the end of the grace period on a preempted node", failedPod{exitCode: 137, conditions: []string{"DisruptionTarget"}}, restartUncounted},
		{"the node vanished", failedPod{conditions: []string{"DisruptionTarget"}}, restartUncounted},
		{"exit 2: bad input", failedPod{exitCode: 2}, fail},
		{"exit 2 on a node being drained", failedPod{exitCode: 2, conditions: []string{"DisruptionTarget"}}, fail},
		{"exit 1: a crash", failedPod{exitCode: 1}, restartCounted},
		{"killed, out of memory", failedPod{exitCode: 137}, restartCounted},
		{"exit 25 is not 2", failedPod{exitCode: 25}, restartCounted},
		{"exit 175 is not 75", failedPod{exitCode: 175}, restartCounted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, message := jobFailure(t, spec, c.Name, tc.pod)
			require.NotEmpty(t, reason, "every pod failure fails the Job: its pod alone cannot rejoin the group")
			assert.Equal(t, tc.want, jobSetAction(js, reason, message), "Job failed: %s: %s", reason, message)
		})
	}
}

// TestJobSetMessagePatternsNameOneCode checks the patterns alone: of the messages of a FailJob
// rule for every exit code, only exit 2's fails the JobSet and only exit 75's restarts it
// uncounted, whatever exit codes the Job's rules come to fail on.
func TestJobSetMessagePatternsNameOneCode(t *testing.T) {
	js := loadJobSet(t)
	for code := 1; code < 256; code++ {
		for _, index := range []int{0, 1, 12} {
			msg := fmt.Sprintf("Container spottrain for pod default/spottrain-resnet50-node-0-%d-b2x7q failed with exit code %d matching FailJob rule at index %d", code%3, code, index)
			want := "RestartJobSet"
			switch code {
			case 2:
				want = "FailJobSet"
			case 75:
				want = "RestartJobSetAndIgnoreMaxRestarts"
			}
			assert.Equal(t, want, jobSetAction(js, "PodFailurePolicy", msg), msg)
		}
	}
	msg := "Pod default/spottrain-resnet50-node-0-1-x7k2p has condition DisruptionTarget matching FailJob rule at index 2"
	assert.Equal(t, "RestartJobSetAndIgnoreMaxRestarts", jobSetAction(js, "PodFailurePolicy", msg))
}

func TestJobSetNodesFindNodeZero(t *testing.T) {
	js := loadJobSet(t)
	spec, c := js.nodes(t)
	assert.Equal(t, "Indexed", spec.CompletionMode, "each pod has its completion index: its node rank")
	require.NotNil(t, spec.Completions)
	require.NotNil(t, spec.Parallelism)
	n := *spec.Completions
	assert.Equal(t, n, *spec.Parallelism, "every node runs at once")
	assert.GreaterOrEqual(t, n, 2, "several nodes")

	nnodes, ok := flag(c.Args, "--nnodes")
	require.True(t, ok, "--nnodes")
	assert.Equal(t, strconv.Itoa(n), nnodes, "--nnodes is the number of pods")
	rank, ok := flag(c.Args, "--node-rank")
	require.True(t, ok, "--node-rank")
	assert.Equal(t, "$(JOB_COMPLETION_INDEX)", rank, "the kubelet expands the completion index that the Job controller sets")
	for _, e := range c.Env {
		assert.NotEqual(t, "JOB_COMPLETION_INDEX", e.Name, "the Job controller's JOB_COMPLETION_INDEX is not overridden")
	}

	net := js.Spec.Network
	require.NotNil(t, net.EnableDNSHostnames)
	assert.True(t, *net.EnableDNSHostnames, "pods have DNS names")
	assert.True(t, net.PublishNotReadyAddresses == nil || *net.PublishNotReadyAddresses,
		"names resolve before the pods are ready (the default)")
	subdomain := firstNonEmpty(net.Subdomain, js.Metadata.Name)
	addr, ok := flag(c.Args, "--master-addr")
	require.True(t, ok, "--master-addr")
	assert.Equal(t, fmt.Sprintf("%s-%s-0-0.%s", js.Metadata.Name, js.Spec.ReplicatedJobs[0].Name, subdomain), addr,
		"node 0 is the pod of Job 0, completion index 0")

	port, ok := flag(c.Args, "--master-port")
	require.True(t, ok, "--master-port")
	for _, p := range c.Ports {
		assert.Equal(t, port, strconv.Itoa(p.ContainerPort), "the port declared is node 0's store's")
	}
}

// firstNonEmpty returns the first of its arguments that is not empty.
func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func TestJobSetConfigOfEachNode(t *testing.T) {
	js := loadJobSet(t)
	spec, c := js.nodes(t)
	require.NotNil(t, spec.Completions)
	g := gpus(t, c)
	for r := range *spec.Completions {
		args := slices.Clone(c.Args)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", strconv.Itoa(r))
		}
		cfg, err := trainConfig(t, args)
		require.NoError(t, err, "node %d: spottrain accepts its arguments", r)
		d := cfg.Distributed
		assert.Equal(t, *spec.Completions, d.NNodes)
		assert.Equal(t, r, d.NodeRank)
		assert.Equal(t, g, d.NProcPerNode, "one process per GPU: --nproc-per-node is the pod's nvidia.com/gpu")
		assert.Zero(t, cfg.Train.BatchSize%(d.NNodes*d.NProcPerNode))
		assert.GreaterOrEqual(t, d.Timeout, time.Minute, "the rendezvous waits for nodes that start later")
		assert.True(t, strings.HasPrefix(cfg.RemoteURL(), "gs://BUCKET/"), cfg.RemoteURL())
	}
}

func TestJobSetPods(t *testing.T) {
	js := loadJobSet(t)
	spec, c := js.nodes(t)
	pod := spec.Template.Spec
	checkSpotNodes(t, pod)
	checkGracePeriod(t, pod, c)
	checkRunDirs(t, pod, c)
	checkSharedMemory(t, pod, c)
	checkPlaceholders(t, "jobset.yaml", []container{c, waitForNodes(t, pod)})
	for _, r := range spec.PodFailurePolicy.Rules {
		if r.OnExitCodes != nil {
			assert.Equal(t, c.Name, r.OnExitCodes.ContainerName, "exit codes of the trainer")
		}
	}
}

// waitForNodes returns the init container that waits for every node's DNS name.
func waitForNodes(t *testing.T, pod podSpec) container {
	t.Helper()
	for _, c := range pod.InitContainers {
		if c.Name == "wait-for-nodes" {
			return c
		}
	}
	t.Fatal("no init container wait-for-nodes")
	return container{}
}

func TestJobSetWaitsForEveryNode(t *testing.T) {
	js := loadJobSet(t)
	spec, c := js.nodes(t)
	w := waitForNodes(t, spec.Template.Spec)
	require.Len(t, w.Command, 3, "sh -c SCRIPT")
	require.Len(t, w.Env, 1)
	assert.Equal(t, "NODES", w.Env[0].Name)
	nodes := strings.Fields(w.Env[0].Value)
	addr, _ := flag(c.Args, "--master-addr")
	var want []string
	for r := range *spec.Completions {
		want = append(want, strings.Replace(addr, "-0-0.", fmt.Sprintf("-0-%d.", r), 1))
	}
	assert.Equal(t, want, nodes, "one name per node, node 0's first")

	// Run the script with a fake getent that resolves the names listed in a file, and a fake
	// sleep that adds node 1's name on its third call (the node was found).
	bin, dir := t.TempDir(), t.TempDir()
	resolved := filepath.Join(dir, "resolved")
	require.NoError(t, os.WriteFile(resolved, []byte(nodes[0]+"\n"), 0o644))
	fakes := map[string]string{
		"getent": `grep -qx "$2" "$FAKE_DIR/resolved"`,
		"sleep": `echo >>"$FAKE_DIR/sleeps"
if [ "$(wc -l <"$FAKE_DIR/sleeps")" -ge 3 ]; then printf '%s\n' $NODES >"$FAKE_DIR/resolved"; fi`,
	}
	for name, body := range fakes {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", w.Command[1:]...)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "FAKE_DIR=" + dir, "NODES=" + w.Env[0].Value}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	sleeps, err := os.ReadFile(filepath.Join(dir, "sleeps"))
	require.NoError(t, err, "the script waited")
	assert.Equal(t, 3, strings.Count(string(sleeps), "\n"), "it waited until node 1 was found, no longer")
}
