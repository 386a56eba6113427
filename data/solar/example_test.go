package solar_test

import (
	"fmt"
	"math"

	"spottrain/data/solar"
)

func ExampleMakeDataset() {
	s, err := solar.Generate(solar.DefaultSynthConfig()) // 730 days, 5 kW near Munich
	if err != nil {
		panic(err)
	}
	// L=48, H=24, 70/15/15; the model predicts the clear-sky index and reads the target hours'
	// known inputs after the lookback.
	ds, err := solar.MakeDataset(s, solar.DefaultWindowConfig(), solar.ModelInputs{Target: solar.TargetClearSkyIndex, FutureInputs: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(ds.Prep.Features)
	for _, w := range []*solar.Windows{ds.Train, ds.Val, ds.Test} {
		fmt.Printf("N=%d X=[%d][%d][%d] Y=[%d][3][%d]\n", w.N, w.N, w.Steps, w.Features, w.N, w.Horizon)
	}
	// An output of 1 (the clear-sky index) at noon of the first test window is the clear-sky power.
	fmt.Println(ds.Test.ForecastKW(0, 12, 1) == math.Min(ds.Test.ClearSky[12], 5))
	// Output:
	// [hour_sin hour_cos doy_sin doy_cos clearsky climatology observed temperature cloud clearsky_index power]
	// N=12193 X=[12193][72][11] Y=[12193][3][24]
	// N=2557 X=[2557][72][11] Y=[2557][3][24]
	// N=2557 X=[2557][72][11] Y=[2557][3][24]
	// true
}

func ExampleOpen() {
	s, err := solar.Open("testdata/pvgis_hourly.csv", solar.CSVOptions{})
	if err != nil {
		fmt.Println(err) // one line: file:line: what is wrong
		return
	}
	fmt.Println(s.Len(), "hours from", s.Time[0].Format("2006-01-02T15:04Z"), "capacity", s.CapacityKW, "kW")
	// Output: 72 hours from 2020-06-01T00:00Z capacity 1 kW
}
