// Tests of the Kubernetes manifests for GKE spot node pools: job.yaml (one pod), jobset.yaml and
// pytorchjob.yaml (several nodes). Each is decoded into the few fields that matter (unknown
// fields are an error, so a misspelt key fails the test) and checked for what makes spottrain
// survive preemptions there; the trainer's arguments go through spottrain's own config
// validation. Nothing here talks to a cluster.
package k8s_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"spottrain/configs"
)

type job struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       jobSpec  `yaml:"spec"`
}

type metadata struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

// jobSpec is a batch/v1 Job's spec: job.yaml's, and the template of jobset.yaml's Jobs.
type jobSpec struct {
	CompletionMode       string `yaml:"completionMode"`
	Completions          *int   `yaml:"completions"`
	Parallelism          *int   `yaml:"parallelism"`
	BackoffLimit         *int   `yaml:"backoffLimit"`
	PodReplacementPolicy string `yaml:"podReplacementPolicy"`
	PodFailurePolicy     struct {
		Rules []rule `yaml:"rules"`
	} `yaml:"podFailurePolicy"`
	Template podTemplate `yaml:"template"`
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec podSpec `yaml:"spec"`
}

type rule struct {
	Action      string `yaml:"action"`
	OnExitCodes *struct {
		ContainerName string `yaml:"containerName"`
		Operator      string `yaml:"operator"`
		Values        []int  `yaml:"values"`
	} `yaml:"onExitCodes"`
	OnPodConditions []struct {
		Type   string `yaml:"type"`
		Status string `yaml:"status"`
	} `yaml:"onPodConditions"`
}

type podSpec struct {
	RestartPolicy                 string            `yaml:"restartPolicy"`
	ServiceAccountName            string            `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds *int              `yaml:"terminationGracePeriodSeconds"`
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	Tolerations                   []struct {
		Key      string `yaml:"key"`
		Operator string `yaml:"operator"`
		Value    string `yaml:"value"`
		Effect   string `yaml:"effect"`
	} `yaml:"tolerations"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name     string `yaml:"name"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Resources struct {
		Limits   map[string]any `yaml:"limits"`
		Requests map[string]any `yaml:"requests"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// load decodes the manifest file into v strictly: a field that v does not know is an error, and
// the file holds one document.
func load(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(v), file)
	var more any
	require.ErrorIs(t, dec.Decode(&more), io.EOF, "%s holds one document", file)
}

func loadJob(t *testing.T) job {
	t.Helper()
	var j job
	load(t, "job.yaml", &j)
	return j
}

// trainerIn returns the pod's one container, which runs `spottrain train`.
func trainerIn(t *testing.T, spec podSpec) container {
	t.Helper()
	cs := spec.Containers
	require.Len(t, cs, 1, "one container")
	require.NotEmpty(t, cs[0].Args)
	require.Equal(t, "train", cs[0].Args[0], "the container runs `spottrain train`")
	return cs[0]
}

// trainer returns job.yaml's trainer container.
func trainer(t *testing.T, j job) container {
	t.Helper()
	return trainerIn(t, j.Spec.Template.Spec)
}

// setting returns the value of --set KEY=VALUE (or --set=KEY=VALUE) in args.
func setting(args []string, key string) (string, bool) {
	for i, a := range args {
		kv, ok := strings.CutPrefix(a, "--set=")
		if !ok && a == "--set" && i+1 < len(args) {
			kv, ok = args[i+1], true
		}
		if v, found := strings.CutPrefix(kv, key+"="); ok && found {
			return v, true
		}
	}
	return "", false
}

// flag returns the value of --name VALUE (or --name=VALUE) in args.
func flag(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// exitCodeRules returns the rules with action whose exit codes (operator In) contain code.
func exitCodeRules(spec jobSpec, action string, code int) []rule {
	var out []rule
	for _, r := range spec.PodFailurePolicy.Rules {
		if r.Action == action && r.OnExitCodes != nil && r.OnExitCodes.Operator == "In" && slices.Contains(r.OnExitCodes.Values, code) {
			out = append(out, r)
		}
	}
	return out
}

// groupKeys are spottrain train's group flags and the keys of the distributed section they set
// (cmd/spottrain/configflags.go).
var groupKeys = map[string]string{
	"--nproc-per-node": "nproc_per_node",
	"--nnodes":         "nnodes",
	"--node-rank":      "node_rank",
	"--master-addr":    "master_addr",
	"--master-port":    "master_port",
}

// trainConfig returns the config that `spottrain ARGS` (ARGS starting with train --experiment)
// trains, loaded and validated as spottrain does: the experiment of the built-in config tree,
// the --set overrides, then the group flags' keys. An argument that is no flag of train known
// here fails the test.
func trainConfig(t *testing.T, args []string) (configs.Config, error) {
	t.Helper()
	require.NotEmpty(t, args)
	require.Equal(t, "train", args[0])
	var experiment string
	var sets, group []string
	for i := 1; i < len(args); i++ {
		name, value, inline := strings.Cut(args[i], "=")
		if !inline {
			require.Less(t, i+1, len(args), "%s needs a value", name)
			i++
			value = args[i]
		}
		switch key, ok := groupKeys[name]; {
		case name == "--experiment":
			experiment = value
		case name == "--set":
			sets = append(sets, value)
		case ok:
			group = append(group, "distributed."+key+"="+value)
		default:
			t.Fatalf("argument %q: not a flag of spottrain train that this test knows", args[i])
		}
	}
	require.NotEmpty(t, experiment, "--experiment")
	return configs.Builtin().Experiment(experiment, append(sets, group...))
}

// checkSpotNodes asserts that the pod runs on spot nodes, tainted or not.
func checkSpotNodes(t *testing.T, spec podSpec) {
	t.Helper()
	assert.Equal(t, "true", spec.NodeSelector["cloud.google.com/gke-spot"], "a spot node selector")
	tolerated := false
	for _, tol := range spec.Tolerations {
		if tol.Key == "cloud.google.com/gke-spot" && tol.Effect == "NoSchedule" &&
			(tol.Operator == "Exists" || tol.Operator == "Equal" && tol.Value == "true") {
			tolerated = true
		}
	}
	assert.True(t, tolerated, "a toleration for the spot taint")
}

// gpus returns the container's limit of nvidia.com/gpu.
func gpus(t *testing.T, c container) int {
	t.Helper()
	n, err := strconv.Atoi(fmt.Sprint(c.Resources.Limits["nvidia.com/gpu"]))
	require.NoError(t, err, "an nvidia.com/gpu limit")
	return n
}

// checkGracePeriod asserts that the kubelet gives the trainer longer than its upload's grace.
func checkGracePeriod(t *testing.T, spec podSpec, c container) {
	t.Helper()
	v, ok := setting(c.Args, "checkpoint.remote_grace")
	require.True(t, ok, "the container sets checkpoint.remote_grace: %q", c.Args)
	grace, err := time.ParseDuration(v)
	require.NoError(t, err)
	tgps := spec.TerminationGracePeriodSeconds
	require.NotNil(t, tgps, "terminationGracePeriodSeconds")
	assert.Greater(t, time.Duration(*tgps)*time.Second, grace,
		"the kubelet must not kill the trainer before its upload gives up (remote_grace %s)", grace)
}

// checkRunDirs asserts that the run dirs are node-local scratch, checkpoints go to the bucket
// and the pod has a service account for Workload Identity.
func checkRunDirs(t *testing.T, spec podSpec, c container) {
	t.Helper()
	remote, ok := setting(c.Args, "checkpoint.remote")
	require.True(t, ok, "checkpoint.remote")
	assert.True(t, strings.HasPrefix(remote, "gs://"), "checkpoint.remote %q", remote)
	assert.NotEmpty(t, spec.ServiceAccountName, "a service account for Workload Identity")

	emptyDirs := map[string]bool{}
	for _, v := range spec.Volumes {
		emptyDirs[v.Name] = v.EmptyDir != nil
	}
	runs := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/work/runs" {
			runs = true
			assert.True(t, emptyDirs[m.Name], "/work/runs is an emptyDir: node-local, the remote keeps the checkpoints")
			assert.False(t, m.ReadOnly)
		}
	}
	assert.True(t, runs, "a volume on /work/runs")
}

// checkSharedMemory asserts that /dev/shm is a memory-backed emptyDir larger than a container's
// default 64 MB, which NCCL needs between the GPUs of one pod.
func checkSharedMemory(t *testing.T, spec podSpec, c container) {
	t.Helper()
	var name string
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/dev/shm" {
			name = m.Name
		}
	}
	require.NotEmpty(t, name, "a volume on /dev/shm")
	for _, v := range spec.Volumes {
		if v.Name == name {
			require.NotNil(t, v.EmptyDir)
			assert.Equal(t, "Memory", v.EmptyDir.Medium)
			assert.Regexp(t, `^[1-9][0-9]*Gi$`, v.EmptyDir.SizeLimit, "at least a GiB")
			return
		}
	}
	t.Errorf("no volume %s", name)
}

// checkPlaceholders asserts that the sed of README.md fills in file: the trainers' images are the
// line `image: IMAGE`, and every gs:// URL is in gs://BUCKET/.
func checkPlaceholders(t *testing.T, file string, trainers []container) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	for _, c := range trainers {
		assert.Equal(t, "IMAGE", c.Image)
	}
	assert.Len(t, regexp.MustCompile(`(?m)image: IMAGE$`).FindAll(b, -1), len(trainers), "sed replaces `image: IMAGE` at the end of a line")
	urls := regexp.MustCompile(`gs://[^\s,\]"']*`).FindAll(b, -1)
	assert.NotEmpty(t, urls)
	for _, u := range urls {
		assert.True(t, strings.HasPrefix(string(u), "gs://BUCKET/"), "%s: sed replaces gs://BUCKET/ only", u)
	}
}

func TestJobKind(t *testing.T) {
	j := loadJob(t)
	assert.Equal(t, "batch/v1", j.APIVersion)
	assert.Equal(t, "Job", j.Kind)
	assert.NotEmpty(t, j.Metadata.Name)
	assert.Equal(t, "Never", j.Spec.Template.Spec.RestartPolicy, "podFailurePolicy requires restartPolicy Never")
	require.NotNil(t, j.Spec.BackoffLimit, "backoffLimit bounds the retries of real failures")
	assert.Positive(t, *j.Spec.BackoffLimit)
	assert.Equal(t, "Failed", j.Spec.PodReplacementPolicy, "no second trainer while the first uploads its emergency checkpoint")
}

func TestJobPodFailurePolicy(t *testing.T) {
	j := loadJob(t)
	name := trainer(t, j).Name

	ignore75 := exitCodeRules(j.Spec, "Ignore", 75)
	require.Len(t, ignore75, 1, "exit 75 (preempted after an emergency checkpoint) is ignored: the pod is replaced")
	assert.Equal(t, name, ignore75[0].OnExitCodes.ContainerName)

	fail2 := exitCodeRules(j.Spec, "FailJob", 2)
	require.Len(t, fail2, 1, "exit 2 (bad input) fails the job")
	assert.Equal(t, name, fail2[0].OnExitCodes.ContainerName)
	assert.Empty(t, exitCodeRules(j.Spec, "Ignore", 2), "exit 2 is never ignored")
	assert.Empty(t, exitCodeRules(j.Spec, "FailJob", 75), "exit 75 never fails the job")
	assert.Empty(t, exitCodeRules(j.Spec, "Ignore", 1), "real failures count against backoffLimit")

	disruption := false
	for _, r := range j.Spec.PodFailurePolicy.Rules {
		for _, c := range r.OnPodConditions {
			if c.Type == "DisruptionTarget" && (c.Status == "" || c.Status == "True") {
				assert.Equal(t, "Ignore", r.Action, "a pod whose node went away is replaced, not counted")
				disruption = true
			}
		}
	}
	assert.True(t, disruption, "a rule for the DisruptionTarget condition")
}

func TestJobGracePeriodCoversRemoteGrace(t *testing.T) {
	j := loadJob(t)
	checkGracePeriod(t, j.Spec.Template.Spec, trainer(t, j))
}

func TestJobTrainsFromTheBucket(t *testing.T) {
	j := loadJob(t)
	c := trainer(t, j)
	assert.Equal(t, "--experiment", c.Args[1])
	assert.NotEmpty(t, c.Args[2])
	checkRunDirs(t, j.Spec.Template.Spec, c)
	checkPlaceholders(t, "job.yaml", []container{c})

	cfg, err := trainConfig(t, c.Args)
	require.NoError(t, err, "spottrain accepts the arguments")
	assert.Equal(t, 1, cfg.Distributed.NNodes)
	assert.True(t, strings.HasPrefix(cfg.RemoteURL(), "gs://BUCKET/"), cfg.RemoteURL())
}

func TestJobRunsOnSpotGPUNodes(t *testing.T) {
	j := loadJob(t)
	checkSpotNodes(t, j.Spec.Template.Spec)
	assert.Equal(t, 1, gpus(t, trainer(t, j)))
}
