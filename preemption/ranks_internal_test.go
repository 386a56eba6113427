package preemption

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// machinePIDs finds a machine's workers among the children of a process by the RANK of their
// environment, in rank order, and leaves out ranks it does not find.
func TestMachinePIDs(t *testing.T) {
	pids := map[string]int{}
	for _, rank := range []string{"0", "1", "3"} {
		cmd := exec.Command("sleep", "30")
		cmd.Env = []string{"RANK=" + rank}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		pids[rank] = cmd.Process.Pid
	}
	me := os.Getpid()
	assert.Equal(t, []int{pids["0"], pids["1"]}, machinePIDs(me, 0, 2))
	assert.Equal(t, []int{pids["3"]}, machinePIDs(me, 1, 2), "rank 2 is not there")
	assert.Equal(t, []int{pids["1"]}, machinePIDs(me, 1, 1))
	assert.Empty(t, machinePIDs(me, 2, 2))
}
