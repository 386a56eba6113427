package cifar

import (
	"fmt"
	"slices"
)

// Norm holds per-channel normalization constants in [0, 1] pixel units (red, green, blue). Fill
// maps a pixel byte p of channel c to (p/255 - Mean[c]) / Std[c], computed in float32 in that
// order, as torchvision's ToTensor followed by Normalize(Mean, Std) does.
type Norm struct{ Mean, Std [Channels]float32 }

// lut is a Norm as a lookup table: the normalized value of every byte of every channel.
type lut [Channels][256]float32

func (n Norm) lut() *lut {
	var t lut
	for c := range Channels {
		for p := range 256 {
			t[c][p] = (float32(p)/255 - n.Mean[c]) / n.Std[c]
		}
	}
	return &t
}

// Augment is the standard CIFAR training augmentation: a Side x Side crop of the image padded with
// Pad black (zero) pixels on every side, as torchvision's RandomCrop(32, padding=Pad), then, when
// Flip is set, a left-right mirror with probability 1/2, as RandomHorizontalFlip. Pad must be in
// 0..Side. The usual setting is Augment{Pad: 4, Flip: true}.
type Augment struct {
	Pad  int
	Flip bool
}

// Crop is one draw of an Augment: the window's top-left corner (X, Y) in the padded image, each in
// [0, 2*Pad], and whether the window is then mirrored left-right. X = Y = Pad with Flip false
// leaves the image unchanged.
type Crop struct {
	X, Y int
	Flip bool
}

// Draw returns the crop of sample i in epoch under seed. It is a pure function of (a, seed, epoch,
// i), spelled out here (SplitMix64 finalizers, no math/rand) so it never changes with the Go
// version: a resumed run, another goroutine or another worker count draws the same crop. Every
// offset and both flips occur with (nearly) equal probability.
func (a Augment) Draw(seed uint64, epoch, i int) Crop {
	h := mix64(mix64(mix64(seed)^uint64(epoch)) ^ uint64(i))
	n := uint64(2*a.Pad + 1)
	return Crop{X: int(h % n), Y: int((h >> 24) % n), Flip: a.Flip && h>>63 == 1}
}

// mix64 is the SplitMix64 output function: a bijection of uint64 whose every output bit depends
// on every input bit.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Fill writes image i of s into dst (ImageLen float32s, CHW), normalized with norm. With a non-nil
// aug, the image is first cropped and flipped as aug.Draw(seed, epoch, i) says, padding with
// black pixels (which normalize to -Mean/Std); with a nil aug, seed and epoch are ignored. The
// result depends only on the arguments, whichever goroutine computes it and in whatever order.
// Fill panics when len(dst) != ImageLen, i is not in [0, s.Len()) or aug.Pad is outside 0..Side.
func (s *Set) Fill(dst []float32, i int, norm Norm, aug *Augment, seed uint64, epoch int) {
	if aug != nil {
		checkAugment(aug)
	}
	s.fill(dst, i, norm.lut(), aug, seed, epoch)
}

func checkAugment(aug *Augment) {
	if aug.Pad < 0 || aug.Pad > Side {
		panic(fmt.Sprintf("cifar: Augment.Pad %d outside 0..%d", aug.Pad, Side))
	}
}

// fill is Fill with the Norm already a lookup table and aug already checked.
func (s *Set) fill(dst []float32, i int, t *lut, aug *Augment, seed uint64, epoch int) {
	if len(dst) != ImageLen {
		panic(fmt.Sprintf("cifar: Fill into %d float32s, want %d", len(dst), ImageLen))
	}
	if i < 0 || i >= s.Len() {
		panic(fmt.Sprintf("cifar: Fill image %d of %q, which has %d", i, s.Name, s.Len()))
	}
	src := s.Images[i*ImageLen : (i+1)*ImageLen]
	if aug == nil {
		for c := range Channels {
			tc := &t[c]
			out := dst[c*plane : (c+1)*plane]
			for k, p := range src[c*plane : (c+1)*plane] {
				out[k] = tc[p]
			}
		}
		return
	}
	crop := aug.Draw(seed, epoch, i)
	// Output pixel (y, x) before the flip is source pixel (y+dy, x+dx), black outside the image;
	// x0..x1 are the output columns whose source column is inside.
	dx, dy := crop.X-aug.Pad, crop.Y-aug.Pad
	x0, x1 := max(0, -dx), min(Side, Side-dx)
	for c := range Channels {
		tc := &t[c]
		black := tc[0]
		in, out := src[c*plane:(c+1)*plane], dst[c*plane:(c+1)*plane]
		for y := range Side {
			row := out[y*Side : (y+1)*Side]
			sy := y + dy
			if sy < 0 || sy >= Side || x0 >= x1 {
				for x := range row {
					row[x] = black
				}
				continue
			}
			srow := in[sy*Side : (sy+1)*Side]
			for x := range x0 {
				row[x] = black
			}
			for x := x0; x < x1; x++ {
				row[x] = tc[srow[x+dx]]
			}
			for x := x1; x < Side; x++ {
				row[x] = black
			}
			if crop.Flip {
				slices.Reverse(row)
			}
		}
	}
}
