package analysis

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"spottrain/data/solar"
)

// forecastColors are the colours of the model and the baselines in the forecast figures, by
// solar forecaster index.
var forecastColors = [solar.NumForecasters]color.Color{
	rgb(0x1f, 0x77, 0xb4), rgb(0x7f, 0x7f, 0x7f), rgb(0x2c, 0xa0, 0x2c), rgb(0x94, 0x67, 0xbd), rgb(0xd6, 0x27, 0x28),
}

// timeXYs pairs times (as Unix seconds) with values.
func timeXYs(times []time.Time, v []float64) plotter.XYs {
	xys := make(plotter.XYs, len(times))
	for i, t := range times {
		xys[i] = plotter.XY{X: float64(t.Unix()), Y: v[i]}
	}
	return xys
}

// PlotForecast draws the last two days of the history s, the forecast kw of q, its clear-sky power
// and the CLIPER baseline into path (.png or .svg), replacing it whole.
func PlotForecast(path string, s *solar.Series, q *solar.Query, kw []float64) error {
	ext := strings.TrimPrefix(filepath.Ext(path), ".")
	if ext != "png" && ext != "svg" {
		return fmt.Errorf("figure %s: its name must end in .png or .svg", path)
	}
	p := newPlot("forecast from "+q.Times[0].Format("2006-01-02 15:04 UTC"), "time (UTC)", "power (kW)")
	p.X.Tick.Marker = plot.TimeTicks{Format: "Jan 2\n15:04"}
	l := newLegend()
	from := max(0, s.Len()-48)
	past := newLine(timeXYs(s.Time[from:], s.Power[from:]), line(color.Black, 1.5))
	model := newLine(timeXYs(q.Times, kw), line(forecastColors[solar.Model], 2))
	cs := newLine(timeXYs(q.Times, q.ClearSkyKW), line(rgb(0xff, 0x7f, 0x0e), 1, vg.Points(4), vg.Points(3)))
	cliper := newLine(timeXYs(q.Times, q.CLIPERKW), line(forecastColors[1+solar.BaselineCLIPER], 1, vg.Points(2), vg.Points(2)))
	p.Add(past, model, cs, cliper)
	l.Add("measured", past)
	l.Add("forecast", model)
	l.Add("clear sky", cs)
	l.Add("CLIPER", cliper)
	c, err := draw.NewFormattedCanvas(8*vg.Inch, 4*vg.Inch, ext)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	drawPlot(p, l)(dc)
	return writeTo(path, c)
}

// DayForecast is one day of a forecaster's test: the hours, what was measured and what the model
// and CLIPER forecast, in kW.
type DayForecast struct {
	Title                           string // e.g. "clear day, 2024-06-03"
	Times                           []time.Time
	Actual, Model, CLIPER, ClearSky []float64
}

// WriteForecastFigures writes the figures of a forecaster's evaluation into dir, as PNG and SVG:
// days (forecast against measured for each of days), by-hour (RMSE and bias by UTC hour of the model
// and CLIPER), skill-horizon (skill against each baseline by horizon step) and skill-month (by
// month). It returns their names.
func WriteForecastFigures(dir string, sc *solar.Scores, days []DayForecast) ([]string, error) {
	figs := []figure{dayFigure(days), byHourFigure(sc), skillFigure(sc, "skill-horizon", "skill by horizon", "hours ahead",
		sc.Horizon, func(f, i int) solar.Errors { return sc.ByHorizon(f, i) }, 1),
		skillFigure(sc, "skill-month", "skill by month", "month", 12, func(f, i int) solar.Errors { return sc.ByMonth(f, i+1) }, 1)}
	var names []string
	for _, f := range figs {
		if err := save(dir, f); err != nil {
			return nil, err
		}
		names = append(names, f.fig.Name)
	}
	return names, nil
}

// dayFigure stacks one plot per day.
func dayFigure(days []DayForecast) figure {
	plots := make([]*plot.Plot, len(days))
	legend := newLegend()
	for i, d := range days {
		p := newPlot(d.Title, "hour (UTC)", "power (kW)")
		p.X.Tick.Marker = wholeTicks(0, 23)
		hours := make([]float64, len(d.Times))
		for j, t := range d.Times {
			hours[j] = float64(t.Hour())
		}
		xy := func(v []float64) plotter.XYs {
			out := make(plotter.XYs, len(v))
			for j := range v {
				out[j] = plotter.XY{X: hours[j], Y: v[j]}
			}
			return out
		}
		actual := newLine(xy(d.Actual), line(color.Black, 1.5))
		model := newLine(xy(d.Model), line(forecastColors[solar.Model], 2))
		cliper := newLine(xy(d.CLIPER), line(forecastColors[1+solar.BaselineCLIPER], 1, vg.Points(2), vg.Points(2)))
		cs := newLine(xy(d.ClearSky), line(rgb(0xff, 0x7f, 0x0e), 1, vg.Points(4), vg.Points(3)))
		p.Add(actual, model, cliper, cs)
		if i == 0 {
			legend.Add("measured", actual)
			legend.Add("model", model)
			legend.Add("CLIPER", cliper)
			legend.Add("clear sky", cs)
		}
		plots[i] = p
	}
	h := vg.Length(max(1, len(days))) * 2.6 * vg.Inch
	return figure{fig: Figure{Name: "days", Title: "forecast against measured"}, w: 8 * vg.Inch, h: h, draw: func(c draw.Canvas) {
		c = withLegend(c, legend)
		if len(plots) == 0 {
			return
		}
		rows := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(8)}
		for i, p := range plots {
			p.Draw(rows.At(c, 0, i))
		}
	}}
}

// byHourFigure plots the RMSE and the mean bias of the model and CLIPER by UTC hour.
func byHourFigure(sc *solar.Scores) figure {
	p := newPlot("error by hour of day", "hour (UTC)", "kW")
	l := newLegend()
	for _, f := range []int{solar.Model, 1 + solar.BaselineCLIPER} {
		var rmse, bias plotter.XYs
		for h := range 24 {
			if e := sc.ByHour(f, h); e.N > 0 {
				rmse = append(rmse, plotter.XY{X: float64(h), Y: e.RMSE()})
				bias = append(bias, plotter.XY{X: float64(h), Y: e.MBE()})
			}
		}
		if r := newLine(rmse, line(forecastColors[f], 2)); r != nil {
			p.Add(r)
			l.Add(solar.ForecasterName(f)+" RMSE", r)
		}
		if b := newLine(bias, line(forecastColors[f], 1, vg.Points(3), vg.Points(3))); b != nil {
			p.Add(b)
			l.Add(solar.ForecasterName(f)+" bias", b)
		}
	}
	p.Add(newRules(false, line(color.Gray{Y: 0x80}, 0.5), 0))
	p.X.Tick.Marker = wholeTicks(0, 23)
	return figure{fig: Figure{Name: "by-hour", Title: "error by hour of day"}, w: 7 * vg.Inch, h: 4 * vg.Inch, draw: drawPlot(p, l)}
}

// skillFigure plots the model's skill against each baseline over n groups (errors gives forecaster
// f's errors in group i, plotted at i+offset).
func skillFigure(sc *solar.Scores, name, title, x string, n int, errors func(f, i int) solar.Errors, offset float64) figure {
	p := newPlot(title, x, "skill 1 - RMSE/RMSE_baseline")
	l := newLegend()
	for b := range solar.NumBaselines {
		var xys plotter.XYs
		for i := range n {
			m, ref := errors(solar.Model, i), errors(1+b, i)
			if m.N > 0 && ref.Sq > 0 {
				xys = append(xys, plotter.XY{X: float64(i) + offset, Y: m.Skill(ref)})
			}
		}
		if ln := newLine(xys, line(forecastColors[1+b], 2)); ln != nil { // none where the baseline is perfect
			p.Add(ln)
			l.Add("vs "+strings.ReplaceAll(solar.BaselineNames[b], "_", " "), ln)
		}
	}
	p.Add(newRules(false, line(color.Gray{Y: 0x80}, 0.5), 0))
	p.X.Tick.Marker = wholeTicks(int(offset), n-1+int(offset))
	return figure{fig: Figure{Name: name, Title: title}, w: 7 * vg.Inch, h: 4 * vg.Inch, draw: drawPlot(p, l)}
}

// wholeTicks labels the whole numbers from..to, at most about 12 of them.
func wholeTicks(from, to int) plot.ConstantTicks {
	step := max(1, (to-from+11)/12)
	var ticks plot.ConstantTicks
	for v := from; v <= to; v++ {
		label := ""
		if (v-from)%step == 0 {
			label = strconv.Itoa(v)
		}
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: label})
	}
	return ticks
}

// WriteScoresCSV writes every score of sc to path: a row per group of hours (all, each horizon
// step, UTC hour and month) and forecaster, with its hours, MAE, RMSE and MBE in kW, nMAE and nRMSE
// (of capacity), and the model's skill against it (empty on the model's rows).
func WriteScoresCSV(path string, sc *solar.Scores) error {
	return writeFile(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"group", "value", "forecaster", "hours", "mae_kw", "rmse_kw", "mbe_kw", "nmae", "nrmse", "model_skill"})
		row := func(group string, value int, errs func(f int) solar.Errors) {
			model := errs(solar.Model)
			for f := range solar.NumForecasters {
				e := errs(f)
				if e.N == 0 {
					continue
				}
				skill := ""
				if f != solar.Model {
					skill = num(model.Skill(e))
				}
				cw.Write([]string{group, strconv.Itoa(value), solar.ForecasterName(f), strconv.Itoa(int(e.N)), num(e.MAE()), num(e.RMSE()),
					num(e.MBE()), num(e.MAE() / sc.CapacityKW), num(e.RMSE() / sc.CapacityKW), skill})
			}
		}
		row("all", 0, sc.All)
		for j := range sc.Horizon {
			row("horizon", j+1, func(f int) solar.Errors { return sc.ByHorizon(f, j) })
		}
		for h := range 24 {
			row("hour", h, func(f int) solar.Errors { return sc.ByHour(f, h) })
		}
		for m := 1; m <= 12; m++ {
			row("month", m, func(f int) solar.Errors { return sc.ByMonth(f, m) })
		}
		cw.Flush()
		return cw.Error()
	})
}
