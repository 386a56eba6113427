package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/data/solar"
	"spottrain/internal/testutil"
)

// forecastStart is the first hour of writeForecastHistory's history.
var forecastStart = time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)

// writeForecastHistory writes days of hourly history of a plant at the default site (48.1°,
// 11.6°, 5 kW) to path, timestamp,power_kw,temperature: a daylight bell (04:00 to 19:00 UTC) times
// a day's clearness drawn from a seeded generator, with some hourly flicker.
// clearSkyShare is the clear-sky power of a plant at the default site (48.1°, 11.6°) as a share of
// its capacity: 0 at night, up to 0.86.
func clearSkyShare(at time.Time) float64 {
	site := solar.Site{Latitude: 48.1, Longitude: 11.6}
	return solar.Plant{Site: site, Plane: solar.DefaultPlane(site), CapacityKW: 1}.ClearSkyKW(at)
}

func writeForecastHistory(t *testing.T, path string, days int) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	var b strings.Builder
	b.WriteString("timestamp,power_kw,temperature\n")
	for d := range days {
		clear := 0.25 + 0.75*rng.Float64()
		for h := range 24 {
			at := forecastStart.Add(time.Duration(d*24+h) * time.Hour)
			sun := clearSkyShare(at)
			kw := 5 * sun * clear * (0.9 + 0.1*rng.Float64())
			temp := 8 + 0.1*float64(d) + 9*sun*clear
			fmt.Fprintf(&b, "%s,%.3f,%.1f\n", at.Format("2006-01-02 15:04"), kw, temp)
		}
	}
	testutil.WriteFile(t, path, b.String())
}

// trainForecaster trains a tiny LSTM (hidden 8, one layer, 24 h ahead, plus the model.lstm keys
// of lstmKeys, "key: value" lines) on the history file (source csv or pvgis) in dir, into
// dir/runs/NAME, and returns that run dir.
func trainForecaster(t *testing.T, dir, name, source, history string, lookback int, lstmKeys ...string) string {
	t.Helper()
	testutil.WriteFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`name: %s
device: cpu
threads: 1
data:
  source: %s
  path: %s
  lstm:
    lookback_hours: %d
    horizon_hours: 24
model:
  lstm:
    hidden_size: 8
    num_layers: 1
%s
train:
  epochs: 3
  max_steps: 40
  log_every: 50
`, name, source, history, lookback, "    "+strings.Join(lstmKeys, "\n    ")))
	r := spottrain(t, dir, "train", "--config", name+".yaml")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return filepath.Join(dir, "runs", name)
}

// forecastPython returns the Python with PyTorch that runs scripts/forecast (SPOTTRAIN_TEST_PYTHON,
// else /usr/bin/python3, as TestCkptExportPyTorch): a test fails without it, unless
// SPOTTRAIN_TEST_NO_PYTHON=1 says to skip it.
func forecastPython(t *testing.T) string {
	t.Helper()
	python := "/usr/bin/python3"
	if p := os.Getenv("SPOTTRAIN_TEST_PYTHON"); p != "" {
		python = p
	}
	if out, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s cannot import torch (%v: %s): install Debian's python3-torch (apt-get install python3-torch)",
			python, err, strings.TrimSpace(string(out)))
		if os.Getenv("SPOTTRAIN_TEST_NO_PYTHON") == "1" {
			t.Skip(msg + "; skipped as SPOTTRAIN_TEST_NO_PYTHON=1")
		}
		t.Fatal(msg + " (or set SPOTTRAIN_TEST_NO_PYTHON=1 to skip this test)")
	}
	return python
}

// forecastRows parses a forecast CSV: its header, then the rows.
func forecastRows(t *testing.T, doc string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(doc)).ReadAll()
	require.NoError(t, err, "%s", doc)
	require.NotEmpty(t, rows)
	require.Equal(t, []string{"timestamp", "forecast_kw", "clearsky_kw", "cliper_kw"}, rows[0])
	return rows[1:]
}

// sameForecast checks that the forecast CSVs of spottrain and of forecast.py have the same hours
// and agree to 1e-5 kW, that some hour is forecast above 0 and every night hour exactly 0, and
// returns the largest difference.
func sameForecast(t *testing.T, goCSV, pyCSV string, horizon int) float64 {
	t.Helper()
	want, got := forecastRows(t, goCSV), forecastRows(t, pyCSV)
	require.Len(t, want, horizon)
	require.Len(t, got, horizon)
	worst, day, night := 0.0, 0, 0
	for i := range want {
		require.Equal(t, want[i][0], got[i][0], "timestamp of row %d", i+1)
		for c := 1; c < 4; c++ {
			w, err := strconv.ParseFloat(want[i][c], 64)
			require.NoError(t, err)
			g, err := strconv.ParseFloat(got[i][c], 64)
			require.NoError(t, err)
			assert.InDelta(t, w, g, 1e-5, "%s, column %d", want[i][0], c)
			worst = max(worst, math.Abs(w-g))
		}
		switch want[i][2] {
		case "0":
			night++
			assert.Equal(t, "0", want[i][1], "%s: no clear-sky power, no forecast", want[i][0])
		default:
			if kw, _ := strconv.ParseFloat(want[i][1], 64); kw > 0 {
				day++
			}
		}
	}
	assert.Positive(t, day, "some hour is forecast above 0 kW:\n%s", goCSV)
	assert.Positive(t, night, "some hour is at night:\n%s", goCSV)
	return worst
}

// pyForecast runs scripts/forecast/forecast.py with args in dir and returns its stdout.
func pyForecast(t *testing.T, python, dir string, args ...string) string {
	t.Helper()
	script, err := filepath.Abs("../../scripts/forecast/forecast.py")
	require.NoError(t, err)
	cmd := exec.Command(python, append([]string{script}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "forecast.py %s: %s", strings.Join(args, " "), stderr.String())
	return string(out)
}

// TestForecastReproducedInPython: scripts/forecast/forecast.py forecasts from the export of a run
// (its weights and preprocessing) what spottrain forecast does from the run, for the hours after a
// history and from an hour inside it, from a CSV history and from a PVGIS export (H_sun, Int).
func TestForecastReproducedInPython(t *testing.T) {
	t.Parallel()
	python := forecastPython(t)
	for _, tt := range []struct {
		name, source, history string
		lookback              int
		at                    string
		lstmKeys              []string // model.lstm keys
		write                 func(t *testing.T, dir string)
	}{
		// With future inputs, the target hours follow the lookback and the head reads each (step_head).
		{name: "csv", source: "csv", history: "pv.csv", lookback: 24, at: "2024-05-20 06:00",
			lstmKeys: []string{"future_inputs: true"},
			write:    func(t *testing.T, dir string) { writeForecastHistory(t, filepath.Join(dir, "pv.csv"), 60) }},
		// Without them (the default) the head reads the last step only; another target.
		{name: "csv-last-step", source: "csv", history: "pv.csv", lookback: 48, at: "2024-05-02T00:00:00Z",
			lstmKeys: []string{"target: cliper_residual"},
			write:    func(t *testing.T, dir string) { writeForecastHistory(t, filepath.Join(dir, "pv.csv"), 60) }},
		{name: "pvgis", source: "pvgis", history: "pvgis-gi.csv", lookback: 48, at: "2019-07-30T10:00:00Z",
			write: func(t *testing.T, dir string) {
				script, err := filepath.Abs("../../scripts/forecast/pv_history.py")
				require.NoError(t, err)
				out, err := exec.Command(python, script, "--out", dir, "--years", "1").CombinedOutput()
				require.NoError(t, err, "pv_history.py: %s", out)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.write(t, dir)
			run := trainForecaster(t, dir, tt.name, tt.source, tt.history, tt.lookback, tt.lstmKeys...)
			r := spottrain(t, dir, "forecast", run, "--history", tt.history, "--out", "f.csv")
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			r = spottrain(t, dir, "ckpt", "export", run, "--out", "m.safetensors")
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			goCSV, err := os.ReadFile(filepath.Join(dir, "f.csv"))
			require.NoError(t, err)
			worst := sameForecast(t, string(goCSV), pyForecast(t, python, dir, "m.safetensors", tt.history), 24)

			r = spottrain(t, dir, "forecast", run, "--history", tt.history, "--at", tt.at)
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			at := sameForecast(t, r.stdout, pyForecast(t, python, dir, "m.safetensors", tt.history, "--at", tt.at), 24)
			rows := forecastRows(t, r.stdout)
			want, err := solar.ParseTime(tt.at)
			require.NoError(t, err)
			assert.Equal(t, want.Format(time.RFC3339), rows[0][0], "--at is the first hour")
			t.Logf("%s: largest difference between spottrain and forecast.py: %.3g kW", tt.name, max(worst, at))
		})
	}
}

// TestForecastErrors: a forecast that cannot be made is one line on stderr naming the file or the
// flag, exit status 2, and nothing at --out.
func TestForecastErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeForecastHistory(t, filepath.Join(dir, "pv.csv"), 40)
	run := trainForecaster(t, dir, "roof", "csv", "pv.csv", 24)

	// 20 hours, fewer than the lookback of 24.
	writeForecastHistory(t, filepath.Join(dir, "short.csv"), 1)
	doc, err := os.ReadFile(filepath.Join(dir, "short.csv"))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(doc), "\n")
	testutil.WriteFile(t, filepath.Join(dir, "short.csv"), strings.Join(lines[:21], ""))
	// 5 missing hours, more than data.lstm.max_gap_fill_hours (3).
	doc, err = os.ReadFile(filepath.Join(dir, "pv.csv"))
	require.NoError(t, err)
	lines = strings.SplitAfter(string(doc), "\n")
	testutil.WriteFile(t, filepath.Join(dir, "gap.csv"), strings.Join(append(lines[:101:101], lines[106:]...), ""))
	// A PVGIS export of a plant 4° further north.
	var b strings.Builder
	b.WriteString("Latitude (decimal degrees):\t52.100\nLongitude (decimal degrees):\t11.600\n" +
		"Nominal power of the PV system (c-Si) (kWp):\t5.0\ntime,P,G(i),H_sun,T2m,WS10m,Int\n")
	for h := range 72 {
		fmt.Fprintf(&b, "%s,0.0,0.0,0.0,10.0,1.0,0.0\n", forecastStart.Add(time.Duration(h)*time.Hour+10*time.Minute).Format("20060102:1504"))
	}
	testutil.WriteFile(t, filepath.Join(dir, "north.csv"), b.String())
	require.NoError(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
	// An image model's run.
	r := spottrain(t, dir, "train", "--experiment", "resnet-small-ondemand", "--set", "run_dir=img", "--set", "device=cpu",
		"--set", "threads=1", "--set", "model.resnet.width=0.125", "--set", "data.resnet.synthetic_samples=64",
		"--set", "data.resnet.classes=4", "--set", "data.resnet.workers=1", "--set", "train.epochs=1",
		"--set", "train.batch_size=32", "--set", "train.eval_batch_size=32", "--set", "schedule.warmup_steps=1",
		"--set", "interrupts.time_scale=1")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)

	for _, tt := range []struct {
		name string
		args []string
		want []string // substrings of the error line
	}{
		{"TooLittleHistory", []string{run, "--history", "short.csv"},
			[]string{"short.csv starts at 2024-04-01T00:00:00Z: a forecast from 2024-04-01T20:00:00Z needs the 24 hours from 2024-03-31T20:00:00Z"}},
		{"Gap", []string{run, "--history", "gap.csv"}, []string{"gap.csv:", "gap of 5 missing hours", "at most 3 hours are filled"}},
		{"AnotherSite", []string{run, "--history", "north.csv"},
			[]string{"north.csv is for a plant at 52.100°, 11.600°; the model was trained for one at 48.100°, 11.600°"}},
		{"ImageModel", []string{"img", "--history", "pv.csv"}, []string{"img/step-", "holds a ResNet-18, not a forecaster"}},
		{"BadAt", []string{run, "--history", "pv.csv", "--at", "yesterday"}, []string{"forecast: --at: cannot parse \"yesterday\""}},
		{"AtNotOnTheHour", []string{run, "--history", "pv.csv", "--at", "2024-04-20 06:30"}, []string{"forecast time 2024-04-20T06:30:00Z is not on the hour"}},
		{"NoHistoryFlag", []string{run}, []string{"forecast: --history FILE is required"}},
		{"NoHistoryFile", []string{run, "--history", "nope.csv"}, []string{"nope.csv", "no such file"}},
		{"NoCheckpoints", []string{"empty", "--history", "pv.csv"}, []string{"no checkpoints in empty"}},
		{"NoRunDir", []string{"nope", "--history", "pv.csv"}, []string{"run dir nope does not exist"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.DirNames(t, dir)
			r := spottrain(t, dir, append([]string{"forecast", "--out", "f.csv", "--plot", "f.png"}, tt.args...)...)
			assert.Equal(t, 2, r.code, "stderr: %s", r.stderr)
			assert.Empty(t, r.stdout)
			msg := errorLine(t, r.stderr)
			for _, s := range tt.want {
				assert.Contains(t, msg, s)
			}
			assert.Equal(t, before, testutil.DirNames(t, dir), "nothing written")
		})
	}
}

// TestForecastOutPlot: --out writes the CSV through a temporary file that does not stay, --plot a
// PNG, and the CSV is what standard output gets without --out.
func TestForecastOutPlot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeForecastHistory(t, filepath.Join(dir, "pv.csv"), 40)
	run := trainForecaster(t, dir, "roof", "csv", "pv.csv", 24)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "out"), 0o755))
	r := spottrain(t, dir, "forecast", run, "--history", "pv.csv", "--out", "out/f.csv", "--plot", "out/f.png")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stdout)
	assert.Equal(t, []string{"f.csv", "f.png"}, testutil.DirNames(t, filepath.Join(dir, "out")), "no temporary file left")
	png, err := os.ReadFile(filepath.Join(dir, "out", "f.png"))
	require.NoError(t, err)
	require.Greater(t, len(png), 8)
	assert.Equal(t, "\x89PNG\r\n\x1a\n", string(png[:8]))
	doc, err := os.ReadFile(filepath.Join(dir, "out", "f.csv"))
	require.NoError(t, err)
	rows := forecastRows(t, string(doc))
	assert.Len(t, rows, 24)
	assert.Equal(t, "2024-05-11T00:00:00Z", rows[0][0], "the hour after the history's last")

	r = spottrain(t, dir, "forecast", run, "--history", "pv.csv")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, string(doc), r.stdout)
}
