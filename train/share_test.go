package train

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/distributed"
)

// The shares of a batch partition it in rank order, their sizes within one of each other.
func TestShareSplitsABatch(t *testing.T) {
	for _, c := range []struct{ n, world int }{{64, 2}, {64, 4}, {7, 2}, {3, 4}, {1, 2}, {10, 1}} {
		next := 0
		sizes := []int{}
		for r := range c.world {
			lo, hi := Share(c.n, r, c.world)
			require.Equal(t, next, lo, "n %d world %d rank %d", c.n, c.world, r)
			next = hi
			sizes = append(sizes, hi-lo)
		}
		assert.Equal(t, c.n, next, "n %d world %d: the shares cover the batch", c.n, c.world)
		assert.LessOrEqual(t, slices.Max(sizes)-slices.Min(sizes), 1, "n %d world %d: %v", c.n, c.world, sizes)
	}
}

// The parts of an evaluation's shards cover every sample once, every rank has as many parts, and
// a process alone scores batches of the evaluation batch size.
func TestShardPartsCoverTheSet(t *testing.T) {
	for _, c := range []struct{ n, batch, world int }{{361, 512, 1}, {1000, 300, 1}, {361, 512, 2}, {1000, 300, 3}, {5, 8, 4}, {10, 3, 4}} {
		seen := make([]int, c.n)
		count := -1
		for r := range c.world {
			parts := Shard{Rank: r, World: c.world}.Parts(c.n, c.batch)
			if count >= 0 {
				require.Len(t, parts, count, "n %d batch %d world %d rank %d", c.n, c.batch, c.world, r)
			}
			count = len(parts)
			for _, p := range parts {
				for i := p[0]; i < p[1]; i++ {
					seen[i]++
				}
			}
		}
		for i, k := range seen {
			require.Equal(t, 1, k, "n %d batch %d world %d: sample %d scored %d times", c.n, c.batch, c.world, i, k)
		}
		if c.world == 1 {
			parts := Shard{}.Parts(c.n, c.batch)
			assert.Equal(t, (c.n+c.batch-1)/c.batch, len(parts))
			assert.Equal(t, [2]int{0, min(c.batch, c.n)}, parts[0])
		}
	}
}

// A rank's order is its share of each batch, batch after batch; alone, the order itself.
func TestShareOrder(t *testing.T) {
	order := Order(1, 0, 10)
	assert.Equal(t, order, shareOrder(order, 4, 0, 1))
	// Batches of 4: [0:4] [4:8] [8:10]; rank 1 of 2 takes [2:4] [6:8] [9:10], rank 0 the rest.
	assert.Equal(t, slices.Concat(order[2:4], order[6:8], order[9:10]), shareOrder(order, 4, 1, 2))
	assert.Equal(t, slices.Concat(order[0:2], order[4:6], order[8:9]), shareOrder(order, 4, 0, 2))
}

// The decision's flags: the group's maximum says whether a notice came to any rank, and when the
// earliest came; only rank 0's flags count.
func TestDecisionFlags(t *testing.T) {
	early, late := time.Unix(100, 5), time.Unix(200, 0)
	leader := (*group)(nil) // a nil group is rank 0 alone: its flags count
	a := leader.flags(&Notice{Signal: peerNotice{}, At: late}, true)
	b := leader.flags(nil, false)
	c := leader.flags(&Notice{Signal: peerNotice{}, At: early}, false)
	most := slices.Clone(a)
	for _, v := range [][]int64{b, c} {
		for i := range most {
			most[i] = max(most[i], v[i])
		}
	}
	n, agreed := leader.decisions(most, nil)
	require.NotNil(t, n)
	assert.Equal(t, early, n.At, "the earliest notice")
	assert.Equal(t, "a notice to another rank", n.Signal.String())
	assert.Equal(t, []bool{true}, agreed)

	n, agreed = leader.decisions(b, nil)
	assert.Nil(t, n)
	assert.Equal(t, []bool{false}, agreed)
}

// Gloo binds where the route to MASTER_ADDR leaves this machine: nowhere in particular for a
// loopback address; the address itself for one of this machine's own.
func TestBindAddr(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		assert.Empty(t, bindAddr(&distributed.Member{MasterAddr: host, MasterPort: 29500}), host)
	}
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	var own string
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && ip.IP.To4() != nil {
			own = ip.IP.String()
			break
		}
	}
	require.NotEmpty(t, own, "this machine has no IPv4 address but loopback: %v", addrs)
	assert.Equal(t, own, bindAddr(&distributed.Member{MasterAddr: own, MasterPort: 29500}))
	t.Setenv("GLOO_SOCKET_IFNAME", "eth0")
	assert.Empty(t, bindAddr(&distributed.Member{MasterAddr: own, MasterPort: 29500}), "the interface is named")
}

// TestRankSeed checks the seeds of ranks a checkpoint has no RNG state of: the same for the same
// (seed, rank, step), and distinct across ranks, steps and seeds.
func TestRankSeed(t *testing.T) {
	seen := map[uint64]string{}
	for _, seed := range []uint64{0, 11} {
		for rank := range 8 {
			for _, step := range []int{0, 1, 2, 63, 1 << 20} {
				s := rankSeed(seed, rank, step)
				assert.Equal(t, s, rankSeed(seed, rank, step))
				what := fmt.Sprintf("seed %d rank %d step %d", seed, rank, step)
				if prev, ok := seen[s]; ok {
					t.Errorf("%s and %s have the same seed %d", prev, what, s)
				}
				seen[s] = what
			}
		}
	}
}
