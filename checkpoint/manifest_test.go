package checkpoint_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
)

const validManifest = `{
  "format_version": 1,
  "run_id": "solar-lstm-1",
  "config_hash": "9f86d081884c7d65",
  "epoch": 3,
  "step": 1234,
  "batch": 17,
  "loss": 0.125,
  "metrics": {"val_loss": 0.25},
  "data_seed": 18446744073709551615,
  "compute_seconds": 3600.5,
  "libtorch": "1.13.1",
  "device": "cuda:0",
  "reason": "emergency",
  "time": "2025-11-24T21:42:07.5+01:00",
  "files": [{"name": "model.pt", "size": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]
}`

func TestParseManifest(t *testing.T) {
	m, err := checkpoint.ParseManifest([]byte(validManifest))
	require.NoError(t, err)
	assert.Equal(t, checkpoint.Manifest{
		FormatVersion: 1, RunID: "solar-lstm-1", ConfigHash: "9f86d081884c7d65", Epoch: 3, Step: 1234, Batch: 17,
		Loss: 0.125, Metrics: map[string]float64{"val_loss": 0.25}, DataSeed: 18446744073709551615,
		ComputeSeconds: 3600.5, Libtorch: "1.13.1", Device: "cuda:0", Reason: codes.Emergency,
		Time:  time.Date(2025, 11, 24, 20, 42, 7, 500_000_000, time.UTC),
		Files: []checkpoint.FileEntry{{Name: "model.pt", Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}},
	}, m)

	m, err = checkpoint.ParseManifest([]byte(strings.Replace(strings.Replace(validManifest,
		`{"val_loss": 0.25}`, "null", 1), `[{"name": "model.pt", "size": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]`, "null", 1)))
	require.NoError(t, err)
	assert.NotNil(t, m.Metrics, "null metrics become empty")
	assert.NotNil(t, m.Files, "null files become empty")
}

func TestParseManifestRejects(t *testing.T) {
	edit := func(old, new string) []byte {
		if !strings.Contains(validManifest, old) {
			panic(old)
		}
		return []byte(strings.Replace(validManifest, old, new, 1))
	}
	sha := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"Empty", nil, "EOF"},
		{"NotObject", []byte(`[1]`), "cannot unmarshal array"},
		{"Null", []byte(`null`), "unsupported format version 0"},
		{"MissingVersion", edit(`"format_version": 1,`, ""), "unsupported format version 0 (this build reads 1)"},
		{"FutureVersion", edit(`"format_version": 1`, `"format_version": 2`), "unsupported format version 2 (this build reads 1)"},
		{"UnknownField", edit(`"epoch": 3`, `"epoch": 3, "epochs": 4`), `unknown field "epochs"`},
		{"Trailing", append([]byte(validManifest), " {}"...), "data after the JSON object"},
		{"TrailingGarbage", append([]byte(validManifest), "x"...), "data after the JSON object"},
		{"WrongType", edit(`"step": 1234`, `"step": "1234"`), "cannot unmarshal string"},
		{"NegativeStep", edit(`"step": 1234`, `"step": -1`), "negative position: epoch 3, step -1, batch 17"},
		{"NegativeBatch", edit(`"batch": 17`, `"batch": -17`), "negative position"},
		{"MissingTime", edit(`"time": "2025-11-24T21:42:07.5+01:00",`, ""), "missing time"},
		{"BadTime", edit(`2025-11-24T21:42:07.5+01:00`, `yesterday`), "cannot parse"},
		{"TimeOutOfRange", edit(`2025-11-24T21:42:07.5+01:00`, `0000-01-01T00:00:00+01:00`), "out of range"},
		{"SeedNegative", edit(`18446744073709551615`, `-1`), "cannot unmarshal number -1"},
		{"FileSlash", edit(`"name": "model.pt"`, `"name": "../model.pt"`), `invalid file name "../model.pt"`},
		{"FileManifest", edit(`"name": "model.pt"`, `"name": "manifest.json"`), `invalid file name "manifest.json"`},
		{"FileNegativeSize", edit(`"size": 3`, `"size": -3`), `file "model.pt": negative size -3`},
		{"FileBadSHA", edit(sha, strings.ToUpper(sha)), `file "model.pt": sha256`},
		{"FileShortSHA", edit(sha, sha[:10]), `file "model.pt": sha256`},
		{"FileTwice", edit(`"files": [`, `"files": [{"name": "model.pt", "size": 1, "sha256": "`+sha+`"}, `), `file "model.pt" listed twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkpoint.ParseManifest(tc.data)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "parse manifest: "), err.Error())
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestDirName(t *testing.T) {
	assert.Equal(t, "step-00000000", checkpoint.DirName(0))
	assert.Equal(t, "step-00001234", checkpoint.DirName(1234))
	assert.Equal(t, "step-1234567890", checkpoint.DirName(1234567890))
}

// FuzzParseManifest: ParseManifest never panics, and what it accepts re-marshals to JSON that
// it parses to the same value.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"format_version": 1, "time": "2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"format_version": 1, "time": "9999-12-31T23:59:59.999999999-01:00", "metrics": {"a": 1e308}}`))
	f.Add([]byte(`{"format_version": 2}`))
	f.Add([]byte(`{"format_version": 1, "files": [{"name": "a", "size": 0, "sha256": ""}]}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := checkpoint.ParseManifest(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(m)
		require.NoError(t, err)
		again, err := checkpoint.ParseManifest(out)
		require.NoError(t, err, string(out))
		require.Equal(t, m, again)
	})
}
