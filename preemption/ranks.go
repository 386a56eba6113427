package preemption

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WorkerRanks returns the pid of each child of the process parent (a launcher) by the rank its
// environment names (RANK=r), read from Linux's /proc. A child forked but not yet exec'd still
// has the launcher's environment, without RANK, and is left out, as is one gone meanwhile;
// elsewhere than on Linux it finds none.
func WorkerRanks(parent int) map[int]int {
	byRank := map[int]int{}
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(doc)) {
			pid, err := strconv.Atoi(field)
			if err != nil {
				continue
			}
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err != nil {
				continue
			}
			for _, kv := range strings.Split(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, "RANK="); ok {
					if rank, err := strconv.Atoi(v); err == nil {
						byRank[rank] = pid
					}
				}
			}
		}
	}
	return byRank
}

// machinePIDs returns the pids of the workers of simulated machine m among the children of
// parent, per workers to a machine: ranks m*per to (m+1)*per-1, in rank order, those found
// (see WorkerRanks).
func machinePIDs(parent, m, per int) []int {
	byRank := WorkerRanks(parent)
	var pids []int
	for r := m * per; r < (m+1)*per; r++ {
		if pid, ok := byRank[r]; ok {
			pids = append(pids, pid)
		}
	}
	return pids
}
