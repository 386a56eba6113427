package train

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"spottrain/distributed"
	"spottrain/torch"
)

// An elastic group (distributed.min_nodes > 0, several machines, a launcher's store) goes on
// without a restart when a machine is lost, and grows again when one is started in its place.
// Its life is a sequence of generations, each a c10d group of its own on a store prefix of its own
// (generation 0 is the group the launchers started; generation k's prefix ends in /gen<k>).
//
//   - Shrink: when a collective fails because ranks are gone, every rank left registers for the
//     next generation in the store. Rank 0, which owns the run dir and whose machine hosts the
//     store, waits for them (at most distributed.timeout plus a margin: a rank learns of the loss
//     at its next collective, within the timeout), then decides the members: the ranks
//     registered, less every machine that lost one of its ranks (a machine leaves whole), if
//     distributed.min_nodes machines are left and their number of ranks divides train.batch_size.
//     The members form the new group, and the run goes on from the newest committed checkpoint,
//     restored as a resume on that many ranks would restore it (see TestElasticResume): the same
//     global batches. Ranks left out exit 75, as every rank does when no generation can be formed.
//   - Grow: a rank started while the group is in generation k > 0 (its machine came back) asks to
//     join in the store and waits. At its next periodic checkpoint rank 0 sees the request; the
//     group takes the checkpoint, and all, the new ranks with them, form generation k+1 and go on
//     from that checkpoint: no step is lost.
//
// A rank's place in a generation is its launch rank's (RANK as its launcher set it) among the
// members, in increasing order; its machine is launch rank / LOCAL_WORLD_SIZE. The store's keys
// are counters (torch.StoreClient) under the launch group's prefix:
//
//	gen                 the newest generation decided
//	gen<k>/alive/<r>    launch rank r registered for generation k (it survived generation k-1)
//	gen<k>/join/<r>     launch rank r asks to join generation k (sent while k-1 is the newest),
//	                    counting up while it waits
//	gen<k>/joiners      how many asked to join generation k
//	gen<k>/in/<r>       launch rank r is a member of generation k
//	gen<k>/decided      rank 0 has decided generation k's members (written last)
type elastic struct {
	store    *torch.StoreClient
	member   distributed.Member // as the launcher started this process
	minNodes int
	batch    int   // train.batch_size: the world must divide it
	gen      int   // this process's generation
	members  []int // the launch ranks of this generation, in rank order
}

// newElastic returns the elastic side of a group of m, or nil when the group is not elastic:
// min_nodes 0, one machine, or a store that rank 0 hosts (torch.distributed's env://: the store
// would go with the group rank 0 leaves).
func newElastic(m *distributed.Member, minNodes, batch int) (*elastic, error) {
	if minNodes < 1 || !m.AgentStore || m.World <= max(m.LocalWorld, 1) {
		return nil, nil
	}
	s, err := torch.DialStore(m.MasterAddr, m.MasterPort, m.Prefix, m.Timeout)
	if err != nil {
		return nil, fmt.Errorf("rank %d of %d: reach the rendezvous store at %s:%d: %w", m.Rank, m.World, m.MasterAddr, m.MasterPort, err)
	}
	e := &elastic{store: s, member: *m, minNodes: minNodes, batch: batch}
	for r := range m.World {
		e.members = append(e.members, r)
	}
	return e, nil
}

func (e *elastic) close() {
	if e != nil {
		e.store.Close()
	}
}

// node is the machine of launch rank r.
func (e *elastic) node(r int) int { return r / max(e.member.LocalWorld, 1) }

// prefix is the store prefix of generation k's group.
func (e *elastic) prefix(k int) string {
	if k == 0 {
		return e.member.Prefix
	}
	return e.member.Prefix + "/gen" + strconv.Itoa(k)
}

func genKey(k int, what string, r ...int) string {
	key := "gen" + strconv.Itoa(k) + "/" + what
	for _, v := range r {
		key += "/" + strconv.Itoa(v)
	}
	return key
}

// place is a rank's place in a group: its rank, the group's size, and the prefix of the group's
// keys in the store.
type place struct {
	rank, world int
	prefix      string
}

// placeOf returns the place of this process in generation k, whose members are given (rank -1:
// not one of them).
func (e *elastic) placeOf(k int, members []int) place {
	return place{rank: slices.Index(members, e.member.Rank), world: len(members), prefix: e.prefix(k)}
}

// readMembers reads the members of generation k that rank 0 decided, among the launch ranks.
func (e *elastic) readMembers(k int) ([]int, error) {
	var out []int
	for r := range e.member.World {
		n, err := e.store.Add(genKey(k, "in", r), 0)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, r)
		}
	}
	return out, nil
}

// pendingJoiners reports, on rank 0, whether ranks ask to join the next generation.
func (e *elastic) pendingJoiners() bool {
	if e == nil {
		return false
	}
	n, err := e.store.Add(genKey(e.gen+1, "joiners"), 0)
	return err == nil && n > 0 // the store's loss is noticed by the next collective
}

// errNoGeneration is why a generation could not be formed.
type errNoGeneration struct{ why string }

func (e *errNoGeneration) Error() string { return "the group cannot go on without a restart: " + e.why }

// decide is rank 0's part of forming generation k: it waits until every rank of cur (the current
// members) but itself has registered or is gone (the ranks gone, then every 2 s what missing
// says), or wait has passed; then it writes the members: the registered ranks and the joiners,
// less the machines of the ranks that did not register. It returns them, or an *errNoGeneration
// (the members are then none).
func (e *elastic) decide(k int, cur, gone []int, missing func() []int, wait time.Duration) ([]int, error) {
	registered := map[int]bool{e.member.Rank: true}
	checked := time.Now()
	for deadline := checked.Add(wait); ; time.Sleep(20 * time.Millisecond) {
		if time.Since(checked) > 2*time.Second {
			gone, checked = missing(), time.Now()
		}
		waiting := false
		for _, r := range cur {
			if registered[r] || slices.Contains(gone, r) {
				continue
			}
			n, err := e.store.Add(genKey(k, "alive", r), 0)
			if err != nil {
				return nil, err
			}
			registered[r] = n > 0
			waiting = waiting || n == 0
		}
		if !waiting || time.Now().After(deadline) {
			break
		}
	}
	joiners, err := e.liveJoiners(k, cur)
	if err != nil {
		return nil, err
	}
	for _, r := range joiners {
		registered[r] = true
	}
	members, why := e.choose(cur, registered)
	for _, r := range members {
		if _, err := e.store.Add(genKey(k, "in", r), 1); err != nil {
			return nil, err
		}
	}
	if _, err := e.store.Add(genKey(k, "decided"), 1); err != nil {
		return nil, err
	}
	if _, err := e.store.Add("gen", 1); err != nil {
		return nil, err
	}
	if why != "" {
		return nil, &errNoGeneration{why}
	}
	return members, nil
}

// joinBeat is how often a rank waiting to join counts its join key up, and liveJoiners how long
// rank 0 watches the keys move: a rank that asked to join and died meanwhile is left out, or the
// group would wait for it in vain.
const joinBeat, joinWatch = 50 * time.Millisecond, 600 * time.Millisecond

// liveJoiners returns the launch ranks, not in cur, that ask to join generation k and are still
// waiting: their join keys move.
func (e *elastic) liveJoiners(k int, cur []int) ([]int, error) {
	counts := func() (map[int]int64, error) {
		out := map[int]int64{}
		for r := range e.member.World {
			if slices.Contains(cur, r) {
				continue
			}
			n, err := e.store.Add(genKey(k, "join", r), 0)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				out[r] = n
			}
		}
		return out, nil
	}
	before, err := counts()
	if err != nil || len(before) == 0 {
		return nil, err
	}
	time.Sleep(joinWatch)
	after, err := counts()
	if err != nil {
		return nil, err
	}
	var live []int
	for r := range e.member.World {
		if after[r] > before[r] && before[r] > 0 {
			live = append(live, r)
		}
	}
	return live, nil
}

// choose returns the members of the next generation among the launch ranks registered, cur being
// the current members: a machine one of whose current ranks did not register leaves whole. It
// returns none and why when the members would be too few machines or would not divide the batch.
func (e *elastic) choose(cur []int, registered map[int]bool) ([]int, string) {
	lost := map[int]bool{}
	for _, r := range cur {
		if !registered[r] {
			lost[e.node(r)] = true
		}
	}
	var members []int
	nodes := map[int]bool{}
	for r := range e.member.World {
		if registered[r] && !lost[e.node(r)] {
			members = append(members, r)
			nodes[e.node(r)] = true
		}
	}
	switch {
	case len(nodes) < e.minNodes:
		return nil, fmt.Sprintf("%d machine(s) left, fewer than distributed.min_nodes %d", len(nodes), e.minNodes)
	case e.batch%len(members) != 0:
		return nil, fmt.Sprintf("train.batch_size %d is not divisible by the %d processes left", e.batch, len(members))
	}
	return members, ""
}

// join is how a rank started while its group is past generation 0 gets into it: it asks to join
// the next generation and waits for rank 0 to take it in (at a checkpoint), as long as stopped
// reports no notice. It returns the place to join, or the zero place when the group is still in
// generation 0 (the launch group: join that).
func (e *elastic) join(stopped func() error) (place, error) {
	for {
		cur, err := e.store.Add("gen", 0)
		if err != nil || cur == 0 {
			return place{}, err
		}
		k := int(cur) + 1
		if _, err := e.store.Add(genKey(k, "join", e.member.Rank), 1); err != nil {
			return place{}, err
		}
		if _, err := e.store.Add(genKey(k, "joiners"), 1); err != nil {
			return place{}, err
		}
		for {
			if err := stopped(); err != nil {
				return place{}, err
			}
			n, err := e.store.Add(genKey(k, "decided"), 0)
			if err == nil && n == 0 {
				_, err = e.store.Add(genKey(k, "join", e.member.Rank), 1) // still waiting
			}
			if err != nil {
				return place{}, err
			}
			if n > 0 {
				break
			}
			time.Sleep(joinBeat)
		}
		members, err := e.readMembers(k)
		if err != nil {
			return place{}, err
		}
		if slices.Contains(members, e.member.Rank) {
			e.gen, e.members = k, members
			return e.placeOf(k, members), nil
		}
		// Generation k was formed without us (a machine lost meanwhile): ask for the next one.
	}
}

// errGrow ends a loop whose group takes in new ranks after the checkpoint it just took.
var errGrow = errors.New("ranks join the group")
