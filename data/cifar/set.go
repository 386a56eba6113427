package cifar

import "math"

// Image geometry: every image is Channels x Side x Side, stored channel-major (CHW) and row-major
// within a channel, as in the CIFAR files.
const (
	Channels = 3
	Side     = 32
	plane    = Side * Side
	ImageLen = Channels * plane // values per image: 3072 pixel bytes, or float32s after Fill
)

// Set is a split of a data set held in memory. Load and Synthetic return Sets with
// len(Images) == Len()*ImageLen and every label in [0, Classes); a Set built by hand must keep
// that invariant. A Set is read-only once built: any number of goroutines may read it, Fill from
// it and run Loaders over it.
type Set struct {
	Name    string // "cifar100 train", "cifar10 test", "synthetic train", ...
	Classes int    // labels are in [0, Classes)
	// Images holds Len() images of ImageLen bytes, each exactly as in the file: 1024 red, then
	// 1024 green, then 1024 blue bytes, each plane row-major, top row first.
	Images []uint8
	// Labels holds one label per image: the fine label of CIFAR-100 (its coarse label is
	// dropped), the label of CIFAR-10. int64, as cross-entropy wants its targets.
	Labels []int64
	// ClassNames holds Classes names in label order, from the data set's names file; nil for
	// synthetic data.
	ClassNames []string
}

// Len returns the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// Norm returns the per-channel mean and population standard deviation of the Set's pixels in
// [0, 1] units, over every pixel of every image, computed exactly (from byte histograms) in
// float64 and rounded to float32. Of the official training sets it gives Spec.Norm to 4 digits.
// Std is 0 for a constant channel and everything is 0 for an empty Set: such a Norm must not be
// used to normalize.
func (s *Set) Norm() Norm {
	var hist [Channels][256]int64
	for k := 0; k+ImageLen <= len(s.Images); k += ImageLen {
		for c := range Channels {
			for _, p := range s.Images[k+c*plane : k+(c+1)*plane] {
				hist[c][p]++
			}
		}
	}
	var n Norm
	for c := range Channels {
		var count, sum, sumSq float64
		for p, k := range hist[c] {
			v := float64(p) / 255
			count += float64(k)
			sum += float64(k) * v
			sumSq += float64(k) * v * v
		}
		if count == 0 {
			continue
		}
		mean := sum / count
		n.Mean[c] = float32(mean)
		n.Std[c] = float32(math.Sqrt(max(sumSq/count-mean*mean, 0)))
	}
	return n
}
