package train

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"spottrain/distributed"
)

// TestElasticChoose checks how rank 0 picks the next generation's members among the ranks that
// registered: a machine that lost a rank leaves whole, joiners come in, and no generation is
// formed below distributed.min_nodes machines or with a world that does not divide the batch.
func TestElasticChoose(t *testing.T) {
	// 3 machines of 2 ranks: machine 0 has ranks 0 and 1, machine 1 ranks 2 and 3, machine 2 ranks 4, 5.
	e := &elastic{member: distributed.Member{Rank: 0, World: 6, LocalWorld: 2}, minNodes: 2, batch: 12}
	all := []int{0, 1, 2, 3, 4, 5}
	set := func(rs ...int) map[int]bool {
		m := map[int]bool{}
		for _, r := range rs {
			m[r] = true
		}
		return m
	}
	for _, c := range []struct {
		name       string
		cur        []int
		registered map[int]bool
		want       []int
		why        string
	}{
		{name: "AllBack", cur: all, registered: set(all...), want: all},
		{name: "MachineLost", cur: all, registered: set(0, 1, 2, 3), want: []int{0, 1, 2, 3}},
		{name: "OneRankOfAMachineLost", cur: all, registered: set(0, 1, 2, 3, 5), want: []int{0, 1, 2, 3}},
		{name: "Joiners", cur: []int{0, 1, 2, 3}, registered: set(0, 1, 2, 3, 4, 5), want: all},
		{name: "TooFewMachines", cur: all, registered: set(0, 1, 3), why: "1 machine(s) left, fewer than distributed.min_nodes 2"},
		{name: "BatchDoesNotDivide", cur: []int{0, 1, 2, 3}, registered: set(0, 1, 2, 3, 4), why: "train.batch_size 12 is not divisible by the 5 processes left"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := e.choose(c.cur, c.registered)
			assert.Equal(t, c.why, why)
			if c.why == "" {
				assert.Equal(t, c.want, got)
			}
		})
	}
}

// TestElasticPlace checks the place of a rank in a generation: its launch rank's index among the
// members, and the generation's store prefix (the launch group's own for generation 0).
func TestElasticPlace(t *testing.T) {
	e := &elastic{member: distributed.Member{Rank: 4, World: 6, LocalWorld: 2, Prefix: "/worker/attempt_0"}}
	p := e.placeOf(2, []int{0, 1, 4, 5})
	assert.Equal(t, place{rank: 2, world: 4, prefix: "/worker/attempt_0/gen2"}, p)
	assert.Equal(t, "/worker/attempt_0", e.prefix(0))
	assert.Equal(t, -1, e.placeOf(1, []int{0, 1}).rank, "not a member")
}
