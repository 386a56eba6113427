package configs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHashesIgnoreOtherKindsDefaults: a change of a ResNet default moves the hashes of a ResNet
// experiment that leaves the key at its default, and neither hash of an LSTM experiment; and the
// other way round.
func TestHashesIgnoreOtherKindsDefaults(t *testing.T) {
	load := func(name string) Config {
		c, err := Builtin().Experiment(name, nil)
		require.NoError(t, err)
		return c
	}
	lstm, resnet := load("lstm-ondemand"), load("resnet50-ondemand")
	savedData, savedTrain := resnetDataDefaults, resnetTrainDefaults
	t.Cleanup(func() { resnetDataDefaults, resnetTrainDefaults = savedData, savedTrain })
	resnetDataDefaults.Classes = 20 // resnet50-cifar100 leaves data.resnet.classes at its default
	resnetTrainDefaults.LabelSmoothing = 0.2

	assert.Equal(t, lstm.TrainingHash(), load("lstm-ondemand").TrainingHash())
	assert.Equal(t, lstm.Hash(), load("lstm-ondemand").Hash())
	assert.NotEqual(t, resnet.TrainingHash(), load("resnet50-ondemand").TrainingHash(), "the change took effect")

	resnetDataDefaults, resnetTrainDefaults = savedData, savedTrain
	lstmBase, resnetBase := Default(), DefaultFor(KindResNet)
	savedLSTM := lstmModelDefaults
	t.Cleanup(func() { lstmModelDefaults = savedLSTM })
	lstmModelDefaults.HiddenSize = 32
	assert.Equal(t, resnetBase.TrainingHash(), DefaultFor(KindResNet).TrainingHash())
	assert.Equal(t, resnetBase.Hash(), DefaultFor(KindResNet).Hash())
	assert.NotEqual(t, lstmBase.TrainingHash(), Default().TrainingHash(), "the change took effect")
}
