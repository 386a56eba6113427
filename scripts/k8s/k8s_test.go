// Tests of job.yaml, the Kubernetes Job for GKE spot node pools: it is decoded into the few
// fields that matter (unknown fields are an error, so a misspelt key fails the test) and checked
// for what makes spottrain survive preemptions there.
package k8s_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type job struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		BackoffLimit         *int   `yaml:"backoffLimit"`
		PodReplacementPolicy string `yaml:"podReplacementPolicy"`
		PodFailurePolicy     struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"podFailurePolicy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
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
		Name     string    `yaml:"name"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type container struct {
	Name      string   `yaml:"name"`
	Image     string   `yaml:"image"`
	Command   []string `yaml:"command"`
	Args      []string `yaml:"args"`
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

func loadJob(t *testing.T) job {
	t.Helper()
	b, err := os.ReadFile("job.yaml")
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var j job
	require.NoError(t, dec.Decode(&j))
	return j
}

// trainer returns the container that runs spottrain.
func trainer(t *testing.T, j job) container {
	t.Helper()
	cs := j.Spec.Template.Spec.Containers
	require.Len(t, cs, 1, "one container")
	require.Equal(t, "train", cs[0].Args[0], "the container runs `spottrain train`")
	return cs[0]
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

// exitCodeRules returns the rules with action whose exit codes (operator In) contain code.
func exitCodeRules(j job, action string, code int) []rule {
	var out []rule
	for _, r := range j.Spec.PodFailurePolicy.Rules {
		if r.Action == action && r.OnExitCodes != nil && r.OnExitCodes.Operator == "In" && slices.Contains(r.OnExitCodes.Values, code) {
			out = append(out, r)
		}
	}
	return out
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

	ignore75 := exitCodeRules(j, "Ignore", 75)
	require.Len(t, ignore75, 1, "exit 75 (preempted after an emergency checkpoint) is ignored: the pod is replaced")
	assert.Equal(t, name, ignore75[0].OnExitCodes.ContainerName)

	fail2 := exitCodeRules(j, "FailJob", 2)
	require.Len(t, fail2, 1, "exit 2 (bad input) fails the job")
	assert.Equal(t, name, fail2[0].OnExitCodes.ContainerName)
	assert.Empty(t, exitCodeRules(j, "Ignore", 2), "exit 2 is never ignored")
	assert.Empty(t, exitCodeRules(j, "FailJob", 75), "exit 75 never fails the job")
	assert.Empty(t, exitCodeRules(j, "Ignore", 1), "real failures count against backoffLimit")

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
	c := trainer(t, j)
	v, ok := setting(c.Args, "checkpoint.remote_grace")
	require.True(t, ok, "the container sets checkpoint.remote_grace: %q", c.Args)
	grace, err := time.ParseDuration(v)
	require.NoError(t, err)
	tgps := j.Spec.Template.Spec.TerminationGracePeriodSeconds
	require.NotNil(t, tgps, "terminationGracePeriodSeconds")
	assert.Greater(t, time.Duration(*tgps)*time.Second, grace,
		"the kubelet must not kill the trainer before its upload gives up (remote_grace %s)", grace)
}

func TestJobTrainsFromTheBucket(t *testing.T) {
	j := loadJob(t)
	c := trainer(t, j)
	assert.Equal(t, "--experiment", c.Args[1])
	assert.NotEmpty(t, c.Args[2])
	remote, ok := setting(c.Args, "checkpoint.remote")
	require.True(t, ok)
	assert.True(t, strings.HasPrefix(remote, "gs://"), "checkpoint.remote %q", remote)
	assert.NotEmpty(t, c.Image)
	assert.NotEmpty(t, j.Spec.Template.Spec.ServiceAccountName, "a service account for Workload Identity")

	emptyDirs := map[string]bool{}
	for _, v := range j.Spec.Template.Spec.Volumes {
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

func TestJobRunsOnSpotGPUNodes(t *testing.T) {
	j := loadJob(t)
	spec := j.Spec.Template.Spec
	assert.Equal(t, "true", spec.NodeSelector["cloud.google.com/gke-spot"])
	tolerated := false
	for _, tol := range spec.Tolerations {
		if tol.Key == "cloud.google.com/gke-spot" && tol.Effect == "NoSchedule" &&
			(tol.Operator == "Exists" || tol.Operator == "Equal" && tol.Value == "true") {
			tolerated = true
		}
	}
	assert.True(t, tolerated, "a toleration for the spot taint")
	assert.Equal(t, "1", fmt.Sprint(trainer(t, j).Resources.Limits["nvidia.com/gpu"]))
}
