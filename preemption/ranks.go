package preemption

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// machinePIDs returns the pids of the children of the process parent (a launcher) that are the
// workers of simulated machine m, per workers to a machine: those whose environment holds RANK=r
// for r in [m*per, (m+1)*per), in rank order. A worker not found (not started or not yet exec'd:
// a forked child still has the launcher's environment, without RANK; or gone) is left out.
// It reads Linux's /proc; elsewhere it finds none.
func machinePIDs(parent, m, per int) []int {
	byRank := map[string]int{}
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
				if rank, ok := strings.CutPrefix(kv, "RANK="); ok {
					byRank[rank] = pid
				}
			}
		}
	}
	var pids []int
	for r := m * per; r < (m+1)*per; r++ {
		if pid, ok := byRank[strconv.Itoa(r)]; ok {
			pids = append(pids, pid)
		}
	}
	return pids
}
