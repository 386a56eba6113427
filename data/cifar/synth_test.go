package cifar_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/data/cifar"
)

func TestSyntheticShape(t *testing.T) {
	train, test := cifar.Synthetic(250, 30, 10, 1)
	for _, tc := range []struct {
		s    *cifar.Set
		name string
		n    int
	}{{train, "synthetic train", 250}, {test, "synthetic test", 30}} {
		assert.Equal(t, tc.name, tc.s.Name)
		assert.Equal(t, 10, tc.s.Classes)
		assert.Nil(t, tc.s.ClassNames)
		require.Equal(t, tc.n, tc.s.Len())
		require.Len(t, tc.s.Images, tc.n*cifar.ImageLen)
		for k, l := range tc.s.Labels {
			require.Equal(t, int64(k%10), l, "label of image %d", k)
		}
	}
	assert.NotEqual(t, train.Images[:30*cifar.ImageLen], test.Images, "test images are drawn independently")

	none, alsoNone := cifar.Synthetic(0, 0, 1, 1)
	assert.Zero(t, none.Len())
	assert.Zero(t, alsoNone.Len())
}

func TestSyntheticDeterministic(t *testing.T) {
	a, at := cifar.Synthetic(100, 20, 7, 5)
	b, bt := cifar.Synthetic(100, 20, 7, 5)
	assert.Equal(t, a, b)
	assert.Equal(t, at, bt)
	c, ct := cifar.Synthetic(100, 20, 7, 6)
	assert.NotEqual(t, a.Images, c.Images)
	assert.NotEqual(t, at.Images, ct.Images)
	// Pinned, so a change of the generator is noticed (it changes what demo runs learn).
	assert.Equal(t, []uint8{0x49, 0x42, 0x5f, 0x4b, 0x54, 0x50, 0x63, 0x6d}, a.Images[:8])
}

// TestSyntheticLearnable checks that classes are separable but not trivially: a nearest-centroid
// classifier fitted on the training Set, on raw pixels, is far above chance on the test Set.
func TestSyntheticLearnable(t *testing.T) {
	for _, tc := range []struct {
		classes, perClass int
		minAcc            float64
	}{{10, 50, 0.6}, {100, 20, 0.4}} {
		train, test := cifar.Synthetic(tc.classes*tc.perClass, tc.classes*10, tc.classes, 3)
		centroids := make([][]float64, tc.classes)
		for c := range centroids {
			centroids[c] = make([]float64, cifar.ImageLen)
		}
		for i, l := range train.Labels {
			for j, p := range train.Images[i*cifar.ImageLen : (i+1)*cifar.ImageLen] {
				centroids[l][j] += float64(p) / float64(tc.perClass)
			}
		}
		correct := 0
		for i, l := range test.Labels {
			img := test.Images[i*cifar.ImageLen : (i+1)*cifar.ImageLen]
			best, bestDist := -1, 0.0
			for c, cen := range centroids {
				d := 0.0
				for j, p := range img {
					d += (float64(p) - cen[j]) * (float64(p) - cen[j])
				}
				if best < 0 || d < bestDist {
					best, bestDist = c, d
				}
			}
			if int64(best) == l {
				correct++
			}
		}
		acc := float64(correct) / float64(test.Len())
		t.Logf("%d classes: nearest-centroid test accuracy %.3f (chance %.3f)", tc.classes, acc, 1/float64(tc.classes))
		assert.GreaterOrEqual(t, acc, tc.minAcc, "%d classes", tc.classes)
	}
}

func TestSyntheticPanics(t *testing.T) {
	assert.Panics(t, func() { cifar.Synthetic(-1, 0, 10, 1) })
	assert.Panics(t, func() { cifar.Synthetic(10, -1, 10, 1) })
	assert.Panics(t, func() { cifar.Synthetic(10, 10, 0, 1) })
}
