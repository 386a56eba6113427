package metrics_test

import (
	"testing"

	"spottrain/metrics"
)

func TestDirections(t *testing.T) {
	for _, tc := range []struct {
		set          metrics.Set
		name         string
		higherBetter bool
	}{
		{metrics.Forecast, "rmse_kw", false},
		{metrics.Forecast, "mae_kw", false},
		{metrics.Forecast, "skill_cliper", true},
		{metrics.Forecast, "skill_persistence", true},
		{metrics.Forecast, "nrmse", false},
		{metrics.Forecast, "cliper_rmse_kw", false},
		{metrics.Forecast, "persistence_rmse_kw", false},
		{metrics.Classification(100), "top1", true},
		{metrics.Classification(100), "top5", true},
		{metrics.Classification(3), "top3", true},
	} {
		m, ok := tc.set.Find(tc.name)
		if !ok {
			t.Fatalf("%s: not declared in %v", tc.name, tc.set.Names())
		}
		if m.HigherBetter != tc.higherBetter {
			t.Errorf("%s: HigherBetter = %v, want %v", tc.name, m.HigherBetter, tc.higherBetter)
		}
		wantMode := map[bool]string{true: "max", false: "min"}[tc.higherBetter]
		if m.Mode() != wantMode {
			t.Errorf("%s: Mode() = %q, want %q", tc.name, m.Mode(), wantMode)
		}
		if got := m.Better(2, 1); got != tc.higherBetter {
			t.Errorf("%s: Better(2, 1) = %v", tc.name, got)
		}
		if m.Better(1, 1) {
			t.Errorf("%s: a value is better than itself", tc.name)
		}
	}
}

func TestMainAndKinds(t *testing.T) {
	if got := metrics.Forecast.Main().Name; got != "rmse_kw" {
		t.Errorf("forecast main metric %q, want rmse_kw", got)
	}
	if got := metrics.Classification(10).Main().Name; got != "top1" {
		t.Errorf("classification main metric %q, want top1", got)
	}
	if _, ok := metrics.Classification(10).Find("top10"); ok {
		t.Error("top-k goes beyond 5")
	}
	for kind, main := range map[string]string{"lstm": "rmse_kw", "resnet": "top1"} {
		s, ok := metrics.OfModel(kind)
		if !ok || s.Main().Name != main {
			t.Errorf("OfModel(%q) = %v, %v; want main %s", kind, s.Names(), ok, main)
		}
	}
	if _, ok := metrics.OfModel("transformer"); ok {
		t.Error("an unknown kind has metrics")
	}
}
