package configs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/configs"
)

// A run dir's config.yaml written before the kind subsections (testdata: the YAML the earlier
// layout saved for these experiments) reads as the same config as the experiment loaded today,
// so such a run resumes, verifies and is analysed like a new one.
func TestReadSavedUpgradesFlatLayout(t *testing.T) {
	for exp, file := range map[string]string{
		"lstm-ondemand":         "saved-flat-lstm.yaml",
		"resnet-small-ondemand": "saved-flat-resnet.yaml",
	} {
		t.Run(exp, func(t *testing.T) {
			want, err := configs.Builtin().Experiment(exp, nil)
			require.NoError(t, err)
			got, err := configs.ReadSaved(filepath.Join("testdata", file))
			require.NoError(t, err)
			wantYAML, err := want.YAML()
			require.NoError(t, err)
			gotYAML, err := got.YAML()
			require.NoError(t, err)
			assert.Equal(t, string(wantYAML), string(gotYAML))
			assert.Equal(t, want.TrainingHash(), got.TrainingHash())
		})
	}
}

// The same flat keys in a config a person writes are errors that name the new place.
func TestFlatLayoutIsOnlyUpgradedWhenSaved(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("testdata", "saved-flat-lstm.yaml"))
	require.NoError(t, err)
	_, err = configs.LoadBytes("mine.yaml", doc, "", nil)
	require.Error(t, err)
	assert.Equal(t, "mine.yaml:12: model.hidden_size: moved to model.lstm.hidden_size", err.Error())
}
