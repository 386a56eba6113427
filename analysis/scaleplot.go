package analysis

import (
	"fmt"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ScaleMaxMachines is the largest job the Scale figure and tables show.
const ScaleMaxMachines = 256

// scaleFigure is the figure of m: each strategy's break-even interruption rate per machine-hour
// as the job grows from 1 to ScaleMaxMachines machines (the model: lines; the runs: points),
// against the rate the runs saw (dashed): where a line falls below it, spot stops paying.
func scaleFigure(m *Scale) *figure {
	sc := scenario(m.NoNoticeShare, 1)
	p := newPlot(fmt.Sprintf("Where spot stops paying as the job grows, %s, %s", m.Model, sc),
		"machines in the job", "break-even interruptions per machine-hour")
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var ticks plot.ConstantTicks
	for n := 1; n <= ScaleMaxMachines; n *= 2 {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, plot.LogTicks{Prec: -1}
	l := newLegend()
	lo, hi := m.RateH, m.RateH
	for _, ss := range m.Strategies {
		clr := strategyColor(ss.Strategy)
		var model, measured plotter.XYs
		for n := 1; n <= ScaleMaxMachines; n++ {
			model = append(model, plotter.XY{X: float64(n), Y: m.BreakEvenPerMachine(ss, n)})
		}
		for _, pt := range ss.Points {
			measured = append(measured, plotter.XY{X: float64(pt.Machines), Y: pt.BreakEven})
		}
		model, measured = positive(model), positive(measured)
		for _, xy := range append(model, measured...) {
			lo, hi = min(lo, xy.Y), max(hi, xy.Y)
		}
		var thumbs []plot.Thumbnailer
		if ln := newLine(model, line(clr, 2)); ln != nil {
			p.Add(ln)
			thumbs = append(thumbs, ln)
		}
		if s := newScatter(measured, draw.GlyphStyle{Color: clr, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}); s != nil {
			p.Add(s)
			thumbs = append(thumbs, s)
		}
		if len(thumbs) > 0 {
			l.Add(ss.Strategy+": "+stopsText(m.StopsPaying(ss, m.RateH)), thumbs...)
		}
	}
	if !(lo > 0) || !finite(lo, hi) {
		return nil
	}
	rate := newRules(false, line(rgb(110, 110, 110), 1.5, dashed...), m.RateH)
	p.Add(rate)
	l.Add(fmt.Sprintf("the runs' rate, %s per machine-hour", rateText(m.RateH)), rate)
	p.X.Min, p.X.Max = 1, ScaleMaxMachines
	p.Y.Min, p.Y.Max = lo/2, hi*2
	return &figure{
		fig: Figure{
			Name:  "scale-" + slug(m.Model, sc),
			Title: p.Title.Text,
			Caption: "The interruption rate per machine-hour below which spot still pays, by the number of machines of the job: " +
				"the model fitted to the runs (lines) and the runs at each size (points). Where a strategy's line falls below " +
				"the dashed rate, spot stops paying at that rate; the legend says at how many machines.",
		},
		w: 7.5 * vg.Inch, h: 4.5 * vg.Inch,
		draw: drawPlot(p, l),
	}
}

// positive keeps the points of xys with finite, positive coordinates (a log scale's).
func positive(xys plotter.XYs) plotter.XYs {
	var out plotter.XYs
	for _, xy := range xys {
		if finite(xy.X, xy.Y) && xy.X > 0 && xy.Y > 0 {
			out = append(out, xy)
		}
	}
	return out
}

// stopsText says where spot stops paying (Scale.StopsPaying's n).
func stopsText(n int) string {
	switch {
	case n == 0:
		return "pays at every size"
	case n == 1:
		return "does not pay even on 1 machine"
	}
	return fmt.Sprintf("stops paying at %d machines", n)
}

// scaleSizes are the sizes the report's tables show: 1, 2, 4 ... up to ScaleMaxMachines.
func scaleSizes() []int {
	var out []int
	for n := 1; n <= ScaleMaxMachines; n *= 2 {
		out = append(out, n)
	}
	return out
}
