package analysis

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"spottrain/codes"
)

// Figure is one plot of a study, written as NAME.png and NAME.svg in the output directory.
type Figure struct {
	Name    string // file name without extension, e.g. "wasted-lstm-solar-25pct-kills"
	Title   string
	Caption string // one sentence saying what it shows and how to read it
	Section string // the model and scenario it belongs to: "MODEL|SCENARIO", e.g. "lstm-solar|25% kills"
	Detail  bool   // one of many per section (the progress of each experiment), not an overview
}

// WritePlots draws the study's figures into dir (which exists) and returns them in report order:
// for each model, share of kills and machine count, the timelines of each pattern, the wasted
// compute, the checkpoint blocking, the cost, the savings, the final metric and the progress of
// each group; then, for each Scale, where spot stops paying as the job grows. A figure without
// data is left out.
func WritePlots(dir string, s *Study) ([]Figure, error) {
	used := map[string]int{}
	var figs []Figure
	for _, set := range figureSets(s) {
		for _, f := range set.figures(s) {
			f.fig.Section = set.model + "|" + set.scenario
			// Two groups may slug alike (names that differ in punctuation only): keep both.
			base := f.fig.Name
			if used[base]++; used[base] > 1 {
				f.fig.Name = fmt.Sprintf("%s-%d", base, used[base])
			}
			if err := save(dir, f); err != nil {
				return figs, err
			}
			figs = append(figs, f.fig)
		}
	}
	for _, m := range s.Scales() {
		if f := scaleFigure(m); f != nil {
			f.fig.Section = scaleSection(m)
			if err := save(dir, *f); err != nil {
				return figs, err
			}
			figs = append(figs, f.fig)
		}
	}
	return figs, nil
}

// scaleSection is the Figure.Section of a Scale's figure.
func scaleSection(m *Scale) string { return "scale|" + m.Model + "|" + scenario(m.NoNoticeShare, 1) }

// A figureSet is the groups of one model, one share of kills and one number of machines, the
// unit of the figures.
type figureSet struct {
	model, scenario string
	share           float64 // of kills without notice
	machines        int
	slug            string   // model and scenario as a file name part
	groups          []*Group // the non-baseline groups, in the study's order
	baseline        *Group   // the first of their baselines; nil without
	strategies      []string // in strategyOrder
	patterns        []string // from the calmest
}

// figureSets gathers the non-baseline groups of s by model, share of kills and machines, in
// study order.
func figureSets(s *Study) []*figureSet {
	var sets []*figureSet
	byKey := map[string]*figureSet{}
	for _, g := range s.Groups {
		if g.IsBaseline() || len(g.Runs) == 0 {
			continue
		}
		key := fmt.Sprintf("%s|%v|%d", g.Model, g.NoNoticeShare, g.Machines)
		set := byKey[key]
		if set == nil {
			set = &figureSet{model: g.Model, scenario: g.Scenario(), share: g.NoNoticeShare, machines: g.Machines,
				slug: slug(g.Model, g.Scenario())}
			byKey[key] = set
			sets = append(sets, set)
		}
		set.groups = append(set.groups, g)
		if set.baseline == nil && g.Baseline != nil && len(g.Baseline.Runs) > 0 {
			set.baseline = g.Baseline
		}
		if !slices.Contains(set.strategies, g.Strategy) {
			set.strategies = append(set.strategies, g.Strategy)
		}
		if !slices.Contains(set.patterns, g.Pattern) {
			set.patterns = append(set.patterns, g.Pattern)
		}
	}
	for _, set := range sets {
		slices.SortStableFunc(set.strategies, func(a, b string) int { return cmp.Compare(strategyRank(a), strategyRank(b)) })
		slices.SortStableFunc(set.patterns, func(a, b string) int { return cmp.Compare(patternRank(a), patternRank(b)) })
	}
	return sets
}

// strategyOrder is the order, and the index of the color, of the known strategies.
var strategyOrder = []string{"fixed", "adaptive", "milestone"}

// strategyRank orders strategies: the known ones first.
func strategyRank(s string) int {
	if i := slices.Index(strategyOrder, s); i >= 0 {
		return i
	}
	return len(strategyOrder)
}

// patternRank orders patterns from the calmest, unknown ones last.
func patternRank(p string) int {
	if i := patternOrder(p); i >= 0 {
		return i
	}
	return math.MaxInt
}

// cell is the group of one strategy and pattern in the set (the first, should there be more).
func (set *figureSet) cell(strategy, pattern string) *Group {
	for _, g := range set.groups {
		if g.Strategy == strategy && g.Pattern == pattern {
			return g
		}
	}
	return nil
}

// figure is a Figure and how to draw it.
type figure struct {
	fig  Figure
	w, h vg.Length
	draw func(c draw.Canvas)
}

// figures are the set's figures, in report order.
func (set *figureSet) figures(s *Study) []figure {
	var out []figure
	keep := func(f *figure) {
		if f != nil {
			out = append(out, *f)
		}
	}
	for _, p := range set.patterns {
		keep(set.timeline(p))
	}
	keep(set.bars(barSpec{kind: "wasted", title: "Wasted compute", ylabel: "wasted compute (min of spot time)",
		caption: "Minutes of spot time lost to kills (work redone after resuming)",
		stat:    func(g *Group) Stat { return g.WastedMin }, nonNegative: true}))
	keep(set.bars(barSpec{kind: "checkpoint", title: "Checkpoint blocking", ylabel: "checkpoint blocking (min)",
		caption: "Minutes of training blocked by periodic, milestone and final checkpoints",
		stat:    func(g *Group) Stat { return g.CheckpointMin }, nonNegative: true}))
	if set.baseline != nil {
		keep(set.bars(barSpec{kind: "cost", title: "Cost", ylabel: "cost (USD)",
			caption: fmt.Sprintf("Cost of the runs at $%.2f per spot GPU-hour ($%.2f on demand)",
				set.groups[0].Prices.SpotPerHour, set.groups[0].Prices.OnDemandPerHour),
			stat: func(g *Group) Stat { return g.CostUSD }, ref: true, nonNegative: true}))
		keep(set.savings(s))
	}
	keep(set.accuracy())
	for _, g := range set.groups {
		keep(set.progress(g))
	}
	return out
}

// save writes f as NAME.png and NAME.svg in dir.
func save(dir string, f figure) error {
	for _, ext := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(f.w, f.h, ext)
		if err != nil {
			return err
		}
		dc := draw.New(c)
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		f.draw(dc)
		if err := writeTo(filepath.Join(dir, f.fig.Name+"."+ext), c); err != nil {
			return fmt.Errorf("figure %s: %w", f.fig.Name, err)
		}
	}
	return nil
}

// writeTo writes c to path, replacing it whole (see writeFile).
func writeTo(path string, c vg.CanvasWriterTo) error {
	return writeFile(path, func(w io.Writer) error {
		_, err := c.WriteTo(w)
		return err
	})
}

// slug joins parts into a safe file name: lowercase letters, digits and single dashes, with
// "%" spelled "pct" ("25% kills" becomes "25pct-kills").
func slug(parts ...string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(strings.ReplaceAll(strings.Join(parts, "-"), "%", "pct")) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	if b.Len() == 0 {
		return "figure"
	}
	return b.String()
}

// Colors.
var (
	// strategyColors are fixed, adaptive and milestone (Okabe-Ito), then others by name.
	strategyColors = []color.Color{rgb(0, 114, 178), rgb(230, 159, 0), rgb(0, 158, 115)}
	otherColors    = []color.Color{rgb(204, 121, 167), rgb(86, 180, 233), rgb(213, 94, 0), rgb(120, 94, 240)}
	// incarnationColors tell the trainers of a run apart (no red or grey: those are interruptions).
	incarnationColors = []color.Color{rgb(31, 119, 180), rgb(255, 127, 14), rgb(44, 160, 44),
		rgb(148, 103, 189), rgb(140, 86, 75), rgb(227, 119, 194), rgb(188, 189, 34), rgb(23, 190, 207)}
	startupColor  = rgb(150, 150, 150)
	trainingColor = rgb(70, 130, 180)
	lostColor     = rgb(214, 39, 40)
	downColor     = rgb(253, 236, 200)
	killColor     = rgb(214, 39, 40)
	noticeColor   = rgb(120, 120, 120)
)

func rgb(r, g, b uint8) color.Color { return color.RGBA{R: r, G: g, B: b, A: 255} }

// strategyColor is the color of a strategy in every figure.
func strategyColor(s string) color.Color {
	if i := slices.Index(strategyOrder, s); i >= 0 {
		return strategyColors[i]
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return otherColors[h.Sum32()%uint32(len(otherColors))]
}

func incarnationColor(n int) color.Color {
	return incarnationColors[(max(n, 1)-1)%len(incarnationColors)]
}

func line(c color.Color, width float64, dashes ...vg.Length) draw.LineStyle {
	return draw.LineStyle{Color: c, Width: vg.Points(width), Dashes: dashes}
}

var dashed = []vg.Length{vg.Points(5), vg.Points(3)}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// newPlot is a plot with the figures' title and axis labels.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	return p
}

// newLegend is a legend to draw beside the plots (see withLegend).
func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.TextStyle.Font.Size = vg.Points(10)
	l.Padding = vg.Points(2)
	return l
}

// withLegend draws l in a strip on the right of c and returns the rest of c, for the plots.
func withLegend(c draw.Canvas, l plot.Legend) draw.Canvas {
	r := l.Rectangle(c)
	w := r.Max.X - r.Min.X
	if w <= 0 {
		return c
	}
	pad := vg.Points(10)
	l.Draw(draw.Crop(c, c.Max.X-c.Min.X-w-pad, -pad, 0, -vg.Points(28)))
	return draw.Crop(c, 0, -(w + 2*pad), 0, 0)
}

// drawPlot is how a figure of one plot and a legend beside it draws.
func drawPlot(p *plot.Plot, l plot.Legend) func(draw.Canvas) {
	return func(c draw.Canvas) { p.Draw(withLegend(c, l)) }
}

// boxes plots filled rectangles in data coordinates, all alike: bars, or the parts of a
// timeline. It implements plot.Plotter, plot.DataRanger and plot.Thumbnailer.
type boxes struct {
	rects []rect
	fill  color.Color
	edge  draw.LineStyle // outline; none with zero width
}

type rect struct{ x0, x1, y0, y1 float64 }

// add adds the rectangle with those corners; nothing if it is empty or not finite.
func (b *boxes) add(x0, x1, y0, y1 float64) {
	if !finite(x0, x1, y0, y1) || x0 == x1 || y0 == y1 {
		return
	}
	b.rects = append(b.rects, rect{min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)})
}

func (b *boxes) paint(c *draw.Canvas, pts []vg.Point) {
	c.FillPolygon(b.fill, c.ClipPolygonXY(pts))
	if b.edge.Width > 0 {
		c.StrokeLines(b.edge, c.ClipLinesXY(append(pts, pts[0]))...)
	}
}

// Plot implements plot.Plotter.
func (b *boxes) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, r := range b.rects {
		x0, x1, y0, y1 := trX(r.x0), trX(r.x1), trY(r.y0), trY(r.y1)
		b.paint(&c, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	}
}

// DataRange implements plot.DataRanger.
func (b *boxes) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for _, r := range b.rects {
		xmin, xmax = min(xmin, r.x0), max(xmax, r.x1)
		ymin, ymax = min(ymin, r.y0), max(ymax, r.y1)
	}
	return xmin, xmax, ymin, ymax
}

// Thumbnail implements plot.Thumbnailer.
func (b *boxes) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	b.paint(c, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// rules plots lines across the whole plot: vertical ones at x values, or horizontal ones at y
// values. It implements plot.Plotter, plot.DataRanger and plot.Thumbnailer.
type rules struct {
	at       []float64
	vertical bool
	style    draw.LineStyle
}

// newRules is rules at the finite values of at.
func newRules(vertical bool, style draw.LineStyle, at ...float64) *rules {
	r := &rules{vertical: vertical, style: style}
	for _, v := range at {
		if finite(v) {
			r.at = append(r.at, v)
		}
	}
	return r
}

// Plot implements plot.Plotter.
func (r *rules) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, v := range r.at {
		if r.vertical {
			if x := trX(v); c.ContainsX(x) {
				c.StrokeLine2(r.style, x, c.Min.Y, x, c.Max.Y)
			}
		} else if y := trY(v); c.ContainsY(y) {
			c.StrokeLine2(r.style, c.Min.X, y, c.Max.X, y)
		}
	}
}

// DataRange implements plot.DataRanger: the values, and nothing on the other axis.
func (r *rules) DataRange() (xmin, xmax, ymin, ymax float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range r.at {
		lo, hi = min(lo, v), max(hi, v)
	}
	if r.vertical {
		return lo, hi, math.Inf(1), math.Inf(-1)
	}
	return math.Inf(1), math.Inf(-1), lo, hi
}

// Thumbnail implements plot.Thumbnailer.
func (r *rules) Thumbnail(c *draw.Canvas) {
	if r.vertical {
		x := c.Center().X
		c.StrokeLine2(r.style, x, c.Min.Y, x, c.Max.Y)
		return
	}
	y := c.Center().Y
	c.StrokeLine2(r.style, c.Min.X, y, c.Max.X, y)
}

// finiteXYs keeps the finite points of xys.
func finiteXYs(xys plotter.XYs) plotter.XYs {
	return slices.DeleteFunc(xys, func(p plotter.XY) bool { return !finite(p.X, p.Y) })
}

// newLine is a line through the finite points of xys; nil without any.
func newLine(xys plotter.XYs, style draw.LineStyle) *plotter.Line {
	xys = finiteXYs(xys)
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil
	}
	l.LineStyle = style
	return l
}

// newScatter is the finite points of xys as glyphs; nil without any.
func newScatter(xys plotter.XYs, glyph draw.GlyphStyle) *plotter.Scatter {
	xys = finiteXYs(xys)
	if len(xys) == 0 {
		return nil
	}
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return nil
	}
	sc.GlyphStyle = glyph
	return sc
}

// timeline is the figure of the runs of one pattern: a row per run, baselines at the top.
func (set *figureSet) timeline(pattern string) *figure {
	type row struct {
		label string
		run   *RunMetrics
	}
	var rows []row
	var base *Group
	for _, st := range set.strategies {
		g := set.cell(st, pattern)
		if g == nil {
			continue
		}
		if base == nil {
			base = g.Baseline
		}
		for _, r := range g.Runs {
			rows = append(rows, row{fmt.Sprintf("%s #%d", st, r.Index), r})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if base != nil {
		var top []row
		for _, r := range base.Runs {
			top = append(top, row{fmt.Sprintf("on-demand #%d", r.Index), r})
		}
		rows = append(top, rows...)
	}

	edge := line(rgb(90, 90, 90), 0.5)
	startup := &boxes{fill: startupColor, edge: edge}
	training := &boxes{fill: trainingColor, edge: edge}
	lost := &boxes{fill: lostColor, edge: edge}
	down := &boxes{fill: downColor, edge: line(rgb(200, 160, 90), 0.5, vg.Points(2), vg.Points(2))}
	var kills, notices plotter.XYs
	labels := make([]string, len(rows))
	const h = 0.35 // half the height of a row's bars
	const hour = 3600.0
	for i, rw := range rows {
		y := float64(len(rows) - 1 - i) // the first row at the top
		labels[len(rows)-1-i] = rw.label
		for _, sp := range rw.run.Incarnations {
			startup.add(sp.Start/hour, sp.Ready/hour, y-h, y+h)
			training.add(sp.Ready/hour, sp.Lost/hour, y-h, y+h)
			lost.add(sp.Lost/hour, sp.End/hour, y-h, y+h)
		}
		for _, d := range rw.run.Downs {
			down.add(d[0]/hour, d[1]/hour, y-h, y+h)
		}
		for _, in := range rw.run.Interrupts {
			pt := plotter.XY{X: in.At / hour, Y: y + h}
			if in.Kind == codes.Kill {
				kills = append(kills, pt)
			} else {
				notices = append(notices, pt)
			}
		}
	}

	title := fmt.Sprintf("Runs of %s, %s, %s interruptions", set.model, set.scenario, pattern)
	p := newPlot(title, "hours since the run's start", "")
	l := newLegend()
	for _, part := range []struct {
		name string
		b    *boxes
	}{{"startup", startup}, {"training", training}, {"lost work", lost}, {"no VM", down}} {
		if len(part.b.rects) > 0 {
			p.Add(part.b)
			l.Add(part.name, part.b)
		}
	}
	if sc := newScatter(kills, draw.GlyphStyle{Color: color.Black, Radius: vg.Points(3.5), Shape: draw.CrossGlyph{}}); sc != nil {
		p.Add(sc)
		l.Add("kill", sc)
	}
	if sc := newScatter(notices, draw.GlyphStyle{Color: rgb(230, 159, 0), Radius: vg.Points(3.5), Shape: draw.PyramidGlyph{}}); sc != nil {
		p.Add(sc)
		l.Add("notice", sc)
	}
	if !finite(p.X.Min, p.X.Max) {
		return nil // nothing to draw
	}
	p.NominalY(labels...)
	p.X.Min = 0
	p.Y.Min, p.Y.Max = -0.6, float64(len(rows))-0.4

	return &figure{
		fig: Figure{
			Name:  "timeline-" + set.slug + "-" + slug(pattern),
			Title: title,
			Caption: fmt.Sprintf("Each row is one run of %s (%s, %s interruptions) over hours since its start: grey is startup, "+
				"blue training, red work lost to a kill, pale bars time without a VM, and the markers the kills and notices.",
				set.model, set.scenario, pattern),
		},
		w: 8 * vg.Inch, h: vg.Length(max(2, 1+0.3*float64(len(rows)))) * vg.Inch,
		draw: drawPlot(p, l),
	}
}

// barSpec says what a grouped bar chart shows.
type barSpec struct {
	kind, title, ylabel string
	caption             string // what the bars are; the CI and the baseline are said after
	stat                func(*Group) Stat
	ref                 bool // a line at the baseline's value
	zoom                bool // the y axis over the range of the values rather than from 0
	// nonNegative: the quantity cannot be negative, so the CI's lower end is drawn at 0 at most
	// (Student's t is symmetric, and with 3 repetitions wide).
	nonNegative bool
}

// bars is a grouped bar chart of the set: patterns along x, a bar per strategy, with the 95% CI.
func (set *figureSet) bars(spec barSpec) *figure {
	const groupW = 0.8 // of the unit between patterns
	barW := groupW / float64(len(set.strategies))
	p := newPlot(fmt.Sprintf("%s, %s, %s", spec.title, set.model, set.scenario), "interruption pattern", spec.ylabel)
	l := newLegend()
	lo, hi := math.Inf(1), math.Inf(-1) // the values shown
	minN, maxN := math.MaxInt, 0
	for si, st := range set.strategies {
		b := &boxes{fill: strategyColor(st), edge: line(color.Black, 0.5)}
		var pts plotter.XYs
		var errs plotter.YErrors
		for pi, pat := range set.patterns {
			g := set.cell(st, pat)
			if g == nil {
				continue
			}
			v := spec.stat(g)
			if v.N == 0 || !finite(v.Mean) {
				continue
			}
			x := float64(pi) - groupW/2 + barW*(float64(si)+0.5)
			b.add(x-barW*0.45, x+barW*0.45, 0, v.Mean)
			lo, hi = min(lo, v.Mean), max(hi, v.Mean)
			minN, maxN = min(minN, v.N), max(maxN, v.N)
			if v.N > 1 && finite(v.Lo, v.Hi) {
				if spec.nonNegative {
					v.Lo = max(v.Lo, 0)
				}
				pts = append(pts, plotter.XY{X: x, Y: v.Mean})
				errs = append(errs, struct{ Low, High float64 }{v.Mean - v.Lo, v.Hi - v.Mean})
				lo, hi = min(lo, v.Lo), max(hi, v.Hi)
			}
		}
		if len(b.rects) == 0 {
			continue
		}
		p.Add(b)
		l.Add(st, b)
		if len(pts) > 0 {
			eb, err := plotter.NewYErrorBars(errorPoints{pts, errs})
			if err == nil {
				eb.LineStyle = line(color.Black, 1)
				eb.CapWidth = vg.Points(4)
				p.Add(eb)
			}
		}
	}
	if maxN == 0 {
		return nil
	}
	caption := fmt.Sprintf("%s per interruption pattern and checkpoint strategy, mean and 95%% CI over %s repetitions",
		spec.caption, repetitions(minN, maxN))
	if spec.ref && set.baseline != nil {
		if v := spec.stat(set.baseline); v.N > 0 && finite(v.Mean) {
			r := newRules(false, line(color.Black, 1.5, dashed...), v.Mean)
			p.Add(r)
			l.Add("on demand", r)
			lo, hi = min(lo, v.Mean), max(hi, v.Mean)
			caption += ", against the on-demand baseline's mean (dashed line)"
		}
	}
	p.NominalX(set.patterns...)
	p.X.Min, p.X.Max = -0.5, float64(len(set.patterns))-0.5
	if spec.zoom && lo > 0 && hi-lo < lo/2 {
		// Values in a narrow range: show their differences rather than their size.
		pad := max((hi-lo)*0.15, hi*0.005)
		p.Y.Min, p.Y.Max = lo-pad, hi+pad
	} else if hi > 0 {
		p.Y.Max = hi + 0.05*(hi-min(lo, 0)) // room above the highest bar, CI or line
	}
	return &figure{
		fig:  Figure{Name: spec.kind + "-" + set.slug, Title: p.Title.Text, Caption: caption + "."},
		w:    7 * vg.Inch,
		h:    4.5 * vg.Inch,
		draw: drawPlot(p, l),
	}
}

// errorPoints are points with their errors, for plotter.NewYErrorBars.
type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}

// repetitions says how many repetitions the values average: "3", or "2 to 5".
func repetitions(minN, maxN int) string {
	if minN == maxN {
		return fmt.Sprint(minN)
	}
	return fmt.Sprintf("%d to %d", minN, maxN)
}

// accuracy is the figure of the final metric.
func (set *figureSet) accuracy() *figure {
	name, better := "", "lower"
	for _, g := range set.groups {
		if r := g.Runs[0]; r.Metric != "" {
			name = r.Metric
			if r.HigherBetter {
				better = "higher"
			}
			break
		}
	}
	if name == "" {
		return nil
	}
	return set.bars(barSpec{kind: "accuracy", title: "Final " + name, ylabel: name,
		caption: fmt.Sprintf("Final test %s (%s is better)", name, better),
		stat:    func(g *Group) Stat { return g.Metric }, ref: true, zoom: true})
}

// savings is the figure of the savings against the interruption rate: the cost model of each
// strategy, its break-even rate and the measured runs.
func (set *figureSet) savings(s *Study) *figure {
	var curves []Curve
	for _, c := range s.Curves() {
		if c.Model == set.model && c.NoNoticeShare == set.share && c.Machines == set.machines && slices.Contains(set.strategies, c.Strategy) {
			curves = append(curves, c)
		}
	}
	points := map[string]plotter.XYs{}
	xmax := 0.0
	for _, g := range set.groups {
		if g.Baseline == nil || !finite(g.Baseline.CostUSD.Mean) || g.Baseline.CostUSD.Mean <= 0 {
			continue
		}
		for _, r := range g.Runs {
			pt := plotter.XY{X: r.RatePerHour(), Y: 100 * g.SavingsOf(r)}
			if finite(pt.X, pt.Y) {
				points[g.Strategy] = append(points[g.Strategy], pt)
				xmax = max(xmax, pt.X)
			}
		}
	}
	for _, c := range curves {
		if finite(c.BreakEven) {
			xmax = max(xmax, c.BreakEven)
		}
	}
	xmax = max(1.3*xmax, 1)

	p := newPlot(fmt.Sprintf("Savings against on demand, %s, %s", set.model, set.scenario),
		"interruptions per billed hour", "savings against on demand (%)")
	l := newLegend()
	ymin := -100.0 // the model falls to -Inf where the job never ends: show down to twice the cost
	drawn := false
	for _, st := range set.strategies {
		clr := strategyColor(st)
		var thumbs []plot.Thumbnailer
		var breakEven *rules
		if i := slices.IndexFunc(curves, func(c Curve) bool { return c.Strategy == st }); i >= 0 {
			c := curves[i]
			const steps = 200
			var xys plotter.XYs
			for k := range steps + 1 {
				x := xmax * float64(k) / steps
				xys = append(xys, plotter.XY{X: x, Y: 100 * c.SavingsAt(x)})
			}
			if ln := newLine(xys, line(clr, 2)); ln != nil {
				p.Add(ln)
				thumbs = append(thumbs, ln)
			}
			if finite(c.BreakEven) {
				breakEven = newRules(true, line(clr, 1.5, dashed...), c.BreakEven)
			}
		}
		if sc := newScatter(points[st], draw.GlyphStyle{Color: clr, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}); sc != nil {
			p.Add(sc)
			thumbs = append(thumbs, sc)
			for _, pt := range sc.XYs {
				ymin = min(ymin, pt.Y-5)
			}
		}
		if len(thumbs) > 0 {
			l.Add(st, thumbs...)
			drawn = true
		}
		if breakEven != nil {
			p.Add(breakEven)
			l.Add(fmt.Sprintf("%s: break-even %s/h", st, rateText(breakEven.at[0])), breakEven)
		}
	}
	if !drawn {
		return nil
	}
	p.Add(newRules(false, line(rgb(110, 110, 110), 1), 0))
	p.X.Min, p.X.Max = 0, xmax
	p.Y.Min = max(p.Y.Min, ymin)
	return &figure{
		fig: Figure{
			Name:  "savings-" + set.slug,
			Title: p.Title.Text,
			Caption: "What spot saves against on demand as the interruption rate grows, from each strategy's measured overheads (lines) " +
				"and its runs (points): spot pays above 0, up to the break-even rate (dashed).",
		},
		w: 7 * vg.Inch, h: 4.5 * vg.Inch,
		draw: drawPlot(p, l),
	}
}

// rateText formats an interruption rate with two significant digits or so.
func rateText(x float64) string {
	switch {
	case x >= 10:
		return fmt.Sprintf("%.0f", x)
	case x >= 1:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// progress is the figure of the first run of g: its training loss and its validation metric by
// step, a color per incarnation, with the interruptions.
func (set *figureSet) progress(g *Group) *figure {
	r := g.Runs[0]
	var ref *RunMetrics
	if g.Baseline != nil && len(g.Baseline.Runs) > 0 {
		ref = g.Baseline.Runs[0]
	}
	metric := r.Metric
	if metric == "" {
		metric = "validation metric"
	}
	title := fmt.Sprintf("Progress of %s #%d (%s)", g.Name, r.Index, set.scenario)
	top := newPlot(title, "", "training loss")
	bottom := newPlot("", "step", metric)
	l := newLegend()

	// Each incarnation's values in the order written, so that redone steps overlap.
	byIncarnation := func(vals []StepValue) (ns []int, xys map[int]plotter.XYs) {
		xys = map[int]plotter.XYs{}
		for _, v := range vals {
			if _, ok := xys[v.Incarnation]; !ok {
				ns = append(ns, v.Incarnation)
			}
			xys[v.Incarnation] = append(xys[v.Incarnation], plotter.XY{X: float64(v.Step), Y: v.Value})
		}
		return ns, xys
	}
	thumbs := map[int][]plot.Thumbnailer{}
	var incarnations []int
	lossNs, losses := byIncarnation(r.Losses)
	for _, n := range lossNs {
		if ln := newLine(losses[n], line(incarnationColor(n), 1.5)); ln != nil {
			top.Add(ln)
			thumbs[n] = append(thumbs[n], ln)
		}
	}
	valNs, vals := byIncarnation(r.Validations)
	for _, n := range valNs {
		clr := incarnationColor(n)
		ln := newLine(vals[n], line(clr, 1.5))
		sc := newScatter(vals[n], draw.GlyphStyle{Color: clr, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}})
		if ln != nil && sc != nil {
			bottom.Add(ln, sc)
			thumbs[n] = append(thumbs[n], sc)
		}
	}
	for n := range thumbs {
		incarnations = append(incarnations, n)
	}
	if len(incarnations) == 0 {
		return nil
	}
	slices.Sort(incarnations)
	for _, n := range incarnations {
		l.Add(fmt.Sprintf("incarnation %d", n), thumbs[n]...)
	}

	if ref != nil {
		refStyle := line(color.Black, 0.6)
		var refThumb plot.Thumbnailer
		for _, panel := range []struct {
			p    *plot.Plot
			vals []StepValue
		}{{top, ref.Losses}, {bottom, ref.Validations}} {
			var xys plotter.XYs
			for _, v := range panel.vals {
				xys = append(xys, plotter.XY{X: float64(v.Step), Y: v.Value})
			}
			if ln := newLine(xys, refStyle); ln != nil {
				panel.p.Add(ln)
				refThumb = ln
			}
		}
		if refThumb != nil {
			l.Add("on demand", refThumb)
		}
	}

	var killSteps, noticeSteps []float64
	for _, in := range r.Interrupts {
		if in.Kind == codes.Kill {
			killSteps = append(killSteps, float64(in.Step))
		} else {
			noticeSteps = append(noticeSteps, float64(in.Step))
		}
	}
	for _, kind := range []struct {
		name  string
		steps []float64
		style draw.LineStyle
	}{{"kill", killSteps, line(killColor, 1)}, {"notice", noticeSteps, line(noticeColor, 1, dashed...)}} {
		if len(kind.steps) == 0 {
			continue
		}
		for _, p := range []*plot.Plot{top, bottom} {
			p.Add(newRules(true, kind.style, kind.steps...))
		}
		l.Add(kind.name, newRules(true, kind.style))
	}

	// One step axis for both panels.
	xmin, xmax := min(top.X.Min, bottom.X.Min), max(top.X.Max, bottom.X.Max)
	if !finite(xmin, xmax) {
		return nil
	}
	for _, p := range []*plot.Plot{top, bottom} {
		p.X.Min, p.X.Max = xmin, xmax
	}
	panels := [][]*plot.Plot{{top}, {bottom}}
	for i, p := range panels {
		if !finite(p[0].Y.Min, p[0].Y.Max) {
			panels[i][0] = nil // no values in this panel
		}
	}
	if panels[0][0] == nil {
		bottom.Title = top.Title
	}

	caption := fmt.Sprintf("Training loss (top) and validation %s (bottom) of %s run #%d by step, a color per trainer incarnation "+
		"so that steps redone after a kill overlap, with kills (red) and notices (grey, dashed) as vertical lines", metric, g.Name, r.Index)
	if ref != nil {
		caption += " and the on-demand run as a thin black reference"
	}
	return &figure{
		fig: Figure{Name: "progress-" + slug(g.Name, set.scenario), Title: title, Caption: caption + ".", Detail: true},
		w:   8 * vg.Inch, h: 6 * vg.Inch,
		draw: func(c draw.Canvas) {
			c = withLegend(c, l)
			tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4)}
			canvases := plot.Align(panels, tiles, c)
			for i, p := range panels {
				if p[0] != nil {
					p[0].Draw(canvases[i][0])
				}
			}
		},
	}
}
