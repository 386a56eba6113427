// Package metrics declares the scores of spottrain's workloads: their names, the main one first,
// and for each whether a higher or a lower value is better. It is the one place that knows a
// metric's direction: the trainer's workloads report these sets, and the milestone strategy, the
// retention of the best checkpoint and the analysis of finished runs ask them.
package metrics

import "fmt"

// A Metric is one score of an evaluation.
type Metric struct {
	Name         string
	HigherBetter bool
}

// Mode is "max" when higher values are better and "min" otherwise: the words of the
// checkpoint.mode key and of the checkpoint store's best-checkpoint option.
func (m Metric) Mode() string {
	if m.HigherBetter {
		return "max"
	}
	return "min"
}

// Better reports whether a is a strictly better value than b.
func (m Metric) Better(a, b float64) bool {
	if m.HigherBetter {
		return a > b
	}
	return a < b
}

// A Set is the metrics one workload reports, its main metric first.
type Set []Metric

// Main is the metric a workload is judged by.
func (s Set) Main() Metric { return s[0] }

// Find returns the metric called name.
func (s Set) Find(name string) (Metric, bool) {
	for _, m := range s {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Names lists the names of s in order.
func (s Set) Names() []string {
	out := make([]string, len(s))
	for i, m := range s {
		out[i] = m.Name
	}
	return out
}

// Forecast is what the solar forecaster reports over the daylight hours of the windows it scores:
// the model's RMSE (its main metric) and MAE in kW, its RMSE and MAE as fractions of capacity
// (nrmse, nmae), its skill 1 - RMSE/RMSE_ref against each baseline (above 0 beats it), and each
// baseline's RMSE and MAE in kW. (Its evaluations also report the mean bias, mbe_kw, which has no
// better direction.)
var Forecast = Set{
	{Name: "rmse_kw"},
	{Name: "mae_kw"},
	{Name: "nrmse"},
	{Name: "nmae"},
	{Name: "skill_cliper", HigherBetter: true},
	{Name: "skill_smart_persistence", HigherBetter: true},
	{Name: "skill_climatology", HigherBetter: true},
	{Name: "skill_persistence", HigherBetter: true},
	{Name: "cliper_rmse_kw"},
	{Name: "cliper_mae_kw"},
	{Name: "smart_persistence_rmse_kw"},
	{Name: "smart_persistence_mae_kw"},
	{Name: "climatology_rmse_kw"},
	{Name: "climatology_mae_kw"},
	{Name: "persistence_rmse_kw"},
	{Name: "persistence_mae_kw"},
}

// Classification is what an image classifier of classes classes reports: top-1 accuracy (its
// main metric) and top-k accuracy with k = min(5, classes), both in [0, 1].
func Classification(classes int) Set {
	return Set{
		{Name: "top1", HigherBetter: true},
		{Name: fmt.Sprintf("top%d", min(5, classes)), HigherBetter: true},
	}
}

// OfModel returns the metrics that a model kind of the config (model.kind) reports, for readers
// that know a run only by its config: lstm reports Forecast, resnet Classification (its top-k
// named for five classes or more). ok is false for an unknown kind.
func OfModel(kind string) (s Set, ok bool) {
	switch kind {
	case "lstm":
		return Forecast, true
	case "resnet":
		return Classification(5), true
	}
	return nil, false
}
