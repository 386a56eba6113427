package distributed_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/distributed"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// torchrun returns the variables torchrun 1.13 sets for rank 1 of 2 on one machine (static
// rendezvous: an agent store), with extra ones replacing them ("" unsets one).
func torchrun(extra map[string]string) map[string]string {
	vars := map[string]string{
		"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
		"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
		"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "3",
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

func TestFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		vars map[string]string
		want *distributed.Member
	}{
		{"NoGroup", map[string]string{"RANK": "1", "MASTER_ADDR": "h"}, nil},
		{"Torchrun", torchrun(nil), &distributed.Member{Rank: 1, LocalRank: 1, World: 2, LocalWorld: 2,
			MasterAddr: "127.0.0.1", MasterPort: 29500, AgentStore: true, Prefix: "/worker/attempt_3"}},
		{"TorchrunNoAgentStore", torchrun(map[string]string{"TORCHELASTIC_USE_AGENT_STORE": "False", "TORCHELASTIC_RESTART_COUNT": ""}),
			&distributed.Member{Rank: 1, LocalRank: 1, World: 2, LocalWorld: 2, MasterAddr: "127.0.0.1", MasterPort: 29500}},
		{"AgentStoreIsExactlyTrue", torchrun(map[string]string{"TORCHELASTIC_USE_AGENT_STORE": "true"}),
			&distributed.Member{Rank: 1, LocalRank: 1, World: 2, LocalWorld: 2, MasterAddr: "127.0.0.1", MasterPort: 29500}},
		{"PyTorchJob", map[string]string{"RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"},
			&distributed.Member{Rank: 3, LocalRank: 0, World: 4, LocalWorld: 1, MasterAddr: "job-master-0", MasterPort: 23456}},
		{"OneProcess", map[string]string{"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"},
			&distributed.Member{World: 1, LocalWorld: 1, MasterAddr: "localhost", MasterPort: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := distributed.FromEnv(env(tt.vars))
			require.NoError(t, err)
			assert.Equal(t, tt.want, m)
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		vars map[string]string
		msg  string
	}{
		{"WorldNotInteger", torchrun(map[string]string{"WORLD_SIZE": "two"}), "WORLD_SIZE=two: not an integer"},
		{"WorldZero", torchrun(map[string]string{"WORLD_SIZE": "0"}), "WORLD_SIZE=0: must be >= 1"},
		{"RankNotInteger", torchrun(map[string]string{"RANK": "abc"}), "RANK=abc: not an integer"},
		{"RankUnset", torchrun(map[string]string{"RANK": ""}), "RANK is not set (WORLD_SIZE=2 is)"},
		{"RankNegative", torchrun(map[string]string{"RANK": "-1"}), "RANK=-1: must be >= 0"},
		{"RankTooHigh", torchrun(map[string]string{"RANK": "2"}), "RANK=2 is not below WORLD_SIZE=2"},
		{"LocalRankTooHigh", torchrun(map[string]string{"LOCAL_RANK": "2"}), "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2"},
		{"LocalRankWithoutLocalWorld", torchrun(map[string]string{"LOCAL_WORLD_SIZE": ""}),
			"LOCAL_RANK=1 needs LOCAL_WORLD_SIZE (unset: 1, one process on this machine)"},
		{"LocalWorldNotInteger", torchrun(map[string]string{"LOCAL_WORLD_SIZE": "2.0"}), "LOCAL_WORLD_SIZE=2.0: not an integer"},
		{"LocalWorldTooBig", torchrun(map[string]string{"LOCAL_WORLD_SIZE": "3", "LOCAL_RANK": "0"}), "LOCAL_WORLD_SIZE=3 is more than WORLD_SIZE=2"},
		{"AddrUnset", torchrun(map[string]string{"MASTER_ADDR": ""}), "MASTER_ADDR is not set (WORLD_SIZE=2 is)"},
		{"PortUnset", torchrun(map[string]string{"MASTER_PORT": ""}), "MASTER_PORT is not set (WORLD_SIZE=2 is)"},
		{"PortNotInteger", torchrun(map[string]string{"MASTER_PORT": "http"}), "MASTER_PORT=http: not an integer"},
		{"PortZero", torchrun(map[string]string{"MASTER_PORT": "0"}), "MASTER_PORT=0: not a port (1..65535)"},
		{"PortTooHigh", torchrun(map[string]string{"MASTER_PORT": "65536"}), "MASTER_PORT=65536: not a port (1..65535)"},
		{"RestartCountUnset", torchrun(map[string]string{"TORCHELASTIC_RESTART_COUNT": ""}),
			"TORCHELASTIC_RESTART_COUNT is not set (TORCHELASTIC_USE_AGENT_STORE=True is)"},
		{"RestartCountNegative", torchrun(map[string]string{"TORCHELASTIC_RESTART_COUNT": "-2"}),
			"TORCHELASTIC_RESTART_COUNT=-2: must be >= 0"},
		{"FirstErrorWins", torchrun(map[string]string{"RANK": "x", "MASTER_PORT": "y"}), "RANK=x: not an integer"},
		{"AddrBeforePort", torchrun(map[string]string{"MASTER_ADDR": "", "MASTER_PORT": ""}), "MASTER_ADDR is not set (WORLD_SIZE=2 is)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := distributed.FromEnv(env(tt.vars))
			assert.Nil(t, m)
			assert.EqualError(t, err, tt.msg)
		})
	}
}
