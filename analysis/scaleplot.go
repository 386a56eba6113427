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
	p := newPlot(fmt.Sprintf("Spot as the job grows, %s, %s", m.Model, sc),
		"machines in the job", "break-even interruptions per machine-hour")
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var ticks plot.ConstantTicks
	for n := 1; n <= ScaleMaxMachines; n *= 2 {
		label := strconv.Itoa(n)
		if n&0x55555555 == 0 { // label 1, 4, 16 ...: the others would crowd
			label = ""
		}
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: label})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, plot.LogTicks{Prec: -1}
	l := newLegend()
	lo, hi := m.RateH, m.RateH
	one := m.OneRestart()
	for _, ss := range m.Strategies {
		clr := strategyColor(ss.Strategy)
		model, parallel := breakEvens(m, ss), breakEvens(one, ss)
		var measured plotter.XYs
		for _, pt := range ss.Points {
			measured = append(measured, plotter.XY{X: float64(pt.Machines), Y: pt.BreakEven})
		}
		measured = positive(measured)
		for _, xy := range append(append(model, parallel...), measured...) {
			lo, hi = min(lo, xy.Y), max(hi, xy.Y)
		}
		var thumbs []plot.Thumbnailer
		for _, ln := range []*plotter.Line{newLine(model, line(clr, 2)), newLine(parallel, line(clr, 1.5, dashed...))} {
			if ln != nil {
				p.Add(ln)
				thumbs = append(thumbs, ln)
			}
		}
		if s := newScatter(measured, draw.GlyphStyle{Color: clr, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}); s != nil {
			p.Add(s)
			thumbs = append(thumbs, s)
		}
		if len(thumbs) > 0 {
			l.Add(fmt.Sprintf("%s: %s", ss.Strategy, stopsText(m.StopsPaying(ss, m.RateH), one.StopsPaying(ss, m.RateH))), thumbs...)
		}
	}
	if !(lo > 0) || !finite(lo, hi) {
		return nil
	}
	rate := newRules(false, line(rgb(110, 110, 110), 1, dotted...), m.RateH)
	p.Add(rate)
	l.Add(fmt.Sprintf("the runs' rate, %s/h", rateText(m.RateH)), rate)
	p.X.Min, p.X.Max = 1, ScaleMaxMachines
	p.Y.Min, p.Y.Max = lo/2, hi*2
	return &figure{
		fig: Figure{
			Name:  "scale-" + slug(m.Model, sc),
			Title: p.Title.Text,
			Caption: "The interruption rate per machine-hour below which spot still pays, by the number of machines of the job: " +
				"the model fitted to the runs, with the restart growing with the machines as measured here (solid) or staying " +
				"that of one machine (dashed: machines that start in parallel), and the runs at each size (points). Where a " +
				"strategy's line falls below the dotted rate, spot stops paying at that rate; the legend says at how many machines.",
		},
		w: 8 * vg.Inch, h: 4.5 * vg.Inch,
		draw: drawPlot(p, l),
	}
}

// breakEvens are m's break-even rates per machine-hour of ss from 1 to ScaleMaxMachines
// machines, those a log scale can show.
func breakEvens(m *Scale, ss *StrategyScale) plotter.XYs {
	var xys plotter.XYs
	for n := 1; n <= ScaleMaxMachines; n++ {
		xys = append(xys, plotter.XY{X: float64(n), Y: m.BreakEvenPerMachine(ss, n)})
	}
	return positive(xys)
}

// dotted is the dash pattern of a reference rate.
var dotted = []vg.Length{vg.Points(1.5), vg.Points(2.5)}

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

// stopsText says where spot stops paying (Scale.StopsPaying's n) with the restart as fitted and
// with one machine's (dashed).
func stopsText(n, one int) string {
	return fmt.Sprintf("stops at %s (dashed: %s)", stopsAt(n), stopsAt(one))
}

// scaleSizes are the sizes the report's tables show: 1, 2, 4 ... up to ScaleMaxMachines.
func scaleSizes() []int {
	var out []int
	for n := 1; n <= ScaleMaxMachines; n *= 2 {
		out = append(out, n)
	}
	return out
}
