package train

// Checks of a job's inputs against the machine it runs on, made in prepare before anything is
// written: each error names the config key.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"spottrain/checkpoint"
	"spottrain/configs"
	"spottrain/data/cifar"
	"spottrain/events"
)

// solarFeatures bounds the features per hour of a PV series (data/solar: at most 8).
const solarFeatures = 8

// dataBytes estimates the memory the data of cfg holds once generated, in bytes, and the config
// key that sizes it; 0 and "" for data read from a file, whose size the file bounds.
func dataBytes(cfg configs.Config) (uint64, string) {
	switch d := cfg.Data; {
	case d.Source == "synthetic" && d.LSTM != nil:
		l := d.LSTM
		// Per hour of the series: its raw (float64) and normalized (float32) features and a window
		// starting there: lookback hours of features, the target and the persistence forecast.
		perHour := solarFeatures*(8+4) + (l.LookbackHours*solarFeatures+2*l.HorizonHours)*4
		return uint64(l.Days) * 24 * uint64(perHour), "data.lstm.days"
	case d.Source == "synthetic-cifar" && d.ResNet != nil:
		n := uint64(d.ResNet.SyntheticSamples)
		return (n + max(n/5, 1)) * (cifar.ImageLen + 8), "data.resnet.synthetic_samples" // pixels and a label
	}
	return 0, ""
}

// checkMemory returns an error naming the key that sizes the data of cfg when procs copies of that
// data (one per process of a group on this machine) would not fit in avail bytes (0: the memory
// this machine has available, as /proc/meminfo says; no check where it cannot be read).
func checkMemory(cfg configs.Config, avail uint64, procs int) error {
	need, key := dataBytes(cfg)
	if need == 0 {
		return nil
	}
	need *= uint64(procs) // every process of a group on this machine holds its own copy
	if avail == 0 {
		var ok bool
		if avail, ok = memAvailable(); !ok {
			return nil
		}
	}
	if need <= avail {
		return nil
	}
	each := ""
	if procs > 1 {
		each = fmt.Sprintf(" (%d processes of a group, each with its copy)", procs)
	}
	return &configs.Error{Key: key, Msg: fmt.Sprintf("the data would take about %.3g GB of memory%s, and this machine has %.3g GB available",
		float64(need)/1e9, each, float64(avail)/1e9)}
}

// memAvailable returns MemAvailable of /proc/meminfo in bytes; false where there is none.
func memAvailable() (uint64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

// checkRunDirOwner returns a *configs.Error at run_dir when dir exists, holds files and none of
// them is a run's (its lock, event log, config, a step-* checkpoint or the run.log of spottrain
// run): a run would mix its files with another's (run_dir=. or a home folder). A missing or empty
// dir is fine.
func checkRunDirOwner(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return nil // a dir that cannot be listed fails at open, with its own error
	}
	for _, e := range entries {
		switch n := e.Name(); {
		case n == checkpoint.LockName, n == events.FileName, n == ConfigFile, n == "run.log", strings.HasPrefix(n, "step-"):
			return nil
		}
	}
	return &configs.Error{Key: "run_dir", Msg: fmt.Sprintf("%s is not empty (it holds %s) and is no run's: give a new or empty folder",
		dir, entries[0].Name())}
}
