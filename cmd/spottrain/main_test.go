package main

// End-to-end tests of the CLI as a user runs it: TestMain builds the real binary once, and every
// test runs it as a subprocess in a temporary directory and checks its exit status, stdout, stderr
// and the files it leaves. Training runs are tiny (a 30-day series, an 8-unit LSTM, one thread).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/configs"
	"spottrain/internal/testutil"
)

var (
	bin       string // the spottrain binary TestMain builds
	cudaBuild bool   // it was built with -tags cuda
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "spottrain-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "spottrain")

	// The go command reads GOFLAGS (and CGO_*) from the environment, which the child inherits; the
	// tags this test binary was built with (go test -tags cuda) are passed on as well, plus
	// testhooks, which compiles in the test hooks of testhooks.go (SPOTTRAIN_TEST_CKPT_WRITE_DELAY).
	tags := buildTags()
	withHooks := "testhooks"
	if tags != "" {
		withHooks = tags + ",testhooks"
	}
	args := []string{"build", "-o", bin, "-tags", withHooks, "spottrain/cmd/spottrain"}
	cudaBuild = strings.Contains(tags, "cuda") || strings.Contains(os.Getenv("GOFLAGS"), "cuda")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go %s: %v\n", strings.Join(args, " "), err)
		return 1
	}
	return m.Run()
}

// buildTags returns the -tags this test binary was built with, or "".
func buildTags() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" {
				return s.Value
			}
		}
	}
	return ""
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// spottrain runs the binary with args in dir and returns its exit status and output.
func spottrain(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return spottrainEnv(t, dir, nil, args...)
}

// spottrainEnv is spottrain with env (KEY=value) added to the environment.
func spottrainEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) || ctx.Err() != nil {
		t.Fatalf("spottrain %s: %v (ctx: %v)\nstderr: %s", strings.Join(args, " "), err, ctx.Err(), stderr.String())
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// proc is a spottrain process started by startSpottrain, whose stdout the test reads line by line
// as it comes.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	start  time.Time    // when it was started
	stderr bytes.Buffer // read it only after wait
	lines  chan string  // stdout, line by line; closed at its end
	out    []string     // the lines of stdout read so far
	first  time.Time    // when the first line of stdout was read; zero before
	eof    bool         // stdout has ended
	waited bool
}

// startSpottrain starts the binary with args in dir, with env (KEY=value) added to the
// environment. A process still running at the end of the test is killed.
func startSpottrain(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startCommand(t, dir, env, append([]string{bin}, args...)...)
}

// startCommand is startSpottrain of any command line argv (the binary run by another program,
// such as ip netns exec).
func startCommand(t *testing.T, dir string, env []string, argv ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p := &proc{t: t, cmd: cmd, lines: make(chan string)}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cancel()
		t.Fatalf("start %s: %v", strings.Join(argv, " "), err)
	}
	p.start = time.Now()
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		cancel() // kills it if it still runs
		if !p.waited {
			cmd.Wait()
		}
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	return p
}

// read appends the lines of stdout to p.out until one satisfies until (it returns true), stdout
// ends or the deadline passes (false; p.eof tells which).
func (p *proc) read(until func(string) bool, deadline time.Time) bool {
	if p.eof {
		return false
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.eof = true
				return false
			}
			if len(p.out) == 0 {
				p.first = time.Now()
			}
			p.out = append(p.out, l)
			if until(l) {
				return true
			}
		case <-timer.C:
			return false
		}
	}
}

// readLine reads stdout up to the first line that starts with prefix and returns it; if none
// comes within timeout, it kills the process and fails the test.
func (p *proc) readLine(prefix string, timeout time.Duration) string {
	p.t.Helper()
	if !p.read(func(l string) bool { return strings.HasPrefix(l, prefix) }, time.Now().Add(timeout)) {
		p.cmd.Process.Kill()
		p.wait(time.Minute)
		p.t.Fatalf("no line %q... on stdout:\n%s\nstderr: %s", prefix, p.tail(20), p.stderr.String())
	}
	return p.out[len(p.out)-1]
}

// wait reads stdout to its end and waits for the process to exit, and returns its exit status, or
// -1 if a signal killed it. If stdout has not ended within timeout, it kills the process and fails
// the test.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	if p.waited {
		return p.cmd.ProcessState.ExitCode()
	}
	p.read(func(string) bool { return false }, time.Now().Add(timeout))
	if !p.eof {
		p.cmd.Process.Kill()
	}
	err := p.cmd.Wait()
	p.waited = true
	if !p.eof {
		p.t.Fatalf("still running %v later; stdout ends:\n%s\nstderr: %s", timeout, p.tail(5), p.stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		p.t.Fatalf("wait for spottrain: %v", err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// killed reports whether the process, waited for, was killed by SIGKILL.
func (p *proc) killed() bool {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// stdout returns the lines of stdout read so far, each ended by a newline.
func (p *proc) stdout() string {
	if len(p.out) == 0 {
		return ""
	}
	return strings.Join(p.out, "\n") + "\n"
}

// tail returns the last n lines of stdout read so far.
func (p *proc) tail(n int) string {
	return strings.Join(p.out[max(0, len(p.out)-n):], "\n")
}

// errorLine checks that stderr is exactly one line "spottrain: MSG" and returns MSG.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	msg, ok := strings.CutPrefix(stderr, "spottrain: ")
	if !ok || !strings.HasSuffix(msg, "\n") || strings.Count(msg, "\n") != 1 {
		t.Fatalf("stderr is not one line starting with \"spottrain: \":\n%s", stderr)
	}
	return strings.TrimSuffix(msg, "\n")
}

// tiny returns --set flags that make a training run take well under a second on one core.
// lstmTrain is the command that trains the LSTM of the built-in model layer, named lstm-solar.
func lstmTrain() []string {
	return []string{"train", "--experiment", "lstm-ondemand", "--set", "name=lstm-solar"}
}

func tiny(runDir string) []string {
	var args []string
	for _, kv := range []string{
		"data.lstm.days=30", "data.lstm.lookback_hours=24", "data.lstm.horizon_hours=6", "train.epochs=1",
		"model.lstm.hidden_size=8", "model.lstm.num_layers=1", "train.log_every=5", "device=cpu", "threads=1",
		"run_dir=" + runDir, "interrupts.time_scale=1",
	} {
		args = append(args, "--set", kv)
	}
	return args
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings of stdout
		stderr     []string // substrings of stderr
		lastStderr string   // the last line of stderr, when code is 2
	}{
		{name: "NoArgs", args: nil, code: 2, stderr: []string{"Usage:", "train", "demo"}, lastStderr: "spottrain: no command given"},
		{name: "UnknownCommand", args: []string{"fly"}, code: 2, stderr: []string{"Usage:"}, lastStderr: `spottrain: unknown command "fly"`},
		{name: "Help", args: []string{"--help"}, code: 0, stdout: []string{"Usage:", "\n  train ", "\n  demo "}},
		{name: "HelpCommand", args: []string{"help"}, code: 0, stdout: []string{"Usage:", "\n  train ", "\n  demo "}},
		{name: "HelpShort", args: []string{"-h"}, code: 0, stdout: []string{"Usage:", "\n  train ", "\n  demo "}},
		{name: "TrainHelp", args: []string{"train", "--help"}, code: 0, stdout: []string{"Usage: spottrain train", "--config", "--set"}},
		{name: "DemoHelp", args: []string{"demo", "-h"}, code: 0, stdout: []string{"Usage: spottrain demo", "--set"}},
		{name: "HelpTrain", args: []string{"help", "train"}, code: 0, stdout: []string{"Usage: spottrain train", "--config", "--set"}},
		{name: "HelpCkpt", args: []string{"help", "ckpt"}, code: 0, stdout: []string{"spottrain ckpt <command> RUN_DIR"}},
		{name: "HelpCkptVerify", args: []string{"help", "ckpt", "verify"}, code: 0, stdout: []string{"Usage: spottrain ckpt verify RUN_DIR\n"}},
		{name: "HelpForecast", args: []string{"help", "forecast"}, code: 0, stdout: []string{"Usage: spottrain forecast RUN_DIR --history FILE", "--at TIME"}},
		{name: "EvaluateHelp", args: []string{"evaluate", "--help"}, code: 0, stdout: []string{"Usage: spottrain evaluate RUN_DIR [--data FILE]", "--out DIR"}},
		{name: "ForecastWithoutRunDir", args: []string{"forecast"}, code: 2, lastStderr: "spottrain: forecast: RUN_DIR is required"},
		{name: "ForecastPlotJPEG", args: []string{"forecast", "run", "--history", "pv.csv", "--plot", "f.jpg"}, code: 2,
			lastStderr: "spottrain: forecast: --plot f.jpg: the figure's name must end in .png or .svg"},
		{name: "EvaluateUnknownFlag", args: []string{"evaluate", "run", "--bogus"}, code: 2, lastStderr: "spottrain: evaluate: unknown flag: --bogus"},
		{name: "HelpUnknown", args: []string{"help", "fly"}, code: 2, stderr: []string{"Usage:"}, lastStderr: `spottrain: unknown command "fly"`},
		{name: "Misspelled", args: []string{"trian"}, code: 2, lastStderr: `spottrain: unknown command "trian": did you mean train?`},
		{name: "MisspelledHelp", args: []string{"help", "verfy"}, code: 2, lastStderr: `spottrain: unknown command "verfy": did you mean verify?`},
		{name: "MisspelledCkpt", args: []string{"ckpt", "veriy", "run"}, code: 2, lastStderr: `spottrain: ckpt: unknown command "veriy": did you mean verify?`},
		{name: "TrainWithoutConfig", args: []string{"train"}, code: 2, lastStderr: "spottrain: train: --experiment NAME or --config FILE is required"},
		{name: "TrainConfigWithoutValue", args: []string{"train", "--config"}, code: 2, lastStderr: "spottrain: train: flag needs an argument: --config"},
		{name: "TrainUnknownFlag", args: []string{"train", "--epochs", "3"}, code: 2, lastStderr: "spottrain: train: unknown flag: --epochs"},
		{name: "DemoUnknownFlag", args: []string{"demo", "--epochs", "3"}, code: 2, lastStderr: "spottrain: demo: unknown flag: --epochs"},
		{name: "TrainStrayArg", args: []string{"train", "--config", "x.yaml", "extra"}, code: 2, lastStderr: `spottrain: train: unexpected argument "extra"`},
		{name: "DemoStrayArg", args: []string{"demo", "now"}, code: 2, lastStderr: `spottrain: demo: unexpected argument "now"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := spottrain(t, dir, tt.args...)
			assert.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
			for _, s := range tt.stdout {
				assert.Contains(t, r.stdout, s)
			}
			for _, s := range tt.stderr {
				assert.Contains(t, r.stderr, s)
			}
			if tt.code == 0 {
				assert.Empty(t, r.stderr, "help goes to stdout")
			} else {
				assert.Empty(t, r.stdout)
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				assert.Equal(t, tt.lastStderr, lines[len(lines)-1])
				if len(tt.stderr) == 0 {
					assert.Len(t, lines, 1, "one line: %s", r.stderr)
				}
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing written to the working directory")
		})
	}
}

// TestVersion: --version and version print one line: this build's version (its revision, or
// "(devel)" when it was built with -buildvcs=false, as here), its libtorch's and Go's.
func TestVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrain(t, dir, "--version")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stderr)
	assert.Regexp(t, `^spottrain \S+, libtorch \d+\.\d+\.\d+\S*, go\d+\.\d+\S* \w+/\w+\n$`, r.stdout)
	assert.Contains(t, r.stdout, ", "+runtime.Version()+" ", "built by the toolchain that built this test")
	again := spottrain(t, dir, "version")
	assert.Equal(t, 0, again.code)
	assert.Equal(t, r.stdout, again.stdout)
}

// badInput is a command whose config, flags or data are wrong.
type badInput struct {
	name  string
	files map[string]string // relative path -> content, written into the working directory
	args  []string
	want  string   // prefix of the message after "spottrain: "
	also  []string // other substrings of it
}

// badInputs are the cases of TestBadInput.
func badInputs() []badInput {
	const good = "name: t\ndata:\n  lstm:\n    days: 30\n    lookback_hours: 24\n    horizon_hours: 6\n" +
		"model:\n  lstm:\n    hidden_size: 8\n    num_layers: 1\ndevice: cpu\nthreads: 1\ntrain:\n  epochs: 1\n"
	csvJob := func(path string) string {
		return "name: t\ndata:\n  source: csv\n  path: " + path + "\n  lstm:\n    lookback_hours: 24\n    horizon_hours: 6\n" +
			"model:\n  lstm:\n    hidden_size: 8\n    num_layers: 1\ndevice: cpu\nthreads: 1\n"
	}
	const header = "timestamp,power_kw\n"
	return []badInput{
		// Config files: file:line: key: message.
		{name: "UnknownKey", files: map[string]string{"job.yaml": "name: t\ntrain:\n  epochs: 1\n  bogus: 3\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:4: train.bogus: unknown key"},
		{name: "UnknownKeySuggestion", files: map[string]string{"job.yaml": "train:\n  epoch: 2\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:2: train.epoch: unknown key; did you mean epochs?"},
		{name: "WrongType", files: map[string]string{"job.yaml": "name: t\ntrain:\n  epochs: \"3\"\n"},
			args: []string{"train", "--config", "job.yaml"}, want: `job.yaml:3: train.epochs: must be an integer (got "3")`},
		{name: "WrongTypeMapping", files: map[string]string{"job.yaml": "model: lstm\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:1: model: must be a mapping"},
		{name: "OutOfRange", files: map[string]string{"job.yaml": "name: t\n\ntrain:\n  epochs: 0\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:4: train.epochs: must be >= 1 (got 0)"},
		{name: "OutOfRangeListElement", files: map[string]string{"job.yaml": "optimizer:\n  betas: [0.9, 1.5]\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:2: optimizer.betas[1]: must be in [0, 1) (got 1.5)"},
		{name: "BadDeviceName", files: map[string]string{"job.yaml": "seed: 1\ndevice: gpu\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:2: device: must be auto, cpu, cuda or cuda:N"},
		{name: "CSVWithoutPath", files: map[string]string{"job.yaml": "data:\n  source: csv\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:2: data.path: required when data.source is csv"},
		{name: "InvalidYAML", files: map[string]string{"job.yaml": "name: t\ntrain: [\n"},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml:", also: []string{"invalid YAML"}},
		{name: "EmptyConfig", files: map[string]string{"job.yaml": ""},
			args: []string{"train", "--config", "job.yaml"}, want: "job.yaml: no settings"},
		{name: "MissingConfig", args: []string{"train", "--config", "conf/nothere.yaml"},
			want: "conf/nothere.yaml: cannot read: no such file or directory"},

		// --set flags: named as the flag.
		{name: "SetWithoutEquals", args: []string{"demo", "--set", "train.epochs"},
			want: "--set train.epochs: want dotted.key=value"},
		{name: "SetMalformedKey", args: []string{"demo", "--set", "train..epochs=1"},
			want: "--set train..epochs=1: train..epochs: malformed key"},
		{name: "SetUnknownKey", args: []string{"demo", "--set", "train.epoch=2"},
			want: "--set train.epoch=2: train.epoch: unknown key; did you mean epochs?"},
		{name: "SetWrongType", files: map[string]string{"job.yaml": good},
			args: []string{"train", "--config", "job.yaml", "--set", "train.epochs=many"},
			want: `--set train.epochs=many: train.epochs: must be an integer (got "many")`},
		{name: "SetOutOfRange", files: map[string]string{"job.yaml": good},
			args: []string{"train", "--config", "job.yaml", "--set", "model.lstm.hidden_size=0"},
			want: "--set model.lstm.hidden_size=0: model.lstm.hidden_size: must be in [1, 4096] (got 0)"},
		{name: "SetMovedKey", files: map[string]string{"job.yaml": good},
			args: []string{"train", "--config", "job.yaml", "--set", "model.depth=34"},
			want: "--set model.depth=34: model.depth: moved to model.resnet.depth, only for model.kind resnet (model.kind is lstm)"},
		{name: "SetLastWins", files: map[string]string{"job.yaml": good},
			args: []string{"train", "--config", "job.yaml", "--set", "train.epochs=0", "--set", "train.epochs=-2"},
			want: "--set train.epochs=-2: train.epochs: must be >= 1 (got -2)"},

		// Data files, read relative to the config file: file:line: message.
		{name: "CSVDuplicateTimestamp", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   header + "2021-06-01 00:00,0\n2021-06-01 01:00,0.1\n2021-06-01 01:00,0.2\n2021-06-01 02:00,0.3\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: "site/pv.csv:4: duplicate timestamp", also: []string{"line 3"}},
		{name: "CSVNotANumber", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   header + "2021-06-01 00:00,0\n2021-06-01 01:00,lots\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: "site/pv.csv:3: column power_kw: cannot parse \"lots\" as a number"},
		{name: "CSVUnsorted", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   header + "2021-06-01 00:00,0\n2021-06-01 02:00,0.1\n2021-06-01 01:00,0.2\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: "site/pv.csv:4: timestamp 2021-06-01", also: []string{"chronological"}},
		{name: "CSVNoPowerColumn", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   "timestamp,watts\n2021-06-01 00:00,0\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: `site/pv.csv:1: no power column "power_kw"`},
		{name: "CSVTooShort", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   header + "2021-06-01 00:00,0\n2021-06-01 01:00,0.1\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: "site/pv.csv", also: []string{"2 hours"}},
		{name: "CSVMissing", files: map[string]string{"site/job.yaml": csvJob("pv.csv")},
			args: []string{"train", "--config", "site/job.yaml"}, want: "", also: []string{"site/pv.csv", "no such file"}},
		{name: "SyntheticTooShort", args: append(append(lstmTrain(), tiny("run")...), "--set", "data.lstm.days=8"),
			want: "--set data.lstm.days=8: data.lstm.days: must be >= 9: each split", also: []string{"(24 + 6) hours (got 8 days)"}},

		// Issue 15: every bad input refused up front, naming the key, not a Go type or field.
		{name: "SetLayersModel", args: append(append(lstmTrain(), tiny("run")...), "--set", "layers.model=nope"),
			want: "--set layers.model=nope: layers.model: cannot be set with --set"},
		{name: "ThreadsTooMany", args: append(append(lstmTrain(), tiny("run")...), "--set", "threads=100000"),
			want: "--set threads=100000: threads: must be in [0, 1024]"},
		{name: "EpochsOverflow", args: append(append(lstmTrain(), tiny("run")...), "--set", "train.epochs=9223372036854775807"),
			want: "--set train.epochs=9223372036854775807: train.epochs: must be <= 1000000"},
		{name: "SyntheticDaysTooMany", args: append(append(lstmTrain(), tiny("run")...), "--set", "data.lstm.days=40000"),
			want: "--set data.lstm.days=40000: data.lstm.days: must be <= 36600 (got 40000)"},
		{name: "SyntheticStartOffTheHour", args: append(append(lstmTrain(), tiny("run")...), "--set", "data.lstm.start=2023-01-01T00:30:00Z"),
			want: "--set data.lstm.start=2023-01-01T00:30:00Z: data.lstm.start: must be on the hour"},
		// A system folder nothing can be written to: before the fix, run_dir=/ trained into /.
		{name: "RunDirSystemFolder", args: append(append(lstmTrain(), tiny("run")...), "--set", "run_dir=/proc/spottrain-runs"),
			want: `--set run_dir=/proc/spottrain-runs: run_dir: must not be a system folder`},
		{name: "RunDirOfSomethingElse", files: map[string]string{"mine/notes.txt": "mine"},
			args: append(append(lstmTrain(), tiny("run")...), "--set", "run_dir=mine"),
			want: "run_dir: mine is not empty (it holds notes.txt) and is no run's: give a new or empty folder"},
		{name: "NameTooLong", args: append(append(lstmTrain(), tiny("run")...), "--set", "name="+strings.Repeat("n", 300)),
			want: "--set name=" + strings.Repeat("n", 300) + ": name: must be at most 255 bytes"},
		{name: "CSVNoTimestampColumn", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   "time,power_kw\n2021-06-01 00:00,0\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: `site/pv.csv:1: no timestamp column "timestamp"`,
			also: []string{"(set data.lstm.timestamp_column)"}},
		{name: "CSVGapTooLong", files: map[string]string{
			"site/job.yaml": csvJob("pv.csv"),
			"site/pv.csv":   header + "2021-06-01 00:00,0\n2021-06-01 09:00,0.1\n",
		}, args: []string{"train", "--config", "site/job.yaml"}, want: "site/pv.csv:3: gap of 8 missing hours",
			also: []string{"(set data.lstm.max_gap_fill_hours)"}},
	}
}

// TestBadInput runs commands whose config, flags or data are wrong: each exits with status 2 and
// one line on stderr that starts with want, and trains nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, tt := range badInputs() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.files {
				testutil.WriteFile(t, filepath.Join(dir, name), content)
			}
			r := spottrain(t, dir, tt.args...)
			assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			msg := errorLine(t, r.stderr)
			assert.True(t, strings.HasPrefix(msg, tt.want), "message %q does not start with %q", msg, tt.want)
			for _, s := range tt.also {
				assert.Contains(t, msg, s)
			}
			assert.NotContains(t, r.stdout, "step ", "it trained")
			// Nothing written: no run dir next to the files of the case.
			want := map[string]bool{}
			for name := range tt.files {
				want[strings.Split(name, "/")[0]] = true
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range entries {
				assert.True(t, want[e.Name()], "%s written", e.Name())
			}
		})
	}
}

func TestDeviceCUDAWithoutCUDA(t *testing.T) {
	if cudaBuild {
		t.Skip("built with -tags cuda: device cuda may well exist")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, dev := range []string{"cuda", "cuda:1"} {
		r := spottrain(t, dir, append(lstmTrain(), append(tiny("run"), "--set", "device="+dev)...)...)
		assert.Equal(t, 2, r.code, "stderr: %s", r.stderr)
		msg := errorLine(t, r.stderr)
		assert.Contains(t, msg, "cuda")
		assert.Contains(t, msg, "CUDA is not available")
		assert.Empty(t, r.stdout)
	}
	assert.NoDirExists(t, filepath.Join(dir, "run"))
}

// metrics is what a run writes to metrics.json.
type metrics struct {
	Name      string             `json:"name"`
	Device    string             `json:"device"`
	Params    int                `json:"params"`
	Steps     int                `json:"steps"`
	ConfigSHA string             `json:"config_sha256"`
	Epochs    []epochMetrics     `json:"epochs"`
	Test      map[string]float64 `json:"test"`
}

type epochMetrics struct {
	Epoch     int                `json:"epoch"`
	TrainLoss float64            `json:"train_loss"`
	Val       map[string]float64 `json:"val"`
}

var (
	stepLineRE = regexp.MustCompile(`^step (\d+)/(\d+) \| epoch (\d+) \| loss [0-9.]+ \|`)
	headerRE   = regexp.MustCompile(`\| LSTM (\d+) params \| .* \| (\d+) steps$`)
	lstmRowRE  = regexp.MustCompile(`(?m)^\s*LSTM\s+([0-9.]+)\s+([0-9.]+)\s*$`)
	persRowRE  = regexp.MustCompile(`(?m)^\s*persistence \(24 h\)\s+([0-9.]+)\s+([0-9.]+)\s+([+-][0-9.]+|-)\s*$`)
)

// checkRun checks the output and the run directory of a successful run (in working directory
// dir) of the job name, which trained epochs epochs into runDir, and returns its metrics.json.
func checkRun(t *testing.T, r result, dir, name, runDir string, epochs int) metrics {
	t.Helper()
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Empty(t, r.stderr)
	assert.NotContains(t, r.stdout, "\r", "not a terminal: plain log lines, no progress bar")

	// The header line, then one line every log_every steps and at the end of each epoch.
	lines := strings.Split(r.stdout, "\n")
	var header []string
	for _, l := range lines {
		if strings.HasPrefix(l, name+": ") {
			header = headerRE.FindStringSubmatch(l)
			break
		}
	}
	require.NotNil(t, header, "no header line %q...: %s", name+": ", r.stdout)
	totalSteps, _ := strconv.Atoi(header[2])
	lastStep := 0
	for _, l := range lines {
		if m := stepLineRE.FindStringSubmatch(l); m != nil {
			step, _ := strconv.Atoi(m[1])
			assert.Greater(t, step, lastStep, "steps increase: %s", l)
			assert.Equal(t, header[2], m[2], "total steps: %s", l)
			lastStep = step
		} else {
			assert.False(t, strings.HasPrefix(l, "step "), "malformed step line %q", l)
		}
	}
	assert.Positive(t, totalSteps)
	assert.Equal(t, totalSteps, lastStep, "the last step is logged")
	for e := 1; e <= epochs; e++ {
		assert.Contains(t, r.stdout, fmt.Sprintf("\nepoch %d done in ", e))
	}
	assert.NotContains(t, r.stdout, fmt.Sprintf("epoch %d done", epochs+1))

	// The final table.
	lstm := lstmRowRE.FindStringSubmatch(r.stdout)
	pers := persRowRE.FindStringSubmatch(r.stdout)
	require.NotNil(t, lstm, "no LSTM row: %s", r.stdout)
	require.NotNil(t, pers, "no persistence row: %s", r.stdout)
	assert.Contains(t, r.stdout, "\nskill = 1 - RMSE/RMSE_baseline")
	assert.True(t, strings.HasSuffix(r.stdout, "\nrun dir: "+runDir+"\n"), "ends with the run dir: %s", r.stdout)

	if !filepath.IsAbs(runDir) {
		runDir = filepath.Join(dir, runDir)
	}
	doc, err := os.ReadFile(filepath.Join(runDir, "metrics.json"))
	require.NoError(t, err)
	var m metrics
	require.NoError(t, json.Unmarshal(doc, &m), "%s", doc)
	assert.Equal(t, name, m.Name)
	assert.Equal(t, "cpu", m.Device)
	assert.Equal(t, totalSteps, m.Steps)
	assert.Equal(t, header[1], strconv.Itoa(m.Params))
	require.Len(t, m.Epochs, epochs)
	for i, e := range m.Epochs {
		assert.Equal(t, i+1, e.Epoch)
		assert.Positive(t, e.TrainLoss)
		assert.Positive(t, e.Val["mae_kw"])
	}
	for _, k := range []string{"mae_kw", "rmse_kw", "persistence_mae_kw", "persistence_rmse_kw", "cliper_rmse_kw", "smart_persistence_mae_kw"} {
		v := m.Test[k]
		assert.True(t, v > 0 && !math.IsInf(v, 0), "test %s = %v", k, v)
	}
	assert.GreaterOrEqual(t, m.Test["rmse_kw"], m.Test["mae_kw"])
	// The table shows the scores of metrics.json.
	assert.Equal(t, fmt.Sprintf("%.4f", m.Test["mae_kw"]), lstm[1])
	assert.Equal(t, fmt.Sprintf("%.4f", m.Test["rmse_kw"]), lstm[2])
	assert.Equal(t, fmt.Sprintf("%.4f", m.Test["persistence_mae_kw"]), pers[1])
	assert.Equal(t, fmt.Sprintf("%.4f", m.Test["persistence_rmse_kw"]), pers[2])
	assert.Equal(t, fmt.Sprintf("%+.3f", m.Test["skill_persistence"]), pers[3])

	// config.yaml is the merged config: metrics.json names its hash, and it loads back to itself.
	path := filepath.Join(runDir, "config.yaml")
	saved, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(saved), "name: "+name+"\n")
	sum := sha256.Sum256(saved)
	assert.Equal(t, hex.EncodeToString(sum[:]), m.ConfigSHA, "config_sha256 is the SHA-256 of config.yaml")
	cfg, err := configs.Load(path, nil)
	require.NoError(t, err, "config.yaml loads back")
	assert.Equal(t, name, cfg.Name)
	assert.Equal(t, 8, cfg.Model.LSTM.HiddenSize)
	return m
}

func TestTrainSynthetic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// No run_dir: it defaults to runs/<name> under the working directory.
	testutil.WriteFile(t, filepath.Join(dir, "job.yaml"), `# a tiny job
name: cli-test
device: cpu
threads: 1
model:
  lstm:
    hidden_size: 8
    num_layers: 1
data:
  lstm:
    days: 30
    lookback_hours: 24
    horizon_hours: 6
train:
  epochs: 2
  log_every: 5
`)
	r := spottrain(t, dir, "train", "--config", "job.yaml", "--set", "seed=7", "--set", "optimizer.lr=5e-3")
	checkRun(t, r, dir, "cli-test", filepath.Join("runs", "cli-test"), 2)
	assert.Contains(t, r.stdout, "cli-test: synthetic on cpu (1 threads)")

	cfg, err := configs.Load(filepath.Join(dir, "runs", "cli-test", "config.yaml"), nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), cfg.Seed, "--set seed=7 is in config.yaml")
	assert.Equal(t, 5e-3, cfg.Optimizer.LR)
	assert.Equal(t, 2, cfg.Train.Epochs)
}

// writePVCSV writes days of plausible hourly PV history (a daily bell of power under
// day-to-day clouds, irradiance and temperature) to path, leaving out the row skip (0: none).
func writePVCSV(t *testing.T, path string, days, skip int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,power_kw,ghi,temp_air\n")
	start := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	for h := range days * 24 {
		if h+1 == skip {
			continue
		}
		hour, day := h%24, h/24
		sun := max(0, math.Sin(math.Pi*float64(hour-5)/15)) // daylight from 05:00 to 20:00
		clouds := 0.55 + 0.45*float64((day*37+11)%10)/9     // 0.55..1, varying by day
		ghi := 950 * sun * clouds
		temp := 14 + 9*sun*clouds + 0.1*float64(day%7)
		fmt.Fprintf(&b, "%s,%.3f,%.1f,%.1f\n", start.Add(time.Duration(h)*time.Hour).Format("2006-01-02 15:04"),
			4.2*sun*clouds*(1-0.004*(temp-25)), ghi, temp)
	}
	testutil.WriteFile(t, path, b.String())
}

func TestTrainCSV(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePVCSV(t, filepath.Join(dir, "site", "pv.csv"), 40, 24*10+13) // row 24*10+13: 2021-06-11 12:00
	testutil.WriteFile(t, filepath.Join(dir, "site", "pv.yaml"), `name: my-roof
device: cpu
threads: 1
data:
  source: csv
  path: pv.csv           # relative to this file
  lstm:
    capacity_kw: 0
    latitude: 52.5
    longitude: 13.4
    lookback_hours: 24
    horizon_hours: 6
model:
  lstm:
    hidden_size: 8
    num_layers: 1
train:
  epochs: 1
  log_every: 5
`)
	runDir := filepath.Join(dir, "out", "roof")
	r := spottrain(t, dir, "train", "--config", "site/pv.yaml", "--set", "run_dir="+runDir)
	checkRun(t, r, dir, "my-roof", runDir, 1)
	assert.Contains(t, r.stdout, "my-roof: "+filepath.Join("site", "pv.csv")+" on cpu")
	assert.Regexp(t, `(?m)^data: repaired site/pv.csv:\d+: filled 1 missing hour 2021-06-11T12:00:00Z `, r.stdout)

	// The saved config, loaded back from the run dir, still points at the data file.
	cfg, err := configs.Load(filepath.Join(runDir, "config.yaml"), nil)
	require.NoError(t, err)
	path := cfg.Data.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path) // relative to the working directory
	}
	assert.FileExists(t, path, "data.path of config.yaml loaded back: %q", cfg.Data.Path)
}

// TestInterrupt sends SIGINT to a long training once it has logged a step: the command finishes
// the step in progress, writes an emergency checkpoint of it and exits with status 75.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append(lstmTrain(), tiny("run")...)
	args = append(args, "--set", "train.epochs=100000", "--set", "train.log_every=1")
	p := startSpottrain(t, dir, nil, args...)
	p.readLine("step ", time.Minute)
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	sent := time.Now()
	code := p.wait(30 * time.Second)
	took := time.Since(sent)
	assert.Equal(t, 75, code, "stderr: %s", p.stderr.String())
	t.Logf("exited %v after SIGINT", took.Round(time.Millisecond))

	// The last line says where the checkpoint was taken: with log_every 1, the last step logged.
	out := p.out
	require.NotEmpty(t, out)
	var lastStep string
	for _, l := range out {
		if m := stepLineRE.FindStringSubmatch(l); m != nil {
			lastStep = m[1]
		}
	}
	assert.Equal(t, "interrupt received: checkpointing at step "+lastStep, out[len(out)-1], "stdout:\n%s", strings.Join(out, "\n"))
	assert.NotContains(t, strings.Join(out, "\n"), "skill = 1 - RMSE/RMSE_baseline", "no final table")
	assert.Contains(t, errorLine(t, p.stderr.String()), "emergency checkpoint")
	step, err := strconv.Atoi(lastStep)
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(dir, "run", fmt.Sprintf("step-%08d", step), "manifest.json"))
}

// TestNonFiniteMetric trains on PV history of the same power every day, whose persistence forecast
// is perfect: the skill score against it (1 - RMSE/RMSE_persistence) is -Inf. The run leaves it out of its
// metrics with a warning, checkpoints after each evaluation and completes; so does a restart.
func TestNonFiniteMetric(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("timestamp,power_kw\n")
	start := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	for h := range 40 * 24 {
		kw := 0.0
		if h%24 >= 8 && h%24 < 16 { // in daylight at Munich, where it is 0 at night
			kw = 1.5
		}
		fmt.Fprintf(&b, "%s,%g\n", start.Add(time.Duration(h)*time.Hour).Format("2006-01-02 15:04"), kw)
	}
	testutil.WriteFile(t, filepath.Join(dir, "pv.csv"), b.String())
	testutil.WriteFile(t, filepath.Join(dir, "job.yaml"), "name: flat\ndevice: cpu\nthreads: 1\n"+
		"data:\n  source: csv\n  path: pv.csv\n  lstm:\n    capacity_kw: 5\n    lookback_hours: 24\n    horizon_hours: 6\n"+
		"model:\n  lstm:\n    hidden_size: 8\n    num_layers: 1\ntrain:\n  epochs: 2\n  log_every: 5\n"+
		"checkpoint:\n  every_steps: 3\n  every_seconds: 0\n")
	for run := range 2 {
		r := spottrain(t, dir, "train", "--config", "job.yaml")
		require.Equal(t, 0, r.code, "run %d: stdout: %s\nstderr: %s", run, r.stdout, r.stderr)
		assert.Contains(t, r.stdout, "warning: test metric skill_persistence left out: -Inf is not a finite number")
		assert.Regexp(t, `(?m)^ *persistence \(24 h\) +0\.0000 +0\.0000 +-$`, r.stdout, "an absent metric shows as -")
		if run == 0 {
			assert.Contains(t, r.stdout, "warning: validation metric skill_persistence left out: -Inf is not a finite number")
		}
	}
	doc, err := os.ReadFile(filepath.Join(dir, "runs", "flat", "metrics.json"))
	require.NoError(t, err)
	var m metrics
	require.NoError(t, json.Unmarshal(doc, &m))
	require.Len(t, m.Epochs, 2)
	assert.NotContains(t, m.Epochs[1].Val, "skill_persistence")
	assert.Contains(t, m.Epochs[1].Val, "rmse_kw")
	assert.NotContains(t, m.Test, "skill_persistence")
}

// TestResumeOtherData: what a run trains on is part of what it trains. A run dir whose
// checkpoints were made on one CSV file refuses another without --force, naming data.digest; the
// same file moved elsewhere resumes.
func TestResumeOtherData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePVCSV(t, filepath.Join(dir, "a", "pv.csv"), 40, 0)
	writePVCSV(t, filepath.Join(dir, "b", "pv.csv"), 41, 0)
	train := func(data string) result {
		return spottrain(t, dir, append([]string{"train", "--config", "job.yaml", "--set", "data.path=" + data}, tiny("run")...)...)
	}
	testutil.WriteFile(t, filepath.Join(dir, "job.yaml"), "name: roof\ndata:\n  source: csv\n  lstm:\n    capacity_kw: 0\n")
	r := train("a/pv.csv")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	before, err := os.ReadFile(filepath.Join(dir, "run", "config.yaml"))
	require.NoError(t, err)

	r = train("b/pv.csv")
	assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	msg := errorLine(t, r.stderr)
	assert.Contains(t, msg, "holds checkpoints of another config")
	assert.Contains(t, msg, "data.digest: ")
	after, err := os.ReadFile(filepath.Join(dir, "run", "config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "config.yaml untouched")

	require.NoError(t, os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "moved")))
	r = train("moved/pv.csv")
	assert.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "config changed since the checkpoint: data.path: ")
	assert.Contains(t, r.stdout, "the run is complete")
}

// TestDataTooBigForMemory: synthetic data that would not fit in the machine's memory is refused
// before it is made, naming the key that sizes it; nothing is written.
func TestDataTooBigForMemory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrainEnv(t, dir, []string{"SPOTTRAIN_TEST_MEMORY=100000"}, append(lstmTrain(), tiny("run")...)...)
	assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Equal(t, "data.lstm.days: the data would take about 0.000657 GB of memory, and this machine has 0.0001 GB available",
		errorLine(t, r.stderr))
	assert.NoDirExists(t, filepath.Join(dir, "run"))
}

// TestS3WithoutRegion: an s3:// checkpoint.remote without a region, where the AWS SDK finds none
// either, is refused before anything is written, naming the key.
func TestS3WithoutRegion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_PROFILE=", "AWS_CONFIG_FILE=" + filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none")}
	r := spottrainEnv(t, dir, env, append(append(lstmTrain(), tiny("run")...), "--set", "checkpoint.remote=s3://bucket/runs")...)
	assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Equal(t, "checkpoint.remote: s3://bucket/runs names no AWS region: add ?region=REGION to it, or set AWS_REGION",
		errorLine(t, r.stderr))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written")
}
