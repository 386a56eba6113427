// Package distributed is how spottrain trains with several processes: who a process is in its
// group (Member, read from the variables torchrun, Kubeflow's PyTorchJob or spottrain's own
// launcher set) and the launcher that starts a group of worker processes on one machine.
package distributed

import "time"

// Member is one process's place in a training group, as its environment describes it.
type Member struct {
	Rank       int // RANK: 0..World-1; rank 0 owns the run dir
	LocalRank  int // LOCAL_RANK: among the processes of this machine; picks the GPU (cuda:LocalRank)
	World      int // WORLD_SIZE: processes in the group
	LocalWorld int // LOCAL_WORLD_SIZE: processes on this machine (threads are divided among them)
	// MasterAddr and MasterPort (MASTER_ADDR, MASTER_PORT) are where the rendezvous store (c10d's
	// TCPStore) listens.
	MasterAddr string
	MasterPort int
	// AgentStore (TORCHELASTIC_USE_AGENT_STORE=True): the store is hosted by the launcher (torchrun's
	// agent, or spottrain's); otherwise rank 0 hosts it, as torch.distributed's env:// does.
	AgentStore bool
	// Prefix is put before every store key of this group: /worker/attempt_<TORCHELASTIC_RESTART_COUNT>
	// with an agent store (as torch/distributed/rendezvous.py does), else "".
	Prefix string
	// Timeout bounds the rendezvous and every collective (distributed.timeout).
	Timeout time.Duration
}
