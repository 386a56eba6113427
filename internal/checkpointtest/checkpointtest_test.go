package checkpointtest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/internal/checkpointtest"
)

func TestSlowFS(t *testing.T) {
	dir := t.TempDir()
	const perWrite = 10 * time.Millisecond
	s, err := checkpoint.Open(dir, checkpoint.Options{Keep: 1, FS: checkpointtest.SlowFS(checkpoint.OSFS{}, perWrite)})
	require.NoError(t, err)
	defer s.Close()
	p, err := s.Begin(1)
	require.NoError(t, err)
	defer p.Cleanup()
	big := make([]byte, 5<<19) // 2.5 MiB: three writes of at most 1 MiB
	for i := range big {
		big[i] = byte(i * 7)
	}
	start := time.Now()
	require.NoError(t, p.Write("model.pt", big))
	assert.GreaterOrEqual(t, time.Since(start), 3*perWrite, "one sleep per chunk")
	c, err := p.Commit(checkpoint.Manifest{Step: 1, Reason: codes.Periodic})
	require.NoError(t, err)

	c, err = checkpoint.Load(c.Dir)
	require.NoError(t, err)
	data, err := c.ReadFile("model.pt")
	require.NoError(t, err)
	assert.True(t, slices.Equal(big, data))
}
