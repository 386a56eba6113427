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
	ds, err := solar.MakeDataset(s, solar.DefaultWindowConfig()) // L=48, H=24, 70/15/15
	if err != nil {
		panic(err)
	}
	fmt.Println(ds.FeatureNames)
	for _, w := range []*solar.Windows{ds.Train, ds.Val, ds.Test} {
		fmt.Printf("N=%d X=[%d][%d][%d] Y=[%d][%d]\n", w.N, w.N, w.Lookback, w.Features, w.N, w.Horizon)
	}
	// A target (or a model's output) de-normalizes to kW with Norm.PowerKW,
	// up to float32 rounding.
	i := int(ds.Test.TargetStart[0].Sub(s.Time[0]).Hours()) // series index of the first test target
	fmt.Println(math.Abs(ds.Norm.PowerKW(ds.Test.Y[0])-s.Power[i]) < 1e-4)
	// Output:
	// [hour_sin hour_cos doy_sin doy_cos irradiance_clearsky temperature cloud power]
	// N=12193 X=[12193][48][8] Y=[12193][24]
	// N=2557 X=[2557][48][8] Y=[2557][24]
	// N=2557 X=[2557][48][8] Y=[2557][24]
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
