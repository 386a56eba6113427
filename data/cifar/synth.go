package cifar

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Parameters of Synthetic's images, in [0, 1] pixel units.
const (
	synthShift      = 4    // largest circular shift of a class pattern, pixels, each axis
	synthBrightness = 0.08 // largest brightness offset of an image, all channels alike
	synthNoise      = 0.15 // largest per-pixel uniform noise
)

// Synthetic returns a training and a test Set of nTrain and nTest images of classes classes (no
// download needed), for demos and tests of the training pipeline. Each class has a pattern: a
// color and an oriented sine grating of its own frequency and per-channel contrast; an image of the
// class is its pattern circularly shifted by up to 4 pixels each way, brightened or darkened by up
// to 0.08, plus uniform noise of up to ±0.15 per pixel. Both Sets share the patterns and draw
// their images independently, so accuracy on the test Set measures what was learnt; colors alone
// separate classes well, so a small ResNet beats chance within a few hundred steps.
//
// Image k has label k % classes (balanced classes; the training loop shuffles). The Sets are a
// pure function of the arguments, from PCG generators seeded with seed (only their Uint64 output
// is used, which the Go release does not change); they are named "synthetic train" and
// "synthetic test" and have no ClassNames. Synthetic panics when nTrain or nTest is negative or
// classes is not positive.
func Synthetic(nTrain, nTest, classes int, seed uint64) (train, test *Set) {
	if nTrain < 0 || nTest < 0 || classes < 1 {
		panic(fmt.Sprintf("cifar: Synthetic(%d, %d, %d): want counts >= 0 and classes >= 1", nTrain, nTest, classes))
	}
	patterns := make([][ImageLen]float64, classes)
	pr := rand.NewPCG(seed, 0)
	for c := range patterns {
		drawPattern(&patterns[c], pr)
	}
	return synthSet("synthetic train", nTrain, patterns, rand.NewPCG(seed, 1)),
		synthSet("synthetic test", nTest, patterns, rand.NewPCG(seed, 2))
}

// uniform returns a float64 uniform in [lo, hi) from r.
func uniform(r *rand.PCG, lo, hi float64) float64 {
	return lo + (hi-lo)*float64(r.Uint64()>>11)/(1<<53)
}

// drawPattern draws a class pattern into p.
func drawPattern(p *[ImageLen]float64, r *rand.PCG) {
	theta := uniform(r, 0, math.Pi)
	freq := uniform(r, 1, 4) // cycles across the image
	phase := uniform(r, 0, 2*math.Pi)
	kx, ky := 2*math.Pi*freq*math.Cos(theta)/Side, 2*math.Pi*freq*math.Sin(theta)/Side
	for c := range Channels {
		base, contrast := uniform(r, 0.3, 0.7), uniform(r, -0.25, 0.25)
		for y := range Side {
			for x := range Side {
				p[c*plane+y*Side+x] = base + contrast*math.Sin(kx*float64(x)+ky*float64(y)+phase)
			}
		}
	}
}

// synthSet draws n images of the patterns with r.
func synthSet(name string, n int, patterns [][ImageLen]float64, r *rand.PCG) *Set {
	s := &Set{Name: name, Classes: len(patterns), Images: make([]uint8, n*ImageLen), Labels: make([]int64, n)}
	const span = 2*synthShift + 1
	for k := range n {
		label := k % len(patterns)
		s.Labels[k] = int64(label)
		p := &patterns[label]
		h := r.Uint64()
		dx, dy := int(h%span), int(h/span%span)
		bright := uniform(r, -synthBrightness, synthBrightness)
		img := s.Images[k*ImageLen : (k+1)*ImageLen]
		var bits uint64
		for j := range img {
			if j%8 == 0 {
				bits = r.Uint64()
			}
			noise := synthNoise * (float64(bits&0xff)/127.5 - 1)
			bits >>= 8
			c, y, x := j/plane, j/Side%Side, j%Side
			v := p[c*plane+(y+dy)%Side*Side+(x+dx)%Side] + bright + noise
			img[j] = uint8(math.Round(255 * min(max(v, 0), 1)))
		}
	}
	return s
}
