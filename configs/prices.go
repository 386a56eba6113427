package configs

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// CostConfig prices the GPU-hours of a run for the cost model of analysis: a named GPU of the
// built-in price list (prices.yaml, with its source and date), or prices of one's own.
type CostConfig struct {
	GPU             string  `yaml:"gpu"`                // a GPU of the price list; "" with both prices set
	SpotPerHour     float64 `yaml:"spot_per_hour"`      // $ per GPU-hour on spot; 0 = the GPU's list price
	OnDemandPerHour float64 `yaml:"on_demand_per_hour"` // $ per GPU-hour on demand; 0 = the GPU's list price
	Source          string  `yaml:"source"`             // where prices of one's own come from
	AsOf            string  `yaml:"as_of"`              // and when
}

// Prices are the GPU prices a cost is computed with.
type Prices struct {
	GPU             string
	SpotPerHour     float64
	OnDemandPerHour float64
	Source, AsOf    string
}

// Ratio is the spot price as a share of the on-demand price.
func (p Prices) Ratio() float64 { return p.SpotPerHour / p.OnDemandPerHour }

// String describes p in one line.
func (p Prices) String() string {
	name := p.GPU
	if name == "" {
		name = "GPU"
	}
	s := fmt.Sprintf("%s: $%.2f/h spot, $%.2f/h on demand (%.0f%% off)", name, p.SpotPerHour, p.OnDemandPerHour, 100*(1-p.Ratio()))
	if p.Source != "" || p.AsOf != "" {
		s += fmt.Sprintf("; source: %s, as of %s", p.Source, p.AsOf)
	}
	return s
}

//go:embed prices.yaml
var pricesYAML []byte

// priceList is prices.yaml.
type priceList struct {
	Source string `yaml:"source"`
	AsOf   string `yaml:"as_of"`
	GPUs   map[string]struct {
		OnDemand float64 `yaml:"on_demand"`
		Spot     float64 `yaml:"spot"`
	} `yaml:"gpus"`
}

var builtinPrices = func() priceList {
	var l priceList
	if err := yaml.Unmarshal(pricesYAML, &l); err != nil {
		panic("configs: prices.yaml: " + err.Error())
	}
	return l
}()

// GPUs lists the GPUs of the built-in price list, sorted.
func GPUs() []string {
	names := make([]string, 0, len(builtinPrices.GPUs))
	for n := range builtinPrices.GPUs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Prices resolves c: the list prices of c.GPU, overridden by the prices c sets. The error
// names the key at fault.
func (c CostConfig) Prices() (Prices, error) {
	p := Prices{GPU: c.GPU, SpotPerHour: c.SpotPerHour, OnDemandPerHour: c.OnDemandPerHour, Source: c.Source, AsOf: c.AsOf}
	if c.GPU != "" {
		g, ok := builtinPrices.GPUs[c.GPU]
		if !ok {
			return p, &Error{Key: "cost.gpu", Msg: fmt.Sprintf("unknown GPU %q: the price list has %s; or set cost.spot_per_hour and cost.on_demand_per_hour",
				c.GPU, strings.Join(GPUs(), ", "))}
		}
		listed := c.SpotPerHour == 0 || c.OnDemandPerHour == 0
		if c.SpotPerHour == 0 {
			p.SpotPerHour = g.Spot
		}
		if c.OnDemandPerHour == 0 {
			p.OnDemandPerHour = g.OnDemand
		}
		if listed && c.Source == "" {
			p.Source, p.AsOf = builtinPrices.Source, builtinPrices.AsOf
		}
	}
	switch {
	case p.SpotPerHour <= 0:
		return p, &Error{Key: "cost.spot_per_hour", Msg: fmt.Sprintf("must be > 0, or name cost.gpu (got %v)", c.SpotPerHour)}
	case p.OnDemandPerHour <= 0:
		return p, &Error{Key: "cost.on_demand_per_hour", Msg: fmt.Sprintf("must be > 0, or name cost.gpu (got %v)", c.OnDemandPerHour)}
	}
	return p, nil
}
