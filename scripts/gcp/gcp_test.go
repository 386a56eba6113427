// Tests of the scripts in scripts/gcp against fakes: the test binary doubles as `gcloud`, `docker`
// and `nvidia-smi` (symlinks to it, first on PATH; TestMain dispatches on the name it was run
// as). Each fake appends its arguments to FAKE_STATE/calls.jsonl as a JSON array and answers from
// files in FAKE_STATE that the test writes: the VM's status and zone, how many starts fail, the
// remote event log, the buckets, the quotas, the container's state. startup.sh reads its metadata
// with the real curl from an httptest server (GCE_METADATA_HOST). Nothing leaves loopback.
package gcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "gcloud":
		os.Exit(fakeGcloud(os.Args[1:]))
	case "docker":
		os.Exit(fakeDocker(os.Args[1:]))
	case "nvidia-smi":
		os.Exit(fakeNvidiaSmi(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// ---- the fakes (run as their own processes) ----

type fakeState string // the FAKE_STATE directory

func openState(cmd string, args []string) fakeState {
	dir := os.Getenv("FAKE_STATE")
	if dir == "" {
		fmt.Fprintln(os.Stderr, "fake "+cmd+": FAKE_STATE is not set")
		os.Exit(97)
	}
	s := fakeState(dir)
	line, err := json.Marshal(call{Cmd: cmd, Args: args})
	s.check(err)
	f, err := os.OpenFile(s.path("calls.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	s.check(err)
	_, err = f.Write(append(line, '\n'))
	s.check(err)
	s.check(f.Close())
	return s
}

func (s fakeState) path(name string) string { return filepath.Join(string(s), name) }

func (s fakeState) check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		os.Exit(96)
	}
}

func (s fakeState) read(name string) (string, bool) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	s.check(err)
	return string(b), true
}

func (s fakeState) readOr(name, def string) string {
	if v, ok := s.read(name); ok {
		return strings.TrimSpace(v)
	}
	return def
}

func (s fakeState) write(name, content string) {
	s.check(os.WriteFile(s.path(name), []byte(content), 0o644))
}

func (s fakeState) remove(name string) {
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.check(err)
	}
}

// take decrements the counter in file name and reports whether it was above 0.
func (s fakeState) take(name string) bool {
	v, ok := s.read(name)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	s.check(err)
	if n <= 0 {
		return false
	}
	s.write(name, strconv.Itoa(n-1))
	return true
}

// positional returns the arguments that are no flags (gcloud's flags are all --name=value or
// bare --name in the scripts: a flag with its value in the next argument would shift these and
// make the fake answer "unexpected command").
func positional(args []string) []string {
	var pos []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
		}
	}
	return pos
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func fakeGcloud(args []string) int {
	s := openState("gcloud", args)
	pos := positional(args)
	is := func(words ...string) bool { return len(pos) >= len(words) && slices.Equal(pos[:len(words)], words) }
	arg := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	zone, _ := flagValue(args, "--zone")
	project, _ := flagValue(args, "--project")
	vmHere := func() bool {
		_, ok := s.read("vm-status")
		return ok && arg(3) == s.readOr("vm-name", "spottrain") && zone == s.readOr("vm-zone", "")
	}
	notFound := func(what string) int {
		fmt.Fprintf(os.Stderr, "ERROR: (gcloud.%s) Could not fetch resource:\n - The resource 'projects/%s/%s' was not found\n\n",
			strings.Join(pos[:3], "."), project, what)
		return 1
	}
	switch {
	case is("config", "get-value", "project"):
		if v, ok := s.read("project"); ok {
			fmt.Println(strings.TrimSpace(v))
		} else {
			fmt.Fprintln(os.Stderr, "(unset)")
		}
	case is("projects", "describe"):
		fmt.Println(s.readOr("project-number", "123456789012"))
	case is("storage", "buckets", "describe"):
		if "gs://"+s.readOr("bucket", "") != arg(3) {
			fmt.Fprintf(os.Stderr, "ERROR: (gcloud.storage.buckets.describe) %s not found: 404.\n", arg(3))
			return 1
		}
		fmt.Println(strings.TrimPrefix(arg(3), "gs://"))
	case is("storage", "buckets", "create"):
		s.write("bucket", strings.TrimPrefix(arg(3), "gs://"))
	case is("storage", "buckets", "add-iam-policy-binding"):
		fmt.Println("bindings: []")
	case is("storage", "cat"):
		v, ok := s.read("events")
		if !ok {
			fmt.Fprintf(os.Stderr, "ERROR: (gcloud.storage.cat) The following URLs matched no objects or files:\n-%s\n", arg(2))
			return 1
		}
		fmt.Print(v)
	case is("storage", "cp"):
		s.check(os.WriteFile(arg(3), []byte("data from "+arg(2)), 0o644))
	case is("storage", "rm"):
		if "gs://"+s.readOr("bucket", "") != arg(2) {
			fmt.Fprintf(os.Stderr, "ERROR: (gcloud.storage.rm) %s not found: 404.\n", arg(2))
			return 1
		}
		s.remove("bucket")
	case is("compute", "accelerator-types", "list"):
		fmt.Print(s.readOr("accelerator-zones", ""), "\n")
	case is("compute", "regions", "describe"):
		v, ok := s.read("quota-" + arg(3))
		if !ok {
			return notFound("regions/" + arg(3))
		}
		fmt.Print(v)
	case is("compute", "instances", "describe"):
		if !vmHere() {
			return notFound("zones/" + zone + "/instances/" + arg(3))
		}
		fmt.Println(s.readOr("vm-status", ""))
	case is("compute", "instances", "create"):
		if vmHere() {
			fmt.Fprintf(os.Stderr, "ERROR: (gcloud.compute.instances.create) The resource 'projects/%s/zones/%s/instances/%s' already exists\n", project, zone, arg(3))
			return 1
		}
		if _, ok := s.read("create-fail-" + zone); ok {
			fmt.Fprintf(os.Stderr, "ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill the request. (ZONE_RESOURCE_POOL_EXHAUSTED)\n", project, zone)
			return 1
		}
		s.write("vm-status", "RUNNING")
		s.write("vm-zone", zone)
		s.write("vm-name", arg(3))
		s.booted()
	case is("compute", "instances", "start"):
		if !vmHere() {
			return notFound("zones/" + zone + "/instances/" + arg(3))
		}
		if s.take("start-failures") {
			fmt.Fprintf(os.Stderr, "ERROR: (gcloud.compute.instances.start) Could not fetch resource:\n - The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill the request.  '(resource type:compute)'. ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS\n", project, zone)
			return 1
		}
		s.write("vm-status", "RUNNING")
		s.booted()
	case is("compute", "instances", "delete"):
		if !vmHere() {
			return notFound("zones/" + zone + "/instances/" + arg(3))
		}
		s.remove("vm-status")
		s.remove("vm-zone")
	case is("auth", "configure-docker"):
	default:
		fmt.Fprintf(os.Stderr, "fake gcloud: unexpected command %q\n", args)
		return 98
	}
	return 0
}

// booted plays a VM that starts and trains: the event log becomes events-after-boot.
func (s fakeState) booted() {
	if v, ok := s.read("events-after-boot"); ok {
		s.write("events", v)
	}
}

// The container's state is the file "container": "STATUS EXITCODE SPEC".
func fakeDocker(args []string) int {
	s := openState("docker", args)
	if len(args) == 0 {
		return 98
	}
	container, exists := s.read("container")
	noSuch := func() int {
		fmt.Fprintln(os.Stderr, "Error response from daemon: No such container: spottrain")
		return 1
	}
	setState := func(status, code string) {
		f := strings.Fields(container)
		s.write("container", status+" "+code+" "+f[2])
	}
	switch args[0] {
	case "info":
		fmt.Println("Server Version: fake")
	case "inspect":
		if !exists {
			fmt.Fprintln(os.Stderr, "Error: No such object: spottrain")
			return 1
		}
		fmt.Println(strings.TrimSpace(container))
	case "run":
		if exists {
			fmt.Fprintln(os.Stderr, `docker: Error response from daemon: Conflict. The container name "/spottrain" is already in use.`)
			return 125
		}
		spec := "<no value>"
		if i := slices.Index(args, "--label"); i >= 0 && i+1 < len(args) {
			spec = strings.TrimPrefix(args[i+1], "spottrain.spec=")
		}
		s.write("container", "running 0 "+spec)
		fmt.Println("0123456789ab")
	case "start":
		if !exists {
			return noSuch()
		}
		setState("running", "0")
		fmt.Println("spottrain")
	case "stop":
		if !exists {
			return noSuch()
		}
		setState("exited", "75")
		fmt.Println("spottrain")
	case "rm":
		if !exists {
			return noSuch()
		}
		s.remove("container")
		fmt.Println("spottrain")
	default:
		fmt.Fprintf(os.Stderr, "fake docker: unexpected command %q\n", args)
		return 98
	}
	return 0
}

// fakeNvidiaSmi fails while the counter nvidia-failures lasts; then -L lists the number of GPUs
// in the file gpus (default 1; 0: "No devices were found", status 6, as the real one).
func fakeNvidiaSmi(args []string) int {
	s := openState("nvidia-smi", args)
	if s.take("nvidia-failures") {
		fmt.Fprintln(os.Stderr, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
		return 9
	}
	if slices.Equal(args, []string{"-L"}) {
		n, err := strconv.Atoi(s.readOr("gpus", "1"))
		s.check(err)
		if n == 0 {
			fmt.Println("No devices were found")
			return 6
		}
		for i := range n {
			fmt.Printf("GPU %d: NVIDIA L4 (UUID: GPU-fake-%d)\n", i, i)
		}
		return 0
	}
	fmt.Println("| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |")
	return 0
}

// ---- the harness ----

type call struct {
	Cmd  string   `json:"cmd"`
	Args []string `json:"args"`
}

type harness struct {
	t     *testing.T
	dir   string // scripts/gcp, absolute
	state fakeState
	env   map[string]string
}

type result struct {
	code           int
	stdout, stderr string
}

// newHarness gives the scripts a PATH with the fakes first and a clean environment (PATH, HOME,
// LC_ALL, FAKE_STATE, PROJECT, GORACE), so the settings of whoever runs the tests do not leak in.
func newHarness(t *testing.T) *harness {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	bin := t.TempDir()
	for _, name := range []string{"gcloud", "docker", "nvidia-smi"} {
		require.NoError(t, os.Symlink(exe, filepath.Join(bin, name)))
	}
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	h := &harness{t: t, dir: dir, state: fakeState(t.TempDir())}
	h.env = map[string]string{
		"PATH":       bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME":       t.TempDir(),
		"LC_ALL":     "C",
		"FAKE_STATE": string(h.state),
		"PROJECT":    "proj-test",
		// A fake built with -race would sleep 1 s at each exit (atexit_sleep_ms=1000).
		"GORACE": "atexit_sleep_ms=0",
	}
	return h
}

func (h *harness) set(kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		h.env[kv[i]] = kv[i+1]
	}
}

func (h *harness) write(name, content string) {
	h.t.Helper()
	require.NoError(h.t, os.WriteFile(h.state.path(name), []byte(content), 0o644))
}

func (h *harness) exists(name string) bool {
	_, err := os.Stat(h.state.path(name))
	return err == nil
}

func (h *harness) run(script, stdin string, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.dir, script), args...)
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		h.t.Fatalf("%s timed out\nstdout:\n%s\nstderr:\n%s", script, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		h.t.Fatalf("running %s: %v", script, err)
	}
	return r
}

// calls returns the recorded calls of cmd whose positional arguments start with words.
func (h *harness) calls(cmd string, words ...string) [][]string {
	h.t.Helper()
	b, err := os.ReadFile(h.state.path("calls.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(h.t, err)
	var out [][]string
	for line := range strings.Lines(string(b)) {
		var c call
		require.NoError(h.t, json.Unmarshal([]byte(line), &c))
		pos := c.Args
		if cmd == "gcloud" {
			pos = positional(c.Args)
		}
		if c.Cmd == cmd && len(pos) >= len(words) && slices.Equal(pos[:len(words)], words) {
			out = append(out, c.Args)
		}
	}
	return out
}

// one returns the only call of cmd with words.
func (h *harness) one(cmd string, words ...string) []string {
	h.t.Helper()
	c := h.calls(cmd, words...)
	require.Len(h.t, c, 1, "calls of %s %v", cmd, words)
	return c[0]
}

// mutations counts the gcloud calls that change something.
func (h *harness) mutations() int {
	n := 0
	for _, words := range [][]string{
		{"compute", "instances", "create"}, {"compute", "instances", "start"}, {"compute", "instances", "delete"},
		{"storage", "buckets", "create"}, {"storage", "buckets", "add-iam-policy-binding"}, {"storage", "rm"},
	} {
		n += len(h.calls("gcloud", words...))
	}
	return n
}

// oneLine asserts that s is exactly one line containing want.
func oneLine(t *testing.T, s, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	assert.Len(t, lines, 1, "want one line, got %q", s)
	assert.Contains(t, s, want)
}

// parseDict reads a gcloud dict flag value: KEY=VALUE items separated by commas, or by DELIM
// when the value starts with ^DELIM^ (gcloud topic escaping).
func parseDict(v string) map[string]string {
	delim := ","
	if strings.HasPrefix(v, "^") {
		if i := strings.Index(v[1:], "^"); i > 0 {
			delim, v = v[1:1+i], v[2+i:]
		}
	}
	m := map[string]string{}
	for item := range strings.SplitSeq(v, delim) {
		k, val, _ := strings.Cut(item, "=")
		m[k] = val
	}
	return m
}

// after returns the argument after the first occurrence of name in args ("" if none).
func after(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// ---- shellcheck and help ----

// TestShellcheck runs shellcheck on every shell script of the project: scripts/*.sh,
// scripts/*/*.sh (these here among them) and .ci/run.
func TestShellcheck(t *testing.T) {
	path, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: apt-get install shellcheck (make test installs it)")
	}
	var files []string
	for _, pattern := range []string{"../*.sh", "../*/*.sh", "../../.ci/run"} {
		more, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, more...)
	}
	require.Contains(t, files, "../gcp/startup.sh")
	require.Contains(t, files, "../gpu-check.sh")
	require.Contains(t, files, "../../.ci/run")
	out, err := exec.Command(path, append([]string{"--external-sources", "--format=gcc"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck %v: %v\n%s", files, err, out)
	}
}

func TestHelpAndArguments(t *testing.T) {
	for _, script := range []string{"bucket.sh", "capacity.sh", "create-vm.sh", "startup.sh", "teardown.sh", "watch.sh"} {
		t.Run(script, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(script, "", "--help")
			assert.Equal(t, 0, r.code, r.stderr)
			assert.True(t, strings.HasPrefix(r.stdout, script+": "), "usage starts with the script's name: %q", r.stdout)
			assert.Contains(t, r.stdout, "Exit status")
			assert.NotContains(t, r.stdout, "set -euo pipefail", "usage stops at the end of the header")
			assert.NotContains(t, r.stdout, "shellcheck", "usage stops at the end of the header")
			assert.Empty(t, h.calls("gcloud"), "--help calls nothing")
			if script != "startup.sh" {
				r = h.run(script, "", "--bogus")
				assert.Equal(t, 2, r.code)
				oneLine(t, r.stderr, "--bogus")
			}
		})
	}
}

// ---- settings ----

func TestMissingOrInvalidSettings(t *testing.T) {
	full := []string{"BUCKET", "bkt", "IMAGE", "us-central1-docker.pkg.dev/proj-test/spottrain/spottrain:cuda"}
	for _, tc := range []struct {
		name, script, want string
		args               []string
		env                []string
	}{
		{name: "create without IMAGE", script: "create-vm.sh", env: []string{"IMAGE", ""}, want: "IMAGE is not set"},
		{name: "create without BUCKET", script: "create-vm.sh", env: []string{"BUCKET", ""}, want: "BUCKET is not set"},
		{name: "bucket without BUCKET", script: "bucket.sh", env: []string{"BUCKET", ""}, want: "BUCKET is not set"},
		{name: "watch without BUCKET", script: "watch.sh", env: []string{"BUCKET", ""}, want: "BUCKET is not set"},
		{name: "teardown --delete-bucket without BUCKET", script: "teardown.sh", args: []string{"--delete-bucket", "--yes"}, env: []string{"BUCKET", ""}, want: "BUCKET is not set"},
		{name: "no project anywhere", script: "capacity.sh", env: []string{"PROJECT", ""}, want: "PROJECT is not set"},
		{name: "bucket as URL", script: "bucket.sh", env: []string{"BUCKET", "gs://bkt"}, want: "BUCKET"},
		{name: "GPU_COUNT", script: "create-vm.sh", env: []string{"GPU_COUNT", "two"}, want: "GPU_COUNT"},
		{name: "GPU_COUNT against the machine type", script: "create-vm.sh", env: []string{"MACHINE_TYPE", "a3-highgpu-8g", "GPU_COUNT", "1"}, want: "GPU_COUNT is 1, but MACHINE_TYPE a3-highgpu-8g comes with 8 GPUs"},
		{name: "ZONE", script: "create-vm.sh", env: []string{"ZONE", "uscentral1"}, want: "ZONE"},
		{name: "REMOTE_GRACE above GCP's 30 s", script: "create-vm.sh", env: []string{"REMOTE_GRACE", "30"}, want: "REMOTE_GRACE"},
		{name: "fallback without IMAGE", script: "watch.sh", env: []string{"IMAGE", "", "FALLBACK_ZONES", "us-east1-b"}, want: "IMAGE is not set"},
		{name: "fallback zone", script: "watch.sh", env: []string{"FALLBACK_ZONES", "us-east1-b europe"}, want: "FALLBACK_ZONES"},
		{name: "WATCH_INTERVAL", script: "watch.sh", env: []string{"WATCH_INTERVAL", "1m"}, want: "WATCH_INTERVAL"},
		{name: "ZONES", script: "capacity.sh", env: []string{"ZONES", "us-central1-a nowhere"}, want: "ZONES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.set(full...)
			h.set(tc.env...)
			r := h.run(tc.script, "", tc.args...)
			assert.Equal(t, 2, r.code, "stdout: %s", r.stdout)
			oneLine(t, r.stderr, tc.want)
			assert.True(t, strings.HasPrefix(r.stderr, tc.script+": "), "the error names the script: %q", r.stderr)
			assert.Zero(t, h.mutations(), "nothing is changed after a bad setting")
		})
	}
}

// ---- bucket.sh ----

func TestBucketCreatesOnceAndGrants(t *testing.T) {
	h := newHarness(t)
	h.set("PROJECT", "", "BUCKET", "bkt", "ZONE", "europe-west4-b")
	h.write("project", "cfg-proj\n") // PROJECT from gcloud's config
	for range 2 {
		r := h.run("bucket.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
	}
	create := h.one("gcloud", "storage", "buckets", "create") // the second run found it
	assert.Equal(t, []string{"storage", "buckets", "create", "gs://bkt"}, positional(create))
	assert.Contains(t, create, "--project=cfg-proj")
	assert.Contains(t, create, "--location=europe-west4")
	assert.Contains(t, create, "--uniform-bucket-level-access")
	assert.Len(t, h.calls("gcloud", "storage", "buckets", "describe", "gs://bkt"), 2)

	binds := h.calls("gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://bkt")
	require.Len(t, binds, 2, "the role is bound at every run")
	assert.Contains(t, binds[0], "--member=serviceAccount:123456789012-compute@developer.gserviceaccount.com")
	assert.Contains(t, binds[0], "--role=roles/storage.objectAdmin")
	describes := h.calls("gcloud", "projects", "describe", "cfg-proj")
	require.Len(t, describes, 2)
	assert.Contains(t, describes[0], "--format=value(projectNumber)")
}

func TestBucketExistsUsesServiceAccount(t *testing.T) {
	h := newHarness(t)
	h.set("BUCKET", "bkt", "SERVICE_ACCOUNT", "trainer@proj-test.iam.gserviceaccount.com")
	h.write("bucket", "bkt")
	r := h.run("bucket.sh", "")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, h.calls("gcloud", "storage", "buckets", "create"), "an existing bucket is not created")
	assert.Empty(t, h.calls("gcloud", "projects", "describe"), "SERVICE_ACCOUNT needs no project number")
	bind := h.one("gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://bkt")
	assert.Contains(t, bind, "--member=serviceAccount:trainer@proj-test.iam.gserviceaccount.com")
	assert.Contains(t, bind, "--role=roles/storage.objectAdmin")
}

// ---- capacity.sh ----

// table returns capacity.sh's rows by zone: the fields after the zone.
func table(t *testing.T, stdout string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	for line := range strings.Lines(stdout) {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] != "ZONE" {
			rows[f[0]] = f[1:]
		}
	}
	return rows
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func capacityHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.write("accelerator-zones", "us-central1-a\nus-central1-b\neurope-west4-a\nus-east4-a\n")
	h.write("quota-us-east1", "CPUS\t24.0\t0.0\nPREEMPTIBLE_NVIDIA_L4_GPUS\t8.0\t0.0\n")
	// Preemptible quota exists and is used up: the regular quota's room does not count.
	h.write("quota-us-central1", "CPUS\t24.0\t0.0\nPREEMPTIBLE_NVIDIA_L4_GPUS\t2.0\t2.0\nNVIDIA_L4_GPUS\t8.0\t0.0\n")
	// Preemptible quota 0: spot VMs use the regular quota.
	h.write("quota-europe-west4", "PREEMPTIBLE_NVIDIA_L4_GPUS\t0.0\t0.0\nNVIDIA_L4_GPUS\t4.0\t1.0\n")
	h.write("quota-us-east4", "PREEMPTIBLE_NVIDIA_L4_GPUS\t16.0\t0.0\n")
	return h
}

func TestCapacityPicksFirstZoneWithFreeQuota(t *testing.T) {
	h := capacityHarness(t)
	h.set("ZONES", "us-east1-b us-central1-a us-central1-b europe-west4-a us-east4-a", "GPU_COUNT", "2")
	r := h.run("capacity.sh", "")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "zone: europe-west4-a", lastLine(r.stdout))
	rows := table(t, r.stdout)
	assert.Equal(t, []string{"no", "PREEMPTIBLE_NVIDIA_L4_GPUS", "8", "0", "8"}, rows["us-east1-b"], "quota but no L4 there")
	assert.Equal(t, []string{"yes", "PREEMPTIBLE_NVIDIA_L4_GPUS", "2", "2", "0"}, rows["us-central1-a"])
	assert.Equal(t, []string{"yes", "PREEMPTIBLE_NVIDIA_L4_GPUS", "2", "2", "0"}, rows["us-central1-b"])
	assert.Equal(t, []string{"yes", "NVIDIA_L4_GPUS", "4", "1", "3"}, rows["europe-west4-a"])
	assert.Equal(t, []string{"yes", "PREEMPTIBLE_NVIDIA_L4_GPUS", "16", "0", "16"}, rows["us-east4-a"])

	assert.Contains(t, h.one("gcloud", "compute", "accelerator-types", "list"), "--filter=name=nvidia-l4")
	describe := h.one("gcloud", "compute", "regions", "describe", "us-central1") // once for two zones
	assert.Contains(t, describe, "--flatten=quotas")
	assert.Contains(t, describe, "--format=value(quotas.metric,quotas.limit,quotas.usage)")
}

func TestCapacityOtherGPUType(t *testing.T) {
	h := newHarness(t)
	h.set("ZONES", "us-central1-a", "GPU_TYPE", "nvidia-tesla-t4")
	h.write("accelerator-zones", "us-central1-a\n")
	h.write("quota-us-central1", "NVIDIA_T4_GPUS\t4.0\t0.0\nPREEMPTIBLE_NVIDIA_T4_GPUS\t1.0\t0.0\n")
	r := h.run("capacity.sh", "")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"yes", "PREEMPTIBLE_NVIDIA_T4_GPUS", "1", "0", "1"}, table(t, r.stdout)["us-central1-a"])
	assert.Equal(t, "zone: us-central1-a", lastLine(r.stdout))
}

// TestCapacityCountsTheMachineTypesGPUs: g2-standard-48 has 4 L4s, which must fit the quota.
func TestCapacityCountsTheMachineTypesGPUs(t *testing.T) {
	h := capacityHarness(t)
	h.set("ZONES", "us-central1-a europe-west4-a us-east4-a", "MACHINE_TYPE", "g2-standard-48")
	r := h.run("capacity.sh", "")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "zone: us-east4-a", lastLine(r.stdout), "europe-west4-a has 3 free, not 4")
}

func TestCapacityNoZoneFits(t *testing.T) {
	h := capacityHarness(t)
	h.set("ZONES", "us-east1-b us-central1-a europe-west4-a", "GPU_COUNT", "4")
	r := h.run("capacity.sh", "")
	assert.Equal(t, 1, r.code)
	oneLine(t, r.stderr, "no zone of ZONES offers nvidia-l4 with 4 free GPU quota")
	assert.NotContains(t, r.stdout, "zone:")
	assert.Len(t, table(t, r.stdout), 3, "the table is printed anyway")
}

// ---- create-vm.sh ----

func TestCreateVM(t *testing.T) {
	const image = "us-central1-docker.pkg.dev/proj-test/spottrain/spottrain:cuda"
	const trainArgs = "--set train.epochs=10 --set schedule.milestones=10,20"
	h := newHarness(t)
	h.set("BUCKET", "bkt", "IMAGE", image, "EXPERIMENT", "resnet50-fixed-poisson", "TRAIN_ARGS", trainArgs,
		"DATA", "gs://bkt/data/cifar-100-binary.tar.gz")
	r := h.run("create-vm.sh", "")
	require.Equal(t, 0, r.code, r.stderr)
	create := h.one("gcloud", "compute", "instances", "create", "spottrain")
	for _, want := range []string{
		"--project=proj-test", "--zone=us-central1-a", "--machine-type=g2-standard-8",
		"--provisioning-model=SPOT", "--instance-termination-action=STOP", "--maintenance-policy=TERMINATE",
		"--image-family=common-cu124-debian-11", "--image-project=deeplearning-platform-release",
		"--boot-disk-size=100GB", "--scopes=cloud-platform",
	} {
		assert.Contains(t, create, want)
	}
	for _, a := range create {
		assert.False(t, strings.HasPrefix(a, "--accelerator"), "g2-standard-8 comes with its L4: %s", a)
		assert.False(t, strings.HasPrefix(a, "--service-account"), a)
	}

	md, ok := flagValue(create, "--metadata")
	require.True(t, ok)
	assert.True(t, strings.HasPrefix(md, "^"), "a comma in TRAIN_ARGS needs gcloud's ^DELIM^ escaping: %q", md)
	assert.Equal(t, map[string]string{
		"spottrain-image":       image,
		"spottrain-experiment":  "resnet50-fixed-poisson",
		"spottrain-remote":      "gs://bkt/spottrain",
		"spottrain-grace":       "25",
		"spottrain-args":        trainArgs,
		"spottrain-data":        "gs://bkt/data/cifar-100-binary.tar.gz",
		"spottrain-gpus":        "1",
		"install-nvidia-driver": "True",
	}, parseDict(md))

	files, ok := flagValue(create, "--metadata-from-file")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"startup-script": filepath.Join(h.dir, "startup.sh")}, parseDict(files))
}

func TestCreateVMOnN1WithAcceleratorAndServiceAccount(t *testing.T) {
	h := newHarness(t)
	h.set("BUCKET", "bkt", "IMAGE", "spottrain:cuda", "MACHINE_TYPE", "n1-standard-8", "GPU_TYPE", "nvidia-tesla-t4",
		"GPU_COUNT", "2", "SERVICE_ACCOUNT", "trainer@proj-test.iam.gserviceaccount.com", "ZONE", "us-east1-c",
		"VM_NAME", "trainer-1", "REMOTE_PREFIX", "ckpt/exp1", "REMOTE_GRACE", "20")
	r := h.run("create-vm.sh", "")
	require.Equal(t, 0, r.code, r.stderr)
	create := h.one("gcloud", "compute", "instances", "create", "trainer-1")
	assert.Contains(t, create, "--accelerator=type=nvidia-tesla-t4,count=2")
	assert.Contains(t, create, "--service-account=trainer@proj-test.iam.gserviceaccount.com")
	assert.Contains(t, create, "--zone=us-east1-c")
	md, _ := flagValue(create, "--metadata")
	assert.False(t, strings.HasPrefix(md, "^"), "no comma, no escaping: %q", md)
	m := parseDict(md)
	assert.Equal(t, "gs://bkt/ckpt/exp1", m["spottrain-remote"])
	assert.Equal(t, "20", m["spottrain-grace"])
	assert.Equal(t, "2", m["spottrain-gpus"], "GPU_COUNT")
	assert.NotContains(t, m, "spottrain-args")
	assert.NotContains(t, m, "spottrain-data")
}

// TestCreateVMMachineTypeWithGPUs: an accelerator-optimized machine type brings its GPUs, whose
// number startup.sh gets in the metadata.
func TestCreateVMMachineTypeWithGPUs(t *testing.T) {
	for machine, gpus := range map[string]string{
		"a2-highgpu-2g": "2", "a2-megagpu-16g": "16", "a3-highgpu-8g": "8", "a4-highgpu-8g": "8",
		"g2-standard-12": "1", "g2-standard-24": "2", "g2-standard-48": "4", "g2-standard-96": "8",
	} {
		t.Run(machine, func(t *testing.T) {
			h := newHarness(t)
			h.set("BUCKET", "bkt", "IMAGE", "spottrain:cuda", "MACHINE_TYPE", machine)
			if gpus != "1" {
				h.set("GPU_COUNT", gpus) // agreeing is fine
			}
			r := h.run("create-vm.sh", "")
			require.Equal(t, 0, r.code, r.stderr)
			create := h.one("gcloud", "compute", "instances", "create", "spottrain")
			assert.Contains(t, create, "--machine-type="+machine)
			for _, a := range create {
				assert.False(t, strings.HasPrefix(a, "--accelerator"), a)
			}
			md, _ := flagValue(create, "--metadata")
			assert.Equal(t, gpus, parseDict(md)["spottrain-gpus"])
			assert.Contains(t, r.stdout, machine+", "+gpus+" x ")
		})
	}
}

func TestCreateVMRefusesExisting(t *testing.T) {
	h := newHarness(t)
	h.set("BUCKET", "bkt", "IMAGE", "spottrain:cuda")
	h.write("vm-status", "TERMINATED")
	h.write("vm-zone", "us-central1-a")
	r := h.run("create-vm.sh", "")
	assert.Equal(t, 1, r.code)
	oneLine(t, r.stderr, "VM spottrain exists already in us-central1-a")
	assert.Empty(t, h.calls("gcloud", "compute", "instances", "create"))
}

// ---- watch.sh ----

func exitEvent(code int) string {
	return fmt.Sprintf(`{"time":"2025-01-01T00:00:00Z","type":"exit","incarnation":1,"code":%d,"reason":"x","step":100}`+"\n", code)
}

const startEvent = `{"time":"2025-01-01T00:00:00Z","type":"start","incarnation":1}` + "\n"

func watchHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.set("BUCKET", "bkt", "WATCH_INTERVAL", "0", "START_BACKOFF", "0")
	h.write("vm-status", "TERMINATED")
	h.write("vm-zone", "us-central1-a")
	h.write("events", startEvent+exitEvent(75)) // preempted after an emergency checkpoint
	h.write("events-after-boot", startEvent+exitEvent(75)+startEvent+exitEvent(0))
	return h
}

func TestWatchStartsPreemptedVM(t *testing.T) {
	h := watchHarness(t)
	r := h.run("watch.sh", "")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	start := h.one("gcloud", "compute", "instances", "start", "spottrain")
	assert.Contains(t, start, "--zone=us-central1-a")
	assert.Contains(t, start, "--project=proj-test")
	assert.Contains(t, r.stdout, "run complete")
	assert.Regexp(t, `(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ watch\.sh: `, r.stdout, "timestamped lines")
	assert.Empty(t, h.calls("gcloud", "compute", "instances", "delete"), "TEARDOWN is off")
	cat := h.calls("gcloud", "storage", "cat")
	require.NotEmpty(t, cat)
	assert.Equal(t, "gs://bkt/spottrain/runs/resnet50-ondemand/events.jsonl", positional(cat[0])[2])
}

func TestWatchRetriesFailedStart(t *testing.T) {
	h := watchHarness(t)
	h.write("start-failures", "2")
	r := h.run("watch.sh", "")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Len(t, h.calls("gcloud", "compute", "instances", "start", "spottrain"), 3)
	assert.Equal(t, 2, strings.Count(r.stdout, "ZONE_RESOURCE_POOL_EXHAUSTED"), r.stdout)
	assert.Contains(t, r.stdout, "run complete")
	assert.Empty(t, h.calls("gcloud", "compute", "instances", "create"), "no fallback zones")
}

func TestWatchFallsBackToAnotherZone(t *testing.T) {
	h := watchHarness(t)
	h.set("START_RETRIES", "2", "FALLBACK_ZONES", "us-east1-b europe-west4-a", "IMAGE", "spottrain:cuda")
	h.write("start-failures", "100")
	h.write("create-fail-us-east1-b", "") // no capacity in the first fallback zone either
	r := h.run("watch.sh", "")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)

	starts := h.calls("gcloud", "compute", "instances", "start")
	require.Len(t, starts, 2, "START_RETRIES starts before falling back")
	for _, s := range starts {
		assert.Contains(t, s, "--zone=us-central1-a")
	}
	del := h.one("gcloud", "compute", "instances", "delete", "spottrain")
	assert.Contains(t, del, "--zone=us-central1-a")
	assert.Contains(t, del, "--quiet")
	creates := h.calls("gcloud", "compute", "instances", "create", "spottrain")
	require.Len(t, creates, 2)
	assert.Contains(t, creates[0], "--zone=us-east1-b")
	assert.Contains(t, creates[1], "--zone=europe-west4-a")
	assert.Contains(t, creates[1], "--provisioning-model=SPOT")
	assert.Contains(t, r.stdout, "now runs in europe-west4-a")
	assert.Contains(t, r.stdout, "run complete")
}

func TestWatchNoFallbackZoneTakesIt(t *testing.T) {
	h := watchHarness(t)
	h.set("START_RETRIES", "1", "FALLBACK_ZONES", "us-east1-b", "IMAGE", "spottrain:cuda")
	h.write("start-failures", "100")
	h.write("create-fail-us-east1-b", "")
	r := h.run("watch.sh", "")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, lastLine(r.stderr), "no fallback zone took VM spottrain")
}

func TestWatchTeardownWhenComplete(t *testing.T) {
	h := watchHarness(t)
	h.set("TEARDOWN", "1")
	h.write("vm-status", "RUNNING")
	h.write("events", startEvent+exitEvent(0))
	r := h.run("watch.sh", "")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "run complete")
	del := h.one("gcloud", "compute", "instances", "delete", "spottrain")
	assert.Contains(t, del, "--zone=us-central1-a")
	assert.Contains(t, del, "--quiet")
	assert.Empty(t, h.calls("gcloud", "compute", "instances", "start"))
	assert.Empty(t, h.calls("gcloud", "storage", "rm"), "the bucket stays")
}

func TestWatchStopsAtBadInput(t *testing.T) {
	h := watchHarness(t)
	h.write("events", startEvent+exitEvent(2)+"\n")
	r := h.run("watch.sh", "")
	assert.Equal(t, 1, r.code)
	oneLine(t, r.stderr, "run failed with exit 2 (bad input)")
	assert.Empty(t, h.calls("gcloud", "compute", "instances", "start"), "starting again would not help")
}

func TestWatchMissingVM(t *testing.T) {
	h := watchHarness(t)
	h.set("ZONE", "us-east4-a") // the VM is in us-central1-a
	r := h.run("watch.sh", "")
	assert.Equal(t, 1, r.code)
	oneLine(t, r.stderr, "VM spottrain not found in us-east4-a")
}

// ---- teardown.sh ----

func TestTeardown(t *testing.T) {
	t.Run("deletes the VM", func(t *testing.T) {
		h := newHarness(t)
		h.write("vm-status", "RUNNING")
		h.write("vm-zone", "us-central1-a")
		r := h.run("teardown.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
		del := h.one("gcloud", "compute", "instances", "delete", "spottrain")
		assert.Contains(t, del, "--quiet")
		assert.Contains(t, del, "--zone=us-central1-a")
		assert.Contains(t, del, "--project=proj-test")
		assert.False(t, h.exists("vm-status"))
		assert.Empty(t, h.calls("gcloud", "storage", "rm"))
	})
	t.Run("VM gone already", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("teardown.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "gone already")
		assert.Len(t, h.calls("gcloud", "compute", "instances", "delete"), 1)
	})
	t.Run("bucket with --yes", func(t *testing.T) {
		h := newHarness(t)
		h.set("BUCKET", "bkt")
		h.write("bucket", "bkt")
		r := h.run("teardown.sh", "", "--delete-bucket", "--yes")
		require.Equal(t, 0, r.code, r.stderr)
		rm := h.one("gcloud", "storage", "rm", "gs://bkt")
		assert.Contains(t, rm, "--recursive")
		assert.False(t, h.exists("bucket"))
	})
	t.Run("bucket confirmed", func(t *testing.T) {
		h := newHarness(t)
		h.set("BUCKET", "bkt")
		h.write("bucket", "bkt")
		r := h.run("teardown.sh", "y\n", "--delete-bucket")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, "Delete gs://bkt")
		h.one("gcloud", "storage", "rm", "gs://bkt")
	})
	t.Run("bucket not confirmed", func(t *testing.T) {
		h := newHarness(t)
		h.set("BUCKET", "bkt")
		h.write("bucket", "bkt")
		h.write("vm-status", "RUNNING")
		h.write("vm-zone", "us-central1-a")
		r := h.run("teardown.sh", "n\n", "--delete-bucket")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, lastLine(r.stderr), "not confirmed: nothing deleted")
		assert.Zero(t, h.mutations(), "neither the VM nor the bucket")
	})
}

// ---- startup.sh ----

// metadata is a fake metadata server: instance attributes, 404 for the others, 403 without
// the Metadata-Flavor header.
type metadata struct {
	mu        sync.Mutex
	attrs     map[string]string
	noFlavour int
}

func (m *metadata) set(k, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v == "" {
		delete(m.attrs, k)
	} else {
		m.attrs[k] = v
	}
}

func (m *metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Header.Get("Metadata-Flavor") != "Google" {
		m.noFlavour++
		http.Error(w, "missing Metadata-Flavor: Google header", http.StatusForbidden)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/computeMetadata/v1/instance/attributes/")
	v, found := m.attrs[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Metadata-Flavor", "Google")
	fmt.Fprint(w, v)
}

const startupImage = "us-central1-docker.pkg.dev/proj-test/spottrain/spottrain:cuda"

func startupHarness(t *testing.T) (*harness, *metadata, string) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed: apt-get install curl (startup.sh reads the metadata with it)")
	}
	h := newHarness(t)
	md := &metadata{attrs: map[string]string{
		"spottrain-image":      startupImage,
		"spottrain-remote":     "gs://bkt/spottrain",
		"spottrain-experiment": "resnet50-fixed-poisson",
		"spottrain-args":       "--set train.epochs=3\n--set schedule.milestones=10,20",
		"spottrain-grace":      "20",
	}}
	srv := httptest.NewServer(md)
	t.Cleanup(srv.Close)
	host := t.TempDir()
	h.set("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"), "SPOTTRAIN_HOST_DIR", host,
		"SPOTTRAIN_WAIT_SECONDS", "0", "SPOTTRAIN_WAIT_TRIES", "5")
	t.Cleanup(func() {
		md.mu.Lock()
		defer md.mu.Unlock()
		assert.Zero(t, md.noFlavour, "every metadata request has Metadata-Flavor: Google")
	})
	return h, md, host
}

// setContainer sets the fake container's status and exit code, keeping its label.
func (h *harness) setContainer(status string, code int) {
	h.t.Helper()
	b, err := os.ReadFile(h.state.path("container"))
	require.NoError(h.t, err)
	f := strings.Fields(string(b))
	require.Len(h.t, f, 3)
	h.write("container", fmt.Sprintf("%s %d %s", status, code, f[2]))
}

func TestStartupContainerLifecycle(t *testing.T) {
	h, md, host := startupHarness(t)
	h.write("nvidia-failures", "2") // the driver is still being installed

	r := h.run("startup.sh", "")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Len(t, h.calls("nvidia-smi"), 4, "nvidia-smi until it succeeds, then nvidia-smi -L")
	assert.Equal(t, []string{"-L"}, h.calls("nvidia-smi")[3])
	assert.Equal(t, []string{"auth", "configure-docker", "us-central1-docker.pkg.dev"},
		positional(h.one("gcloud", "auth", "configure-docker")))
	assert.Contains(t, h.one("gcloud", "auth", "configure-docker"), "--quiet")
	assert.DirExists(t, filepath.Join(host, "runs"))
	assert.DirExists(t, filepath.Join(host, "data"))

	run := h.one("docker", "run")
	assert.Contains(t, run, "-d")
	assert.Equal(t, "spottrain", after(run, "--name"))
	assert.Equal(t, "all", after(run, "--gpus"))
	assert.True(t, strings.HasPrefix(after(run, "--restart"), "on-failure"), "restart policy %q", after(run, "--restart"))
	stop, err := strconv.Atoi(after(run, "--stop-timeout"))
	require.NoError(t, err)
	assert.Greater(t, stop, 20, "docker stop must wait longer than spottrain-grace")
	var volumes []string
	for i, a := range run {
		if a == "-v" && i+1 < len(run) {
			volumes = append(volumes, run[i+1])
		}
	}
	assert.ElementsMatch(t, []string{host + "/runs:/work/runs", host + "/data:/data"}, volumes)
	i := slices.Index(run, startupImage)
	require.GreaterOrEqual(t, i, 0, "the image in %q", run)
	assert.NotContains(t, run, "--shm-size", "one GPU, one process: no NCCL between processes")
	assert.Equal(t, []string{"train", "--experiment", "resnet50-fixed-poisson", "--nproc-per-node", "1",
		"--set", "checkpoint.remote=gs://bkt/spottrain", "--set", "checkpoint.remote_grace=20s",
		"--set", "train.epochs=3", "--set", "schedule.milestones=10,20"}, run[i+1:])

	t.Run("running: nothing to do", func(t *testing.T) {
		r := h.run("startup.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "running already")
		assert.Len(t, h.calls("docker", "run"), 1)
		assert.Empty(t, h.calls("docker", "start"))
	})
	t.Run("preempted: docker start, not a second run", func(t *testing.T) {
		h.setContainer("exited", 75)
		r := h.run("startup.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []string{"start", "spottrain"}, h.one("docker", "start"))
		assert.Len(t, h.calls("docker", "run"), 1)
	})
	t.Run("complete: nothing to do", func(t *testing.T) {
		h.setContainer("exited", 0)
		r := h.run("startup.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "the run is complete")
		assert.Len(t, h.calls("docker", "start"), 1)
		assert.Len(t, h.calls("docker", "run"), 1)
	})
	t.Run("bad input: not started again", func(t *testing.T) {
		h.setContainer("exited", 2)
		r := h.run("startup.sh", "")
		assert.Equal(t, 1, r.code)
		oneLine(t, r.stderr, "exited 2")
		assert.Len(t, h.calls("docker", "start"), 1)
		assert.Len(t, h.calls("docker", "run"), 1)
	})
	t.Run("changed metadata: a new container", func(t *testing.T) {
		h.setContainer("running", 0)
		md.set("spottrain-args", "--set train.epochs=5")
		r := h.run("startup.sh", "")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []string{"stop", "spottrain"}, h.one("docker", "stop"), "SIGTERM first: an emergency checkpoint")
		assert.Equal(t, []string{"rm", "spottrain"}, h.one("docker", "rm"))
		runs := h.calls("docker", "run")
		require.Len(t, runs, 2)
		assert.Equal(t, []string{"--set", "train.epochs=5"}, runs[1][len(runs[1])-2:])
	})
}

func TestStartupDownloadsData(t *testing.T) {
	h, md, host := startupHarness(t)
	md.set("spottrain-image", "spottrain:cuda") // a local image: no registry login
	md.set("spottrain-args", "")
	md.set("spottrain-grace", "")
	md.set("spottrain-experiment", "")
	md.set("spottrain-data", "gs://bkt/data/cifar-100-binary.tar.gz")
	for range 2 {
		r := h.run("startup.sh", "")
		require.Equal(t, 0, r.code, r.stdout+r.stderr)
	}
	cp := h.one("gcloud", "storage", "cp") // once: the second boot has the file
	assert.Equal(t, []string{"storage", "cp", "gs://bkt/data/cifar-100-binary.tar.gz",
		filepath.Join(host, "data", "cifar-100-binary.tar.gz.part")}, cp)
	assert.FileExists(t, filepath.Join(host, "data", "cifar-100-binary.tar.gz"))
	assert.Empty(t, h.calls("gcloud", "auth"))
	run := h.one("docker", "run")
	i := slices.Index(run, "spottrain:cuda")
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, []string{"train", "--experiment", "resnet50-ondemand", "--nproc-per-node", "1",
		"--set", "checkpoint.remote=gs://bkt/spottrain", "--set", "checkpoint.remote_grace=25s",
		"--set", "data.path=/data/cifar-100-binary.tar.gz"}, run[i+1:])
	stop, err := strconv.Atoi(after(run, "--stop-timeout"))
	require.NoError(t, err)
	assert.Greater(t, stop, 25)
}

// TestStartupSeveralGPUs: one trainer process per GPU that nvidia-smi lists, or per GPU of the
// metadata when it lists none.
func TestStartupSeveralGPUs(t *testing.T) {
	for _, tc := range []struct {
		name             string
		listed, metadata string // "": not written
		want             string
		log              string
	}{
		{name: "listed as in the metadata", listed: "4", metadata: "4", want: "4"},
		{name: "listed, no metadata", listed: "2", want: "2", log: "lists 2 GPUs, metadata spottrain-gpus says 1"},
		{name: "the listing wins", listed: "8", metadata: "2", want: "8", log: "lists 8 GPUs, metadata spottrain-gpus says 2: starting 8 processes"},
		{name: "none listed: the metadata", listed: "0", metadata: "2", want: "2", log: "lists no GPU: starting spottrain-gpus=2 processes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, md, _ := startupHarness(t)
			h.write("gpus", tc.listed)
			md.set("spottrain-gpus", tc.metadata)
			r := h.run("startup.sh", "")
			require.Equal(t, 0, r.code, r.stdout+r.stderr)
			run := h.one("docker", "run")
			i := slices.Index(run, startupImage)
			require.GreaterOrEqual(t, i, 0)
			assert.Equal(t, tc.want, after(run[i:], "--nproc-per-node"), "docker run %q", run)
			assert.Equal(t, "1g", after(run[:i], "--shm-size"), "NCCL between the processes needs more than docker's 64 MB of /dev/shm")
			if tc.log != "" {
				assert.Contains(t, r.stdout, tc.log)
			} else {
				assert.NotContains(t, r.stdout, "spottrain-gpus")
			}
		})
	}
}

func TestStartupBadGPUs(t *testing.T) {
	for _, v := range []string{"0", "17", "two"} {
		h, md, _ := startupHarness(t)
		md.set("spottrain-gpus", v)
		r := h.run("startup.sh", "")
		assert.Equal(t, 2, r.code)
		oneLine(t, r.stderr, "metadata attribute spottrain-gpus must be a number of GPUs from 1 to 16 (got '"+v+"')")
		assert.Empty(t, h.calls("docker", "run"))
	}
}

func TestStartupMissingImage(t *testing.T) {
	h, md, _ := startupHarness(t)
	md.set("spottrain-image", "")
	r := h.run("startup.sh", "")
	assert.Equal(t, 2, r.code)
	oneLine(t, r.stderr, "metadata attribute spottrain-image is not set")
	assert.Empty(t, h.calls("docker", "run"))
}

func TestStartupBadGrace(t *testing.T) {
	h, md, _ := startupHarness(t)
	md.set("spottrain-grace", "25s")
	r := h.run("startup.sh", "")
	assert.Equal(t, 2, r.code)
	oneLine(t, r.stderr, "spottrain-grace")
	assert.Empty(t, h.calls("docker", "run"))
}

func TestStartupNoGPU(t *testing.T) {
	h, _, _ := startupHarness(t)
	h.set("SPOTTRAIN_WAIT_TRIES", "3")
	h.write("nvidia-failures", "100")
	r := h.run("startup.sh", "")
	assert.Equal(t, 1, r.code)
	oneLine(t, r.stderr, "the NVIDIA driver: 'nvidia-smi' still fails after 3 tries")
	assert.Len(t, h.calls("nvidia-smi"), 3)
	assert.Empty(t, h.calls("docker", "run"))
}
