package train

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"spottrain/distributed"
	"spottrain/events"
)

// enter joins this process's group (Options.Member): the launch group, or, for a rank of an
// elastic group started while the group is past its launch (its machine was lost and is back),
// the generation that rank 0 takes it into, at a checkpoint. A notice while it waits stops it.
func (j *job) enter(m *distributed.Member) error {
	at := place{rank: m.Rank, world: m.World, prefix: m.Prefix}
	var err error
	if j.elastic, err = newElastic(m, j.cfg.Distributed.MinNodes, j.cfg.Train.BatchSize); err != nil {
		return err
	}
	if j.elastic != nil {
		p, err := j.elastic.join(func() error {
			if n := j.notice(); n != nil {
				return j.stop(n, "waiting to join the group", -1)
			}
			return nil
		})
		var pe *PreemptedError
		if err != nil && !errors.As(err, &pe) { // the store is gone: node 0 ended, or was lost
			err = &PeerLostError{Op: "waiting to join the group", World: m.World, StoreGone: true, Err: err}
		}
		if err != nil {
			return err
		}
		if p.world > 0 {
			at = p
		}
	}
	if j.group, err = joinGroup(m, at, j.dev, j.cfg.Distributed); err != nil {
		if n := j.notice(); n != nil { // a peer stopped by the same notice before it joined
			return j.stop(n, "joining the group", -1)
		}
		return err
	}
	return j.net.SetGroup(j.group.g, j.group.bucket)
}

// trainAll is train, again in each generation an elastic group forms when it loses ranks or takes
// new ones in.
func (j *job) trainAll(ctx context.Context) error {
	for {
		err := j.train(ctx)
		if err == nil || j.elastic == nil {
			return err
		}
		if err = j.regroup(err); err != nil {
			return err
		}
	}
}

// RegroupError ends a rank of an elastic group that lost a peer (Cause) when the group cannot go
// on without it: its exit status is 75, as for the loss itself.
type RegroupError struct {
	Cause error
	Why   string
}

func (e *RegroupError) Error() string {
	return fmt.Sprintf("%v; the group cannot go on without a restart: %s", e.Cause, e.Why)
}

func (e *RegroupError) Unwrap() error { return e.Cause }

// regroup forms the elastic group's next generation after cause ended the loop: ranks lost (a
// *PeerLostError whose store is still there) or ranks to take in (errGrow). It returns once this
// process trains in the new generation, from the newest committed checkpoint that rank 0 restored
// and sent; else the error that ends the process: cause itself for any other error.
func (j *job) regroup(cause error) error {
	var pl *PeerLostError
	grow := errors.Is(cause, errGrow)
	if !grow && (!errors.As(cause, &pl) || pl.StoreGone) {
		return cause
	}
	began := time.Now()
	e, old := j.elastic, j.group
	if !grow {
		fmt.Fprintf(j.log, "%v\nforming the group again without them (distributed.min_nodes %d)\n", cause, e.minNodes)
	}
	k := e.gen + 1
	var gone []int // the launch ranks the loss was blamed on
	if pl != nil {
		for _, r := range pl.Missing {
			gone = append(gone, e.members[r])
		}
	}
	members, err := j.nextMembers(k, old, gone)
	if err != nil {
		return &RegroupError{Cause: cause, Why: err.Error()}
	}
	if !slices.Contains(members, e.member.Rank) {
		return &RegroupError{Cause: cause, Why: "this machine lost a rank of its own, or answered too late: it leaves"}
	}
	prev := e.members
	e.gen, e.members = k, members
	old.close()
	j.group = nil
	at := e.placeOf(k, members)
	if j.group, err = joinGroup(&e.member, at, j.dev, j.cfg.Distributed); err != nil {
		return &RegroupError{Cause: cause, Why: err.Error()}
	}
	if err := j.net.SetGroup(j.group.g, j.group.bucket); err != nil {
		return err
	}
	if !j.group.leader() {
		return j.receiveStart()
	}
	j.ck.group = j.group
	change := events.Regroup{Generation: k, FromWorld: len(prev), ToWorld: len(members),
		Lost: without(prev, members), Joined: without(members, prev)}
	return j.announce(j.restart(change, began))
}

// nextMembers is this rank's part in deciding the members of generation k, the launch ranks gone
// known to be gone: rank 0 decides (see elastic.decide), the others register and wait for its
// word as long as it is alive.
func (j *job) nextMembers(k int, old *group, gone []int) ([]int, error) {
	e := j.elastic
	if _, err := e.store.Add(genKey(k, "alive", e.member.Rank), 1); err != nil {
		return nil, err
	}
	if !old.leader() {
		err := old.awaitLeader("waiting for rank 0 to form the group again", func() (int64, error) {
			return e.store.Add(genKey(k, "decided"), 0)
		})
		if err != nil {
			return nil, err
		}
		return e.readMembers(k)
	}
	missing := func() []int {
		ranks, _ := old.g.Missing(1200 * time.Millisecond) // the store's loss fails the next Add
		out := make([]int, len(ranks))
		for i, r := range ranks {
			out[i] = e.members[r]
		}
		return out
	}
	return e.decide(k, e.members, gone, missing, j.cfg.Distributed.Timeout+5*time.Second)
}

// restart is rank 0's side of a new generation: it restores the newest committed checkpoint (the
// one the group just took, when it grows) and records the change, which took since began.
func (j *job) restart(change events.Regroup, began time.Time) error {
	j.ck.wait()
	change.AtStep = j.ck.lastStep
	if j.sum.Result != nil {
		change.AtStep = j.sum.Result.Steps
	}
	ck, _, err := j.store.Latest()
	if err != nil {
		return &RegroupError{Cause: errors.New("no checkpoint to go on from"), Why: err.Error()}
	}
	if err := restore(ck, j.net, j.optim); err != nil {
		return fmt.Errorf("restore %s: %w", ck.Dir, err)
	}
	j.takeUp(ck)
	change.Step, change.Epoch, change.Batch, change.Dir = j.from.Step, j.from.Epoch, j.from.Batch, ck.Dir
	change.TookMS = time.Since(began).Seconds() * 1000
	fmt.Fprintf(j.log, "regrouped: %d → %d ranks (generation %d, in %.1f s): going on from step %d (%s); lost %v, joined %v\n",
		change.FromWorld, change.ToWorld, change.Generation, change.TookMS/1000, change.Step, ck.Dir, change.Lost, change.Joined)
	return j.events.Emit(change)
}

// without returns the values of a that b lacks.
func without(a, b []int) []int {
	var out []int
	for _, v := range a {
		if !slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}
