package train

import (
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"spottrain/configs"
	"spottrain/distributed"
	"spottrain/events"
	"spottrain/torch"
)

// A job of a group (Options.Member set) is one process of a data-parallel group over c10d. Every
// rank trains a replica of the model on its share of each global batch (train.batch_size is the
// global batch), and every step sums the ranks' weighted gradients, so that the replicas take the
// same steps as one process on the whole batch would. Rank 0 owns the run dir: the lock, the
// event log, the checkpoints and their remote copy. The others get the state from it by broadcast
// at the start, and send it their RNG state at each checkpoint. Decisions that must be the same on
// every rank (stop on a notice, checkpoint now) are taken together, once per step: rank 0 decides
// when to checkpoint, and a notice to any rank stops them all after the same step.

// group is a job's process group as the loop and the job use it. A nil *group is a process alone:
// every method then does what one process does by itself.
type group struct {
	g       *torch.Group
	backend string
	bucket  int64 // bytes per gradient bucket
}

// joinGroup joins, at the place at, the group of m, for a model on dev, as dc says: its backend
// (auto: NCCL on a CUDA device, Gloo on the CPU) and the size of its gradient buckets.
func joinGroup(m *distributed.Member, at place, dev torch.Device, dc configs.DistributedConfig) (*group, error) {
	backend := dc.Backend
	if backend == "auto" {
		backend = "gloo"
		if dev.IsCUDA() {
			backend = "nccl"
		}
	}
	g, err := torch.NewGroup(torch.GroupConfig{
		Host: m.MasterAddr, Port: m.MasterPort, HostStore: !m.AgentStore && m.Rank == 0, Prefix: at.prefix,
		Rank: at.rank, World: at.world, Backend: backend, Device: dev, Bind: bindAddr(m), Timeout: m.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("rank %d of %d: join the group at %s:%d: %w", at.rank, at.world, m.MasterAddr, m.MasterPort, err)
	}
	return &group{g: g, backend: backend, bucket: int64(dc.BucketMB * (1 << 20))}, nil
}

// bindAddr is the local address a rank's Gloo uses: the one this machine reaches MASTER_ADDR from
// (the interface the route to it leaves by), so that ranks on several machines find each other
// whatever this machine's hostname resolves to. "" (Gloo's choice) for a loopback MASTER_ADDR,
// when GLOO_SOCKET_IFNAME names the interface, or when there is no route (the rendezvous then
// fails with its own error).
func bindAddr(m *distributed.Member) string {
	if os.Getenv("GLOO_SOCKET_IFNAME") != "" {
		return ""
	}
	if ip := net.ParseIP(m.MasterAddr); m.MasterAddr == "localhost" || ip != nil && ip.IsLoopback() {
		return ""
	}
	c, err := net.Dial("udp", net.JoinHostPort(m.MasterAddr, strconv.Itoa(m.MasterPort))) // sends nothing
	if err != nil {
		return ""
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// rank and world are the process's place in the group: 0 of 1 alone.
func (p *group) rank() int {
	if p == nil {
		return 0
	}
	return p.g.Rank()
}

func (p *group) world() int {
	if p == nil {
		return 1
	}
	return p.g.World()
}

// leader reports whether this process owns the run dir: rank 0, or a process alone.
func (p *group) leader() bool { return p.rank() == 0 }

func (p *group) close() {
	if p != nil {
		p.g.Close()
	}
}

// measure returns what the gradient sums of net's steps cost since it joined the group, beside a
// bare allreduce of the same bytes (the median of 5), measured now: a collective, which every rank
// calls once its training is over.
func (p *group) measure(net *torch.Net) (events.GroupStats, error) {
	calls, took := net.ReduceStats()
	buf := make([]float32, net.NumParams()+1) // the gradients and the loss
	var bare [5]time.Duration
	for i := range bare {
		start := time.Now()
		if err := p.g.SumFloat32(buf); err != nil {
			return events.GroupStats{}, p.lost("the allreduce benchmark", err)
		}
		bare[i] = time.Since(start)
	}
	slices.Sort(bare[:])
	s := events.GroupStats{World: p.world(), Backend: p.backend, Steps: calls, Bytes: int64(len(buf)) * 4,
		BareMS: bare[len(bare)/2].Seconds() * 1000}
	if calls > 0 {
		s.ReduceMS = took.Seconds() * 1000 / float64(calls)
	}
	return s, nil
}

// Share returns the part [lo, hi) of a batch of n samples that rank of world trains on: contiguous
// parts in rank order, whose sizes differ by one at most (all equal when world divides n).
func Share(n, rank, world int) (lo, hi int) { return rank * n / world, (rank + 1) * n / world }

// rankOrder returns the samples of order that this rank trains on: shareOrder's.
func (p *group) rankOrder(order []int, batch int) []int {
	return shareOrder(order, batch, p.rank(), p.world())
}

// shareOrder returns the samples of order that rank of world trains on, batch after batch: its
// Share of each batch of size batch. Alone, order itself.
func shareOrder(order []int, batch, rank, world int) []int {
	if world == 1 {
		return order
	}
	out := make([]int, 0, len(order)/world+1)
	for b := 0; b < len(order); b += batch {
		idx := order[b:min(b+batch, len(order))]
		lo, hi := Share(len(idx), rank, world)
		out = append(out, idx[lo:hi]...)
	}
	return out
}

// Shard is the part of an evaluation one process of a group scores (Parts). Sum adds the
// processes' totals up, in place. The zero Shard is a process alone: all of it, nothing to add.
type Shard struct {
	Rank, World int
	Sum         func([]float64) error
}

// Parts returns this shard's [lo, hi) ranges of n samples scored in batches of batch: the group
// scores batches of about batch samples, of which each rank takes ceil(batch/World) in rank
// order. There is one range per batch of the group, the same number on every rank; some are
// empty (a last batch smaller than the group's).
func (s Shard) Parts(n, batch int) [][2]int {
	world := max(s.World, 1)
	per := (batch + world - 1) / world
	var out [][2]int
	for start := 0; start < n; start += per * world {
		lo := min(start+s.Rank*per, n)
		out = append(out, [2]int{lo, min(lo+per, n)})
	}
	return out
}

// sum adds up the totals of the shards; nothing alone.
func (s Shard) sum(v []float64) error {
	if s.Sum == nil {
		return nil
	}
	return s.Sum(v)
}

// shard is this process's part of an evaluation of net, which it readies for it: every rank
// scores with rank 0's buffers (BatchNorm's running statistics), as a checkpoint holds them.
func (p *group) shard(net *torch.Net) (Shard, error) {
	if p == nil {
		return Shard{}, nil
	}
	if err := p.g.BroadcastBuffers(net, 0); err != nil {
		return Shard{}, p.lost("the buffers' broadcast", err)
	}
	return Shard{Rank: p.rank(), World: p.world(), Sum: func(v []float64) error {
		return p.lost("the evaluation's sums", p.g.SumFloat64(v))
	}}, nil
}

// agree takes the group's decisions together, once: the notice (a notice to any rank is one to
// all, as of the earliest), and for each of flags whether rank 0 set it (when to checkpoint is
// rank 0's decision). Alone, it returns its arguments.
func (p *group) agree(notice *Notice, flags ...bool) (*Notice, []bool, error) {
	if p == nil {
		return notice, flags, nil
	}
	v := p.flags(notice, flags...)
	if err := p.lost("the group's decision", p.g.MaxInt64(v)); err != nil {
		return nil, nil, err
	}
	notice, out := p.decisions(v, notice)
	return notice, out, nil
}

// flags encodes this rank's part of a decision for a maximum over the group: whether a notice
// came and when (its negated time: the maximum is the earliest), then rank 0's flags.
func (p *group) flags(notice *Notice, flags ...bool) []int64 {
	v := make([]int64, 2+len(flags))
	v[1] = math.MinInt64
	if notice != nil {
		v[0], v[1] = 1, -notice.At.UnixNano()
	}
	for i, f := range flags {
		if f && p.leader() {
			v[2+i] = 1
		}
	}
	return v
}

// decisions decodes the group's maximum v of flags: the notice that stops the group (this rank's
// own, notice, with the group's earliest time; or a peer's), and rank 0's flags.
func (p *group) decisions(v []int64, notice *Notice) (*Notice, []bool) {
	if v[0] == 1 {
		at := time.Unix(0, -v[1])
		if notice == nil {
			notice = &Notice{Signal: peerNotice{}, At: at}
		} else {
			notice = &Notice{Signal: notice.Signal, At: at}
		}
	}
	out := make([]bool, len(v)-2)
	for i := range out {
		out[i] = v[2+i] == 1
	}
	return notice, out
}

// peerNotice is the Signal of a notice that came to another rank of the group.
type peerNotice struct{}

func (peerNotice) String() string { return "a notice to another rank" }
func (peerNotice) Signal()        {}

var _ os.Signal = peerNotice{}

// lost turns err, a failure during op, into a *PeerLostError when a rank is gone (killed, frozen,
// its machine lost) or the store is unreachable; other errors it returns with op (and, for a
// collective's timeout with every rank alive, the key to raise), and nil for nil.
func (p *group) lost(op string, err error) error {
	if err == nil || p == nil {
		return err
	}
	missing, merr := p.g.Missing(1200 * time.Millisecond)
	switch {
	case merr != nil:
		return &PeerLostError{Op: op, World: p.world(), StoreGone: true, Err: err}
	case len(missing) > 0:
		return &PeerLostError{Op: op, World: p.world(), Missing: missing, Err: err}
	case strings.Contains(err.Error(), "Timed out"): // Gloo's words for a collective's timeout
		return fmt.Errorf("%s: %w (every rank is alive: one was slower than distributed.timeout)", op, err)
	default: // a failure of this rank's own (the step before its sums), not the group's
		return fmt.Errorf("%s: %w", op, err)
	}
}

// PeerLostError ends every surviving process of a group when a peer is gone: its exit status is
// 75, as a preemption's (start again to resume from the newest committed checkpoint, which is
// intact).
type PeerLostError struct {
	Op        string // what the group was doing
	World     int
	Missing   []int // the ranks gone
	StoreGone bool  // the rendezvous store is unreachable: its host (the launcher, or rank 0) is gone
	Err       error // the collective's failure
}

func (e *PeerLostError) Error() string {
	who := "the rendezvous store is unreachable: its host (the launcher, or rank 0) is gone"
	if !e.StoreGone {
		ranks := make([]string, len(e.Missing))
		for i, r := range e.Missing {
			ranks[i] = fmt.Sprint(r)
		}
		s := "s"
		if len(ranks) == 1 {
			s = ""
		}
		who = fmt.Sprintf("rank%s %s of %d stopped responding (killed, frozen or its machine lost)", s, strings.Join(ranks, ", "), e.World)
	}
	return fmt.Sprintf("%s during %s: leaving the group; the newest committed checkpoint is intact, start again to resume (%v)", who, e.Op, e.Err)
}

func (e *PeerLostError) Unwrap() error { return e.Err }

// errLeader is the error of a follower whose leader (rank 0) did not start the run.
type errLeader struct {
	msg  string
	code int
}

func (e *errLeader) Error() string { return "rank 0 did not start the run: " + e.msg }

// threadsPerRank divides the machine's cores among the local ranks when threads is 0 (one per
// core), as torchrun leaves each worker its part of the machine.
func threadsPerRank(threads int, m *distributed.Member) int {
	if threads != 0 {
		return threads
	}
	local := 1
	if m != nil {
		local = max(m.LocalWorld, 1)
	}
	return max(runtime.NumCPU()/local, 1)
}

// rankDevice is the device of a rank: "auto" and "cuda" mean the local rank's GPU (cuda:LOCAL_RANK)
// in a group on a machine with GPUs.
func rankDevice(dev torch.Device, m *distributed.Member) (torch.Device, error) {
	if m == nil || dev != "cuda" {
		return dev, nil
	}
	if n := torch.CUDADeviceCount(); m.LocalRank >= n {
		return "", fmt.Errorf("device: LOCAL_RANK %d has no GPU of its own (%d on this machine): start at most one process per GPU", m.LocalRank, n)
	}
	return torch.Device(fmt.Sprintf("cuda:%d", m.LocalRank)), nil
}
