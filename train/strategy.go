package train

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/metrics"
)

// strategyFor builds the checkpoint strategy of the validated cfg, with the validation metric it
// watches (one of the workload's metrics; "" = its main one) and whether smaller or larger values
// are better ("min" or "max": checkpoint.mode, or the metric's declared direction). The config's
// times are spot time: divided by interrupts.time_scale, they become the trainer's wall time.
func strategyFor(cfg configs.Config, declared metrics.Set) (s checkpoint.Strategy, metric, mode string, err error) {
	k := cfg.Checkpoint
	m := declared.Main()
	if k.Metric != "" {
		var ok bool
		if m, ok = declared.Find(k.Metric); !ok {
			return nil, "", "", &InputError{fmt.Errorf("checkpoint.metric: %q is not a validation metric of model.kind %s (have %s)",
				k.Metric, cfg.Model.Kind, strings.Join(declared.Names(), ", "))}
		}
	}
	metric, mode = m.Name, k.Mode
	if mode == "" {
		mode = m.Mode()
	}
	wall := func(spotSeconds float64) time.Duration {
		return time.Duration(spotSeconds / cfg.Interrupts.TimeScale * float64(time.Second))
	}
	s = checkpoint.NewStrategy(checkpoint.StrategyConfig{
		Name: k.Strategy, EverySteps: k.EverySteps, Every: wall(k.EverySeconds), Min: wall(k.MinSeconds),
		Max: wall(k.MaxSeconds), PriorMTBI: wall(k.PriorMTBISeconds), EMA: k.EMA, Mode: mode,
	})
	return s, metric, mode, nil
}

// interruption is an earlier incarnation of a run that did not finish: it ran uptime (from its
// run_start to its last event) and either received a notice (and stopped with every step saved)
// or was killed.
type interruption struct {
	uptime time.Duration
	notice bool
}

// pastInterruptions reads the interrupted incarnations of a run before incarnation current from
// its event log. An incarnation counts when it was killed (no exit event) or preempted (exit 75);
// one that stopped on bad input did not train and does not.
func pastInterruptions(runDir string, current int) ([]interruption, error) {
	evs, err := events.Read(filepath.Join(runDir, events.FileName))
	if err != nil {
		return nil, err
	}
	type span struct {
		start, last time.Time
		exit        int // -1: none
		noticed     bool
	}
	var spans []*span
	byInc := map[int]*span{}
	for _, e := range evs {
		if e.Incarnation == 0 || e.Incarnation >= current {
			continue // the runner's, or this process's
		}
		s := byInc[e.Incarnation]
		if s == nil {
			s = &span{start: e.Time, exit: -1}
			byInc[e.Incarnation] = s
			spans = append(spans, s)
		}
		s.last = e.Time
		switch p := e.Payload.(type) {
		case events.EmergencyCheckpoint, events.SignalReceived:
			s.noticed = true
		case events.Exit:
			s.exit = p.Code
		}
	}
	var out []interruption
	for _, s := range spans {
		if s.exit == -1 || s.exit == codes.ExitPreempted {
			out = append(out, interruption{uptime: s.last.Sub(s.start), notice: s.noticed})
		}
	}
	return out, nil
}

// checkResume refuses to resume the checkpoint ck with cfg (hash cfgHash) when the config ck was
// made under differs in a way that breaks resume, unless force. It reads that config from the
// checkpoint itself (ConfigFile). It returns the changes, for the log.
func checkResume(cfg configs.Config, cfgHash string, ck *checkpoint.Checkpoint, force bool) ([]configs.Change, error) {
	if ck.Manifest.ConfigHash == cfgHash {
		return nil, nil
	}
	doc, err := ck.ReadFile(ConfigFile)
	var old configs.Config
	if err == nil {
		old, err = configs.ParseSaved(filepath.Join(ck.Dir, ConfigFile), doc)
	}
	// The file's own hash, not old.Hash(): a config saved by an earlier layout is upgraded when
	// parsed, and hashes anew.
	if sum := sha256.Sum256(doc); err == nil && hex.EncodeToString(sum[:]) != ck.Manifest.ConfigHash {
		err = errors.New("it is not the config of the checkpoint")
	}
	if err != nil {
		if force {
			return nil, nil
		}
		return nil, &InputError{fmt.Errorf("run dir %s holds checkpoints of another config (hash %.12s, now %.12s), and cannot tell what changed (%v): use another run_dir, or --force to resume anyway",
			cfg.RunDir, ck.Manifest.ConfigHash, cfgHash, err)}
	}
	var breaking, other []configs.Change
	for _, c := range configs.Diff(old, cfg) {
		if c.Breaks {
			breaking = append(breaking, c)
		} else {
			other = append(other, c)
		}
	}
	if len(breaking) > 0 && !force {
		var list []string
		for _, c := range breaking {
			list = append(list, c.String())
		}
		return nil, &InputError{fmt.Errorf("run dir %s holds checkpoints of another config (%s): resuming would not continue the same training; use another run_dir, or --force to resume anyway",
			cfg.RunDir, strings.Join(list, ", "))}
	}
	return append(breaking, other...), nil
}
