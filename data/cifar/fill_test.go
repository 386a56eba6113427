package cifar_test

import (
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/data/cifar"
)

const plane = cifar.Side * cifar.Side

// patternSet returns a Set of n images whose pixels all differ within an image and between
// images.
func patternSet(n int) *cifar.Set {
	s := &cifar.Set{Name: "pattern", Classes: 10, Images: make([]uint8, n*cifar.ImageLen), Labels: make([]int64, n)}
	for k := range s.Images {
		s.Images[k] = byte(k*31 + k/cifar.ImageLen*7 + k/plane*5)
	}
	for k := range s.Labels {
		s.Labels[k] = int64(k % 10)
	}
	return s
}

func cifar100Norm(t *testing.T) cifar.Norm {
	sp, err := cifar.Official(cifar.CIFAR100)
	require.NoError(t, err)
	return sp.Norm
}

// reference computes Fill's result pixel by pixel from the definition: torchvision's
// RandomCrop(32, padding=Pad) (zero padding) then RandomHorizontalFlip, ToTensor, Normalize.
func reference(s *cifar.Set, i int, norm cifar.Norm, aug *cifar.Augment, seed uint64, epoch int) []float32 {
	out := make([]float32, cifar.ImageLen)
	crop := cifar.Crop{}
	pad := 0
	if aug != nil {
		crop, pad = aug.Draw(seed, epoch, i), aug.Pad
	}
	for c := range cifar.Channels {
		for y := range cifar.Side {
			for x := range cifar.Side {
				xc := x
				if crop.Flip {
					xc = cifar.Side - 1 - x
				}
				sy, sx := y+crop.Y-pad, xc+crop.X-pad
				var p uint8 // black padding
				if sy >= 0 && sy < cifar.Side && sx >= 0 && sx < cifar.Side {
					p = s.Images[i*cifar.ImageLen+c*plane+sy*cifar.Side+sx]
				}
				out[c*plane+y*cifar.Side+x] = (float32(p)/255 - norm.Mean[c]) / norm.Std[c]
			}
		}
	}
	return out
}

func fill(s *cifar.Set, i int, norm cifar.Norm, aug *cifar.Augment, seed uint64, epoch int) []float32 {
	dst := make([]float32, cifar.ImageLen)
	s.Fill(dst, i, norm, aug, seed, epoch)
	return dst
}

func TestFillNormalization(t *testing.T) {
	s := &cifar.Set{Name: "one", Classes: 1, Images: make([]uint8, cifar.ImageLen), Labels: []int64{0}}
	s.Images[0] = 255         // red, top left
	s.Images[plane+1] = 128   // green
	s.Images[2*plane+2] = 0   // blue
	s.Images[2*plane+3] = 255 // blue
	got := fill(s, 0, cifar100Norm(t), nil, 0, 0)
	// torchvision: Normalize(mean, std)(ToTensor()(img)) = (p/255 - mean) / std.
	for _, tc := range []struct {
		at   int
		want float64
	}{
		{0, (1 - 0.5071) / 0.2673},                 // 1.8439955
		{plane + 1, (128.0/255 - 0.4865) / 0.2564}, // 0.0602995
		{2*plane + 2, (0 - 0.4409) / 0.2762},       // -1.5963070
		{2*plane + 3, (1 - 0.4409) / 0.2762},       // 2.0242578
	} {
		assert.InDelta(t, tc.want, got[tc.at], 1e-6, "value at %d", tc.at)
	}
	assert.Equal(t, reference(s, 0, cifar100Norm(t), nil, 0, 0), got)
}

func TestDrawBoundsAndCoverage(t *testing.T) {
	aug := cifar.Augment{Pad: 4, Flip: true}
	seen := make(map[[2]int]int)
	flips := 0
	const n = 20000
	for i := range n {
		c := aug.Draw(7, 3, i)
		require.True(t, c.X >= 0 && c.X <= 8 && c.Y >= 0 && c.Y <= 8, "crop %+v of sample %d outside [0, 8]", c, i)
		seen[[2]int{c.X, c.Y}]++
		if c.Flip {
			flips++
		}
	}
	assert.Len(t, seen, 81, "every offset occurs")
	for xy, k := range seen {
		assert.InDelta(t, n/81, k, n/81/3, "offset %v drawn %d times", xy, k)
	}
	assert.InDelta(t, n/2, flips, n/20, "flips")

	for i := range 1000 {
		assert.Equal(t, cifar.Crop{}, cifar.Augment{}.Draw(7, 3, i), "Pad 0 without Flip is the identity")
		assert.False(t, cifar.Augment{Pad: 4}.Draw(7, 3, i).Flip, "no flip without Flip")
	}
}

func TestDrawDeterministicAndVaried(t *testing.T) {
	aug := cifar.Augment{Pad: 4, Flip: true}
	same, acrossEpochs, acrossSeeds := 0, 0, 0
	for i := range 1000 {
		c := aug.Draw(42, 5, i)
		if c == aug.Draw(42, 5, i) {
			same++
		}
		if c == aug.Draw(42, 6, i) {
			acrossEpochs++
		}
		if c == aug.Draw(43, 5, i) {
			acrossSeeds++
		}
	}
	assert.Equal(t, 1000, same)
	// Two independent draws agree with probability 1/162.
	assert.Less(t, acrossEpochs, 30, "crops repeated in the next epoch")
	assert.Less(t, acrossSeeds, 30, "crops repeated under another seed")
}

func TestFillAugmentMatchesReference(t *testing.T) {
	s := patternSet(40)
	norm := cifar100Norm(t)
	for _, aug := range []*cifar.Augment{{Pad: 4, Flip: true}, {Pad: 2}, {Pad: 0, Flip: true}, {Pad: 32, Flip: true}} {
		for epoch := range 3 {
			for i := range s.Len() {
				want := reference(s, i, norm, aug, 9, epoch)
				require.Equal(t, want, fill(s, i, norm, aug, 9, epoch), "aug %+v epoch %d sample %d (%+v)", *aug, epoch, i, aug.Draw(9, epoch, i))
			}
		}
	}
}

// find returns the first sample index whose crop is c.
func find(t *testing.T, aug cifar.Augment, seed uint64, epoch int, c cifar.Crop) int {
	t.Helper()
	for i := range 100000 {
		if aug.Draw(seed, epoch, i) == c {
			return i
		}
	}
	t.Fatalf("no sample has crop %+v", c)
	return 0
}

func TestFillFlipMirrors(t *testing.T) {
	aug := cifar.Augment{Pad: 0, Flip: true}
	i := find(t, aug, 1, 0, cifar.Crop{Flip: true})
	j := find(t, aug, 1, 0, cifar.Crop{})
	s := patternSet(max(i, j) + 1)
	norm := cifar100Norm(t)
	plain, flipped := fill(s, i, norm, nil, 0, 0), fill(s, i, norm, &aug, 1, 0)
	for c := range cifar.Channels {
		for y := range cifar.Side {
			for x := range cifar.Side {
				row := c*plane + y*cifar.Side
				require.Equal(t, plain[row+cifar.Side-1-x], flipped[row+x], "channel %d pixel (%d, %d)", c, y, x)
			}
		}
	}
	assert.NotEqual(t, plain, flipped)
	assert.Equal(t, fill(s, j, norm, nil, 0, 0), fill(s, j, norm, &aug, 1, 0), "no flip drawn: unchanged")
}

func TestFillCropPadsBlack(t *testing.T) {
	aug := cifar.Augment{Pad: 4}
	norm := cifar100Norm(t)
	// Crop (0, 0): the window starts 4 pixels up and left of the image.
	i := find(t, aug, 1, 0, cifar.Crop{X: 0, Y: 0})
	s := patternSet(i + 1)
	for k := range s.Images {
		s.Images[k] = 255 // white
	}
	got := fill(s, i, norm, &aug, 1, 0)
	for c := range cifar.Channels {
		black, white := -norm.Mean[c]/norm.Std[c], (1-norm.Mean[c])/norm.Std[c]
		for y := range cifar.Side {
			for x := range cifar.Side {
				want := white
				if y < 4 || x < 4 {
					want = black
				}
				require.Equal(t, want, got[c*plane+y*cifar.Side+x], "channel %d pixel (%d, %d)", c, y, x)
			}
		}
	}
	// Crop (8, 5): the image moves 4 pixels left and 1 up; the last 4 columns and the last row are black.
	i = find(t, aug, 1, 0, cifar.Crop{X: 8, Y: 5})
	s = patternSet(i + 1)
	got = fill(s, i, norm, &aug, 1, 0)
	plain := fill(s, i, norm, nil, 0, 0)
	black := -norm.Mean[1] / norm.Std[1]
	assert.Equal(t, plain[plane+1*cifar.Side+4], got[plane+0*cifar.Side+0], "green (0, 0) comes from (1, 4)")
	assert.Equal(t, plain[plane+31*cifar.Side+31], got[plane+30*cifar.Side+27], "green (30, 27) comes from (31, 31)")
	assert.Equal(t, black, got[plane+30*cifar.Side+28])
	assert.Equal(t, black, got[plane+31*cifar.Side+0])
}

func TestFillConcurrentOrderIndependent(t *testing.T) {
	s := patternSet(64)
	norm := cifar100Norm(t)
	aug := &cifar.Augment{Pad: 4, Flip: true}
	want := make([][]float32, s.Len())
	for i := range want {
		want[i] = fill(s, i, norm, aug, 3, 2)
	}
	got := make([][]float32, s.Len())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := s.Len() - 1 - w; i >= 0; i -= 4 {
				got[i] = fill(s, i, norm, aug, 3, 2)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, want, got)
}

func TestFillPanics(t *testing.T) {
	s := patternSet(2)
	norm := cifar100Norm(t)
	assert.PanicsWithValue(t, "cifar: Fill into 3071 float32s, want 3072", func() { s.Fill(make([]float32, 3071), 0, norm, nil, 0, 0) })
	assert.PanicsWithValue(t, `cifar: Fill image 2 of "pattern", which has 2`, func() { fill(s, 2, norm, nil, 0, 0) })
	assert.PanicsWithValue(t, `cifar: Fill image -1 of "pattern", which has 2`, func() { fill(s, -1, norm, nil, 0, 0) })
	assert.PanicsWithValue(t, "cifar: Augment.Pad -1 outside 0..32", func() { fill(s, 0, norm, &cifar.Augment{Pad: -1}, 0, 0) })
	assert.PanicsWithValue(t, "cifar: Augment.Pad 33 outside 0..32", func() { fill(s, 0, norm, &cifar.Augment{Pad: 33}, 0, 0) })
}

func TestSetNorm(t *testing.T) {
	// Red all 255; green 0 in one image and 255 in the other; blue alternating 0 and 51 (0.2).
	s := &cifar.Set{Classes: 1, Images: make([]uint8, 2*cifar.ImageLen), Labels: make([]int64, 2)}
	for k := range s.Images {
		switch c := k % cifar.ImageLen / plane; c {
		case 0:
			s.Images[k] = 255
		case 1:
			s.Images[k] = byte(255 * (k / cifar.ImageLen))
		case 2:
			s.Images[k] = byte(51 * (k % 2))
		}
	}
	n := s.Norm()
	for c, want := range [][2]float64{{1, 0}, {0.5, 0.5}, {0.1, 0.1}} {
		assert.InDelta(t, want[0], n.Mean[c], 1e-6, "mean of channel %d", c)
		assert.InDelta(t, want[1], n.Std[c], 1e-6, "std of channel %d", c)
	}
	assert.Equal(t, cifar.Norm{}, (&cifar.Set{}).Norm())

	// Normalizing a Set with its own Norm gives mean 0, std 1 per channel.
	p := patternSet(20)
	norm := p.Norm()
	for c := range cifar.Channels {
		var sum, sumSq float64
		for i := range p.Len() {
			for _, v := range fill(p, i, norm, nil, 0, 0)[c*plane : (c+1)*plane] {
				sum, sumSq = sum+float64(v), sumSq+float64(v)*float64(v)
			}
		}
		cnt := float64(p.Len() * plane)
		assert.InDelta(t, 0, sum/cnt, 1e-5, "channel %d mean", c)
		assert.InDelta(t, 1, math.Sqrt(sumSq/cnt-(sum/cnt)*(sum/cnt)), 1e-5, "channel %d std", c)
	}
}
