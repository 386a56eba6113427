package distributed

import (
	"fmt"
	"math"
	"strconv"
)

// FromEnv reads this process's Member from the variables that torchrun, Kubeflow's PyTorchJob or
// spottrain's own launcher set, through getenv (os.Getenv; an empty value counts as unset). It
// returns nil, nil when WORLD_SIZE is unset: a plain single process, in no group.
//
// RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT are required (torch's env:// wants them too).
// LOCAL_RANK and LOCAL_WORLD_SIZE default to 0 and 1 (a PyTorchJob runs one process per pod and
// sets neither). With TORCHELASTIC_USE_AGENT_STORE=True (exactly, as torch compares it), the
// launcher hosts the store and TORCHELASTIC_RESTART_COUNT is required: it names the key prefix.
// The Timeout of the Member returned is zero: the caller sets it from distributed.timeout.
//
// Every error is one line naming the variable and its value, e.g. "RANK=abc: not an integer".
func FromEnv(getenv func(string) string) (*Member, error) {
	ws := getenv("WORLD_SIZE")
	if ws == "" {
		return nil, nil
	}
	r := envReader{getenv: getenv}
	group := "WORLD_SIZE=" + ws
	m := &Member{World: r.int("WORLD_SIZE", ws, 1)}
	m.Rank = r.required("RANK", group, 0)
	r.below("RANK", m.Rank, "WORLD_SIZE", m.World)
	m.LocalRank = r.optional("LOCAL_RANK", 0, 0)
	m.LocalWorld = r.optional("LOCAL_WORLD_SIZE", 1, 1)
	if r.err == nil && m.LocalRank > 0 && getenv("LOCAL_WORLD_SIZE") == "" {
		r.err = fmt.Errorf("LOCAL_RANK=%d needs LOCAL_WORLD_SIZE (unset: 1, one process on this machine)", m.LocalRank)
	}
	r.below("LOCAL_RANK", m.LocalRank, "LOCAL_WORLD_SIZE", m.LocalWorld)
	if r.err == nil && m.LocalWorld > m.World {
		r.err = fmt.Errorf("LOCAL_WORLD_SIZE=%d is more than WORLD_SIZE=%d", m.LocalWorld, m.World)
	}
	m.MasterAddr = getenv("MASTER_ADDR")
	if r.err == nil && m.MasterAddr == "" {
		r.err = fmt.Errorf("MASTER_ADDR is not set (%s is)", group)
	}
	m.MasterPort = r.required("MASTER_PORT", group, math.MinInt)
	if r.err == nil && (m.MasterPort < 1 || m.MasterPort > 65535) {
		r.err = fmt.Errorf("MASTER_PORT=%d: not a port (1..65535)", m.MasterPort)
	}
	m.AgentStore = getenv("TORCHELASTIC_USE_AGENT_STORE") == "True"
	if m.AgentStore {
		m.Prefix = "/worker/attempt_" + strconv.Itoa(r.required("TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_USE_AGENT_STORE=True", 0))
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// An envReader parses variables and keeps the first error.
type envReader struct {
	getenv func(string) string
	err    error
}

// required parses the variable name, which must be set because the variable setting ("VAR=value")
// is, as an integer >= min.
func (r *envReader) required(name, setting string, min int) int {
	v := r.getenv(name)
	if v == "" {
		if r.err == nil {
			r.err = fmt.Errorf("%s is not set (%s is)", name, setting)
		}
		return 0
	}
	return r.int(name, v, min)
}

// optional parses the variable name as an integer >= min, or returns def when it is unset.
func (r *envReader) optional(name string, def, min int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	return r.int(name, v, min)
}

// int parses v, the value of the variable name, as an integer >= min.
func (r *envReader) int(name, v string, min int) int {
	n, err := strconv.Atoi(v)
	switch {
	case r.err != nil:
	case err != nil:
		r.err = fmt.Errorf("%s=%s: not an integer", name, v)
	case n < min:
		r.err = fmt.Errorf("%s=%s: must be >= %d", name, v, min)
	}
	return n
}

// below wants the variable name (value v) below the variable limName (value lim).
func (r *envReader) below(name string, v int, limName string, lim int) {
	if r.err == nil && v >= lim {
		r.err = fmt.Errorf("%s=%d is not below %s=%d", name, v, limName, lim)
	}
}
