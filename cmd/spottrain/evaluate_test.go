package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tinyForecaster trains the tiny LSTM of tiny with a day-ahead horizon and returns its run dir.
func tinyForecaster(t *testing.T, dir string) string {
	t.Helper()
	runDir := filepath.Join(dir, "lstm")
	r := spottrain(t, dir, append(append(lstmTrain(), tiny(runDir)...), "--set", "data.lstm.horizon_hours=24")...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return runDir
}

// TestEvaluate scores a trained forecaster on its test split: the table of the training run, the
// skill by horizon, scores.csv with the same numbers, and the four figures.
func TestEvaluate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runDir := tinyForecaster(t, dir)
	doc, err := os.ReadFile(filepath.Join(runDir, "metrics.json"))
	require.NoError(t, err)
	var trained metrics
	require.NoError(t, json.Unmarshal(doc, &trained))

	r := spottrain(t, dir, "evaluate", runDir, "--out", "ev")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	lstm := lstmRowRE.FindStringSubmatch(r.stdout)
	require.NotNil(t, lstm, r.stdout)
	assert.Equal(t, fmt.Sprintf("%.4f", trained.Test["mae_kw"]), lstm[1], "the test split's MAE, as training reported it")
	assert.Regexp(t, `(?m)^ +CLIPER( [+-]\d\.\d\d){24} [+-]\d\.\d{3}$`, r.stdout, "skill against CLIPER at each of 24 horizons and their mean")

	rows := readCSV(t, filepath.Join(dir, "ev", "scores.csv"))
	assert.Equal(t, []string{"group", "value", "forecaster", "hours", "mae_kw", "rmse_kw", "mbe_kw", "nmae", "nrmse", "model_skill"}, rows[0])
	var horizons int
	for _, row := range rows[1:] {
		if row[0] == "all" && row[2] == "model" {
			mae, err := strconv.ParseFloat(row[4], 64)
			require.NoError(t, err)
			assert.Equal(t, lstm[1], fmt.Sprintf("%.4f", mae), "scores.csv's MAE is the table's")
		}
		if row[0] == "horizon" && row[2] == "cliper" {
			horizons++
			assert.NotEmpty(t, row[9], "the model's skill against CLIPER")
		}
	}
	assert.Equal(t, 24, horizons, "a CLIPER row per horizon step")
	for _, name := range []string{"days", "by-hour", "skill-horizon", "skill-month"} {
		png, err := os.ReadFile(filepath.Join(dir, "ev", name+".png"))
		require.NoError(t, err)
		assert.Equal(t, "\x89PNG", string(png[:4]), name)
		assert.FileExists(t, filepath.Join(dir, "ev", name+".svg"))
	}

	// Another history of the same plant, with the temperature and cloud cover the synthetic model
	// reads: every window of it is scored.
	var b strings.Builder
	b.WriteString("timestamp,power_kw,temperature,cloud\n")
	for h := range 10 * 24 {
		at := time.Date(2023, 6, 1+h/24, h%24, 0, 0, 0, time.UTC)
		fmt.Fprintf(&b, "%s,%.3f,%d,0.%d\n", at.Format("2006-01-02 15:04"), 3*clearSkyShare(at), 10+h%24/2, h%7)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "june.csv"), []byte(b.String()), 0o644))
	r = spottrain(t, dir, "evaluate", runDir, "--data", "june.csv", "--out", "ev-june")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "on every window of june.csv: 193 windows of 24 h", "10 days less the first: 240 - 48 + 1 windows")
	assert.Contains(t, r.stdout, "daylight scores (sun zenith < 87°, measured hours), every window of june.csv:")
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return rows
}

// TestEvaluateErrors: one line naming what is wrong, exit 2, nothing written.
func TestEvaluateErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runDir := tinyForecaster(t, dir)
	r := spottrain(t, dir, "train", "--experiment", "resnet-small-ondemand", "--set", "run_dir=image", "--set", "device=cpu",
		"--set", "data.resnet.synthetic_samples=20", "--set", "data.resnet.classes=2", "--set", "train.epochs=1", "--set", "train.batch_size=10")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "short.csv"), []byte("timestamp,power_kw,temperature,cloud\n2023-06-01 00:00,0,10,1\n2023-06-01 01:00,0,10,1\n"), 0o644))
	// A run on a CSV history that changes after training.
	writeDays := func(days int, peak float64) {
		var b strings.Builder
		b.WriteString("timestamp,power_kw\n")
		for h := range days * 24 {
			at := time.Date(2023, 5, 1+h/24, h%24, 0, 0, 0, time.UTC)
			fmt.Fprintf(&b, "%s,%.3f\n", at.Format("2006-01-02 15:04"), peak*clearSkyShare(at))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "may.csv"), []byte(b.String()), 0o644))
	}
	writeDays(31, 3)
	r = spottrain(t, dir, append(append(lstmTrain(), tiny("csvrun")...), "--set", "data.source=csv", "--set", "data.path=may.csv")...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	writeDays(31, 2.5)
	pvgis, err := os.ReadFile("../../data/solar/testdata/pvgis_hourly.csv")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "italy.csv"), pvgis, 0o644))
	for _, tc := range []struct {
		name string
		args []string
		want *regexp.Regexp
	}{
		{"ImageModel", []string{"image"}, regexp.MustCompile(`^image/step-\d+ holds a ResNet-18, not a forecaster: forecasts need an LSTM run$`)},
		{"NoRunDir", []string{"nowhere"}, regexp.MustCompile(`^run dir nowhere does not exist$`)},
		{"ShortHistory", []string{runDir, "--data", "short.csv"}, regexp.MustCompile(`^short.csv has 2 hours, fewer than the 48 of one window \(lookback 24 \+ horizon 24\)$`)},
		{"OtherSite", []string{runDir, "--data", "italy.csv"}, regexp.MustCompile(`^italy.csv is for a plant at 45.000°, 8.000°; the model was trained for one at 48.100°, 11.600°$`)},
		{"NoStep", []string{runDir, "--step", "7"}, regexp.MustCompile(`^no checkpoint of step 7 in .*lstm$`)},
		{"DataChanged", []string{"csvrun"}, regexp.MustCompile(`^/.*/may.csv: the data is not what csvrun/step-\d+ was trained on \(its preprocessing differs from preprocessing.json\): evaluate it with --data FILE$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := spottrain(t, dir, append([]string{"evaluate", "--out", "ev-" + tc.name}, tc.args...)...)
			assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Regexp(t, tc.want, errorLine(t, r.stderr))
			assert.NoDirExists(t, filepath.Join(dir, "ev-"+tc.name))
		})
	}
}
