package train_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/train"
)

func TestScheduleLR(t *testing.T) {
	cases := []struct {
		name string
		s    train.Schedule
		step int
		want float64
	}{
		{"constant", train.Schedule{Name: "constant", BaseLR: 0.1}, 1000, 0.1},
		{"warmup first step", train.Schedule{Name: "constant", BaseLR: 0.1, Warmup: 10}, 0, 0.01},
		{"warmup last step", train.Schedule{Name: "constant", BaseLR: 0.1, Warmup: 10}, 9, 0.1},
		{"step before decay", train.Schedule{Name: "step", BaseLR: 1, StepSize: 10, Gamma: 0.5}, 9, 1},
		{"step after two decays", train.Schedule{Name: "step", BaseLR: 1, StepSize: 10, Gamma: 0.5}, 25, 0.25},
		{"step counts after warmup", train.Schedule{Name: "step", BaseLR: 1, Warmup: 5, StepSize: 10, Gamma: 0.5}, 14, 1},
		{"cosine start", train.Schedule{Name: "cosine", BaseLR: 1, MinLR: 0.1, Total: 101}, 0, 1},
		{"cosine middle", train.Schedule{Name: "cosine", BaseLR: 1, MinLR: 0.1, Total: 101}, 50, 0.55},
		{"cosine last step", train.Schedule{Name: "cosine", BaseLR: 1, MinLR: 0.1, Total: 101}, 100, 0.1},
		{"cosine past the end", train.Schedule{Name: "cosine", BaseLR: 1, MinLR: 0.1, Total: 101}, 500, 0.1},
		{"cosine after warmup", train.Schedule{Name: "cosine", BaseLR: 1, Warmup: 10, Total: 111}, 10, 1},
		{"onecycle start", train.Schedule{Name: "onecycle", BaseLR: 1, Warmup: 10, Total: 111}, 0, 0.04},
		{"onecycle mid-warmup", train.Schedule{Name: "onecycle", BaseLR: 1, Warmup: 10, Total: 111}, 5, 0.52},
		{"onecycle peak", train.Schedule{Name: "onecycle", BaseLR: 1, Warmup: 10, Total: 111}, 10, 1},
		{"onecycle end", train.Schedule{Name: "onecycle", BaseLR: 1, MinLR: 0.01, Warmup: 10, Total: 111}, 110, 0.01},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.s.Validate())
			assert.InDelta(t, c.want, c.s.LR(c.step), 1e-12)
		})
	}
}

func TestScheduleCosineIsMonotone(t *testing.T) {
	s := train.Schedule{Name: "cosine", BaseLR: 3e-3, Warmup: 20, Total: 500}
	for i := 1; i < 20; i++ {
		assert.Greater(t, s.LR(i), s.LR(i-1), "warmup rises at %d", i)
	}
	for i := 21; i < 500; i++ {
		assert.LessOrEqual(t, s.LR(i), s.LR(i-1), "cosine falls at %d", i)
	}
}

func TestScheduleValidate(t *testing.T) {
	assert.ErrorContains(t, train.Schedule{Name: "linear"}.Validate(), "unknown schedule")
	assert.ErrorContains(t, train.Schedule{Name: "step"}.Validate(), "step size")
	assert.ErrorContains(t, train.Schedule{Name: "cosine"}.Validate(), "total steps")
}
