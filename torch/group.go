package torch

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"runtime"
	"time"
	"unsafe"
)

// Store is c10d's TCPStore hosted by this process: the rendezvous of a group whose processes this
// process launches (as torchrun's agent hosts it).
type Store struct {
	p       C.Store
	port    int
	cleanup runtime.Cleanup
}

// NewStoreServer hosts a TCPStore on a free port of every interface of this machine. Its clients
// wait up to timeout for a key.
func NewStoreServer(timeout time.Duration) (*Store, error) { return NewStoreServerAt(0, timeout) }

// NewStoreServerAt is NewStoreServer on the given port (0: a free one); a port in use is an error.
func NewStoreServerAt(port int, timeout time.Duration) (*Store, error) {
	var p C.Store
	var bound C.int
	if err := check("store", C.Store_NewServer(C.int(port), C.int64_t(timeout.Milliseconds()), &p, &bound)); err != nil {
		return nil, err
	}
	s := &Store{p: p, port: int(bound)}
	s.cleanup = runtime.AddCleanup(s, func(p C.Store) { C.Store_Free(p) }, p)
	return s, nil
}

// Port returns the TCP port the store listens on.
func (s *Store) Port() int { return s.port }

// Close stops the store. It is safe to call more than once.
func (s *Store) Close() {
	if s.p != nil {
		s.cleanup.Stop()
		C.Store_Free(s.p)
		s.p = nil
	}
}

// StoreClient is a connection to a rendezvous store (c10d's TCPStore), its keys under a prefix:
// the counters through which the processes of an elastic group agree on its members. It is not
// safe for concurrent use.
type StoreClient struct {
	p       C.StoreClient
	cleanup runtime.Cleanup
}

// DialStore connects to the store at host:port, its keys under prefix; it fails after timeout
// without a store there, and so does every Add that gets no answer.
func DialStore(host string, port int, prefix string, timeout time.Duration) (*StoreClient, error) {
	ch, cp := C.CString(host), C.CString(prefix)
	defer C.free(unsafe.Pointer(ch))
	defer C.free(unsafe.Pointer(cp))
	var p C.StoreClient
	if err := check("store", C.StoreClient_New(ch, C.int(port), cp, C.int64_t(timeout.Milliseconds()), &p)); err != nil {
		return nil, err
	}
	s := &StoreClient{p: p}
	s.cleanup = runtime.AddCleanup(s, func(p C.StoreClient) { C.StoreClient_Free(p) }, p)
	return s, nil
}

// Add adds delta to the counter key and returns its new value (delta 0 reads it; a key never added
// to counts 0).
func (s *StoreClient) Add(key string, delta int64) (int64, error) {
	if s.p == nil {
		return 0, &Error{Op: "store", Msg: "the store client is closed"}
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var v C.int64_t
	err := check("store", C.StoreClient_Add(s.p, ck, C.int64_t(delta), &v))
	return int64(v), err
}

// Close closes the connection. It is safe to call more than once.
func (s *StoreClient) Close() {
	if s.p != nil {
		s.cleanup.Stop()
		C.StoreClient_Free(s.p)
		s.p = nil
	}
}

// GroupConfig says how a process joins its group.
type GroupConfig struct {
	Host      string // where the rendezvous store listens
	Port      int
	HostStore bool   // this process hosts the store (rank 0 when no launcher does)
	Prefix    string // before every key of the group in the store
	Rank      int
	World     int
	Backend   string // "gloo" or "nccl"
	Device    Device // the device of this rank's model: NCCL's collectives run there
	// Bind is the local address Gloo listens on and connects from: "" leaves it to Gloo (the
	// interface GLOO_SOCKET_IFNAME names, 127.0.0.1 for a loopback Host, else the address this
	// machine's hostname resolves to).
	Bind    string
	Timeout time.Duration
}

// Group is this process's membership of a data-parallel group over c10d. Every collective must be
// called by every rank, in the same order; each fails after the group's timeout when a peer does
// not take part (a peer that died is noticed at once). A Group is not safe for concurrent use.
type Group struct {
	p           C.Group
	rank, world int
	cleanup     runtime.Cleanup
}

// NewGroup joins the group c describes: it returns once every rank has joined, or fails after
// c.Timeout.
func NewGroup(c GroupConfig) (*Group, error) {
	const op = "join group"
	if c.World < 1 || c.Rank < 0 || c.Rank >= c.World {
		return nil, errorf(op, "rank %d of a group of %d", c.Rank, c.World)
	}
	host, prefix, backend, dev, bind := C.CString(c.Host), C.CString(c.Prefix), C.CString(c.Backend),
		C.CString(string(c.Device)), C.CString(c.Bind)
	defer func() {
		for _, s := range []*C.char{host, prefix, backend, dev, bind} {
			C.free(unsafe.Pointer(s))
		}
	}()
	var p C.Group
	err := check(op, C.Group_New(host, C.int(c.Port), cbool(c.HostStore), prefix, C.int(c.Rank), C.int(c.World),
		backend, dev, bind, C.int64_t(c.Timeout.Milliseconds()), &p))
	if err != nil {
		return nil, err
	}
	g := &Group{p: p, rank: c.Rank, world: c.World}
	g.cleanup = runtime.AddCleanup(g, func(p C.Group) { C.Group_Free(p) }, p)
	return g, nil
}

// Rank returns this process's rank in the group; World the group's size.
func (g *Group) Rank() int  { return g.rank }
func (g *Group) World() int { return g.world }

// Close leaves the group (without waiting for the others). It is safe to call more than once.
func (g *Group) Close() {
	if g.p != nil {
		g.cleanup.Stop()
		C.Group_Free(g.p)
		g.p = nil
	}
}

func (g *Group) live(op string) error {
	if g == nil || g.p == nil {
		return errorf(op, "group is closed")
	}
	return nil
}

// MaxInt64 replaces v, on every rank, by its element-wise maximum over the group.
func (g *Group) MaxInt64(v []int64) error {
	const op = "allreduce"
	if err := g.live(op); err != nil || len(v) == 0 {
		return err
	}
	return check(op, C.Group_AllreduceMaxInt64(g.p, cFlags(v), C.int64_t(len(v))))
}

// SumFloat64 replaces v, on every rank, by its element-wise sum over the group.
func (g *Group) SumFloat64(v []float64) error {
	const op = "allreduce"
	if err := g.live(op); err != nil || len(v) == 0 {
		return err
	}
	return check(op, C.Group_AllreduceSumFloat64(g.p, (*C.double)(unsafe.Pointer(unsafe.SliceData(v))), C.int64_t(len(v))))
}

// SumFloat32 replaces v, on every rank, by its element-wise sum over the group: the bare
// allreduce that benchmarks compare the training step's with.
func (g *Group) SumFloat32(v []float32) error {
	const op = "allreduce"
	if err := g.live(op); err != nil || len(v) == 0 {
		return err
	}
	return check(op, C.Group_AllreduceSumFloat32(g.p, (*C.float)(unsafe.Pointer(unsafe.SliceData(v))), C.int64_t(len(v))))
}

// Barrier returns when every rank has called it.
func (g *Group) Barrier() error {
	const op = "barrier"
	if err := g.live(op); err != nil {
		return err
	}
	return check(op, C.Group_Barrier(g.p))
}

// Broadcast returns root's data on every rank: root passes it (and gets it back), the others'
// data is ignored.
func (g *Group) Broadcast(root int, data []byte) ([]byte, error) {
	const op = "broadcast"
	if err := g.live(op); err != nil {
		return nil, err
	}
	if g.rank != root {
		var p unsafe.Pointer
		var n C.int64_t
		if err := check(op, C.Group_Broadcast(g.p, C.int(root), &p, &n)); err != nil {
			return nil, err
		}
		defer C.free(p)
		return C.GoBytes(p, C.int(n)), nil
	}
	p := C.CBytes(data) // cgo may not keep a Go pointer in C memory (*data): pass a C copy
	defer C.free(p)
	n := C.int64_t(len(data))
	return data, check(op, C.Group_Broadcast(g.p, C.int(root), &p, &n))
}

// Gather returns, on root, every rank's data in rank order; nil on the others.
func (g *Group) Gather(root int, data []byte) ([][]byte, error) {
	const op = "gather"
	if err := g.live(op); err != nil {
		return nil, err
	}
	lens := make([]int64, g.world)
	var out unsafe.Pointer
	in := C.CBytes(data)
	defer C.free(in)
	err := check(op, C.Group_Gather(g.p, C.int(root), in, C.int64_t(len(data)), &out,
		(*C.int64_t)(unsafe.Pointer(unsafe.SliceData(lens)))))
	if err != nil || out == nil {
		return nil, err
	}
	defer C.free(out)
	var total int64
	for _, n := range lens {
		total += n
	}
	all := C.GoBytes(out, C.int(total))
	parts := make([][]byte, g.world)
	var off int64
	for r, n := range lens {
		parts[r] = all[off : off+n : off+n]
		off += n
	}
	return parts, nil
}

// BroadcastNet copies root's parameters and buffers into every rank's net.
func (g *Group) BroadcastNet(net *Net, root int) error {
	return g.broadcastNet("broadcast net", net, root, false)
}

// BroadcastBuffers copies root's buffers (BatchNorm's running statistics, which every rank's own
// forward passes move) into every rank's net: before an evaluation, so that every rank scores
// with the same model.
func (g *Group) BroadcastBuffers(net *Net, root int) error {
	return g.broadcastNet("broadcast buffers", net, root, true)
}

func (g *Group) broadcastNet(op string, net *Net, root int, buffersOnly bool) error {
	if err := g.live(op); err != nil {
		return err
	}
	if err := net.live(op); err != nil {
		return err
	}
	return check(op, C.Group_BroadcastNet(g.p, net.p, C.int(root), cbool(buffersOnly)))
}

// Add adds delta to the counter key in the group's rendezvous store and returns its new value
// (delta 0 reads it without waiting; a key never added to counts 0). Unlike the collectives, it
// needs no other rank: a rank can wait for another's word for longer than the group's timeout.
func (g *Group) Add(key string, delta int64) (int64, error) {
	const op = "store"
	if err := g.live(op); err != nil {
		return 0, err
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var v C.int64_t
	err := check(op, C.Group_Add(g.p, ck, C.int64_t(delta), &v))
	return int64(v), err
}

// Missing returns the ranks whose heartbeat in the rendezvous store does not move within wait
// (about a second is enough: each rank's moves every half second), in increasing order: the
// processes that are gone (killed, or frozen). It fails when the store cannot be reached, that is
// when its host (the launcher, or rank 0) is gone.
func (g *Group) Missing(wait time.Duration) ([]int, error) {
	const op = "missing ranks"
	if err := g.live(op); err != nil {
		return nil, err
	}
	flags := make([]C.int, g.world)
	if err := check(op, C.Group_Missing(g.p, C.int64_t(wait.Milliseconds()), unsafe.SliceData(flags))); err != nil {
		return nil, err
	}
	var out []int
	for r, f := range flags {
		if f != 0 {
			out = append(out, r)
		}
	}
	return out, nil
}

// SetGroup makes n's training steps data-parallel over g (nil: alone again): see TrainShare. The
// gradients are reduced in buckets of about bucketBytes.
func (n *Net) SetGroup(g *Group, bucketBytes int64) error {
	const op = "set group"
	if err := n.live(op); err != nil {
		return err
	}
	var p C.Group
	if g != nil {
		if err := g.live(op); err != nil {
			return err
		}
		p = g.p
	}
	return check(op, C.Net_SetGroup(n.p, p, C.int64_t(bucketBytes)))
}

// TrainShare is TrainStep for this rank's share of a global batch, in a net with a group: the
// gradients of every rank, each multiplied by its weight (its samples over the global batch's),
// are summed over the group before the clipping and the optimizer step, and so is the loss; so
// every rank takes the same step, that of the whole batch. An empty x (no samples: a share of a
// last batch smaller than the group) joins the sums with zeros. The values of flags are replaced
// by their maximum over the group within the step, where the ranks meet before the sums: the
// group's decisions (stop? checkpoint?) cost no collective of their own.
func (n *Net) TrainShare(opt *Optimizer, x, y Host, lr, clip, weight float64, flags []int64) error {
	const op = "train step"
	if len(x.shape) > 0 {
		return n.trainSteps(op, opt, x, y, lr, clip, 1, weight, flags)
	}
	if err := n.live(op); err != nil {
		return err
	}
	if opt == nil || opt.p == nil {
		return errorf(op, "optimizer is nil or closed")
	}
	return check(op, C.Net_TrainShare(n.p, opt.p, nil, nil, 0, nil, nil, 0, 0, C.double(lr), C.double(clip),
		C.double(weight), cFlags(flags), C.int64_t(len(flags))))
}

// cFlags points at flags' first value for a shim call (nil when empty).
func cFlags(flags []int64) *C.int64_t { return (*C.int64_t)(unsafe.Pointer(unsafe.SliceData(flags))) }

// ReduceStats returns how many gradient reductions the net's steps made since SetGroup, and the
// time they took.
func (n *Net) ReduceStats() (calls int64, took time.Duration) {
	if n.p == nil {
		return 0, 0
	}
	var c C.int64_t
	var s C.double
	C.Net_ReduceStats(n.p, &c, &s)
	return int64(c), time.Duration(float64(s) * float64(time.Second))
}
