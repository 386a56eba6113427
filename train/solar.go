package train

import (
	"errors"
	"fmt"

	"spottrain/configs"
	"spottrain/data/solar"
	"spottrain/torch"
)

// SolarTask is the solar forecasting workload: windows of past weather, time and power (and the
// target hours' known inputs) in, the next hours out, scored in kW over daylight against four
// baselines (see solar.Scores).
type SolarTask struct {
	Data      *solar.Dataset
	EvalBatch int
	x, y      []float32 // batch buffers, reused
}

// TrainSize implements Task.
func (t *SolarTask) TrainSize() int { return t.Data.Train.N }

// Batch implements Task: it copies the windows idx into reused buffers.
func (t *SolarTask) Batch(idx []int) (x, y torch.Host) {
	w := t.Data.Train
	xs, ys := w.Steps*w.Features, 3*w.Horizon
	if need := len(idx) * xs; cap(t.x) < need {
		t.x, t.y = make([]float32, need), make([]float32, len(idx)*ys)
	}
	t.x, t.y = t.x[:len(idx)*xs], t.y[:len(idx)*ys]
	for i, j := range idx {
		copy(t.x[i*xs:(i+1)*xs], w.X[j*xs:(j+1)*xs])
		copy(t.y[i*ys:(i+1)*ys], w.Y[j*ys:(j+1)*ys])
	}
	b := int64(len(idx))
	return torch.Float32s(t.x, b, int64(w.Steps), int64(w.Features)), torch.Float32s(t.y, b, 3, int64(w.Horizon))
}

// Evaluate implements Task on the validation split.
func (t *SolarTask) Evaluate(net *torch.Net, shard Shard, abandon func() bool) (Metrics, error) {
	return t.Score(net, t.Data.Val, shard, abandon)
}

// Test scores net on the test split.
func (t *SolarTask) Test(net *torch.Net, shard Shard, abandon func() bool) (Metrics, error) {
	return t.Score(net, t.Data.Test, shard, abandon)
}

// Score forecasts the windows of w in shard's parts and returns the daylight scores of
// ForecastMetrics over all of w (the shards' sums added up). It calls abandon (nil: never) before
// each part (a batch of EvalBatch windows alone), and returns ErrAbandoned when it says so.
func (t *SolarTask) Score(net *torch.Net, w *solar.Windows, shard Shard, abandon func() bool) (Metrics, error) {
	scores, err := ScoreWindows(net, w, t.Data.Prep.Plant.CapacityKW, t.EvalBatch, shard, abandon)
	if err != nil {
		return nil, err
	}
	return ForecastMetrics(scores)
}

// ScoreWindows forecasts the windows of w in shard's parts (batches of at most batch windows) and
// returns the scores of the model and the baselines, summed over the shards.
func ScoreWindows(net *torch.Net, w *solar.Windows, capacityKW float64, batch int, shard Shard, abandon func() bool) (*solar.Scores, error) {
	xs, h := w.Steps*w.Features, w.Horizon
	out := make([]float32, batch*h)
	kw := make([]float64, h)
	scores := solar.NewScores(capacityKW, h)
	for _, part := range shard.Parts(w.N, batch) {
		if abandon != nil && abandon() {
			return nil, ErrAbandoned
		}
		start, end := part[0], part[1]
		if start == end {
			continue
		}
		b := end - start
		x := torch.Float32s(w.X[start*xs:end*xs], int64(b), int64(w.Steps), int64(w.Features))
		if err := net.Forward(x, out[:b*h]); err != nil {
			return nil, err
		}
		for i := range b {
			for j := range h {
				kw[j] = w.ForecastKW(start+i, j, out[i*h+j])
			}
			scores.Add(w, start+i, kw)
		}
	}
	if err := shard.sum(scores.Sums()); err != nil {
		return nil, err
	}
	return scores, nil
}

// ForecastMetrics returns the daylight scores of metrics.Forecast from s: the model's RMSE, MAE
// and MBE in kW, its nRMSE and nMAE (of capacity), its skill 1 - RMSE/RMSE_ref against each
// baseline, and each baseline's RMSE and MAE.
func ForecastMetrics(s *solar.Scores) (Metrics, error) {
	model := s.All(solar.Model)
	if model.N == 0 {
		return nil, fmt.Errorf("no daylight hours to score")
	}
	m := Metrics{
		"rmse_kw": model.RMSE(), "mae_kw": model.MAE(), "mbe_kw": model.MBE(),
		"nrmse": model.RMSE() / s.CapacityKW, "nmae": model.MAE() / s.CapacityKW,
	}
	for b, name := range solar.BaselineNames {
		ref := s.All(b + 1)
		m["skill_"+name] = model.Skill(ref)
		m[name+"_rmse_kw"], m[name+"_mae_kw"] = ref.RMSE(), ref.MAE()
	}
	return m, nil
}

// SolarData is a solar dataset with where it came from.
type SolarData struct {
	*solar.Dataset
	Source  string         // "synthetic" or the file read
	Repairs []solar.Repair // repairs made while reading the file
}

// LoadSolar generates or reads the PV series that dc names and cuts it into the windows of the
// forecaster mc. dc and mc are the data and model sections of an LSTM config (LSTM set).
func LoadSolar(dc configs.DataConfig, mc configs.ModelConfig, seed uint64) (*SolarData, error) {
	l := dc.LSTM
	var s *solar.Series
	var err error
	switch dc.Source {
	case "synthetic":
		s, err = solar.Generate(solar.SynthConfig{
			Latitude: l.Latitude, Longitude: l.Longitude, Start: l.Start, Days: l.Days,
			CapacityKW: l.CapacityKW, CloudPersistence: l.CloudPersistence, Noise: l.Noise, Seed: seed,
		})
	case "csv":
		gapFill := l.MaxGapFillHours
		if gapFill == 0 {
			gapFill = -1 // the config's 0 means "fill nothing"; the reader's 0 means its default
		}
		s, err = solar.ReadCSV(dc.Path, solar.CSVOptions{
			TimeColumn: l.TimestampColumn, PowerColumn: l.PowerColumn, PowerInWatts: l.PowerUnit == "W",
			CapacityKW: l.CapacityKW, Site: &solar.Site{Latitude: l.Latitude, Longitude: l.Longitude},
			MaxGapFillHours: gapFill,
		})
	case "pvgis":
		s, err = solar.ReadPVGIS(dc.Path)
	default:
		err = fmt.Errorf("unknown data source %q", dc.Source)
	}
	if err != nil {
		return nil, inConfigTerms(err)
	}
	m := mc.LSTM
	ds, err := solar.MakeDataset(s, solar.WindowConfig{
		Lookback: l.LookbackHours, Horizon: l.HorizonHours, TrainFrac: l.TrainFrac, ValFrac: l.ValFrac,
	}, solar.ModelInputs{Target: m.Target, FutureInputs: m.FutureInputs})
	if err != nil {
		if dc.Source == "csv" && errors.Is(err, solar.ErrPowerAtNight) {
			err = fmt.Errorf("%w (set data.lstm.latitude and data.lstm.longitude to the plant's)", err)
		}
		return nil, fmt.Errorf("%s: %w", s.Source, inConfigTerms(err))
	}
	return &SolarData{Dataset: ds, Source: s.Source, Repairs: s.Repairs}, nil
}

// solarKeys maps the option fields of the solar package (as its errors name them) to the config
// keys that set them.
var solarKeys = map[string]string{
	"SynthConfig.Latitude": "data.lstm.latitude", "SynthConfig.Longitude": "data.lstm.longitude",
	"SynthConfig.Start": "data.lstm.start", "SynthConfig.Days": "data.lstm.days",
	"SynthConfig.CapacityKW": "data.lstm.capacity_kw", "SynthConfig.CloudPersistence": "data.lstm.cloud_persistence",
	"SynthConfig.Noise": "data.lstm.noise", "CSVOptions.CapacityKW": "data.lstm.capacity_kw",
	"CSVOptions.Site.Latitude": "data.lstm.latitude", "CSVOptions.Site.Longitude": "data.lstm.longitude",
	"WindowConfig.Lookback": "data.lstm.lookback_hours", "WindowConfig.Horizon": "data.lstm.horizon_hours",
	"WindowConfig.TrainFrac": "data.lstm.train_frac", "WindowConfig.ValFrac": "data.lstm.val_frac",
	"ModelInputs.Target": "model.lstm.target",
	"TimeColumn":         "data.lstm.timestamp_column", "PowerColumn": "data.lstm.power_column",
	"MaxGapFillHours": "data.lstm.max_gap_fill_hours",
}

// inConfigTerms returns err with the solar option field it names replaced by its config key: a
// *solar.ConfigError becomes a *configs.Error at that key, and a *solar.ParseError that an option
// would resolve says which key to set. Other errors are returned as they are.
func inConfigTerms(err error) error {
	var ce *solar.ConfigError
	if errors.As(err, &ce) {
		if key, ok := solarKeys[ce.Field]; ok {
			return &configs.Error{Key: key, Msg: ce.Msg}
		}
	}
	var pe *solar.ParseError
	if errors.As(err, &pe) && solarKeys[pe.Option] != "" {
		named := *pe
		named.Msg += " (set " + solarKeys[pe.Option] + ")"
		return &named
	}
	return err
}
