package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"spottrain/codes"
)

// FormatVersion is the manifest format this package writes, and the only one it reads.
const FormatVersion = 1

// ManifestName is the name of the manifest file in a checkpoint directory.
const ManifestName = "manifest.json"

// Manifest describes a checkpoint: the position of the run and every payload file. It is
// manifest.json, JSON with the snake_case names of the tags. Callers fill every field but
// FormatVersion and Files, which Pending.Commit fills.
type Manifest struct {
	FormatVersion  int                    `json:"format_version"`
	RunID          string                 `json:"run_id"`
	ConfigHash     string                 `json:"config_hash"` // hex
	Epoch          int                    `json:"epoch"`
	Step           int64                  `json:"step"`  // optimizer steps completed
	Batch          int                    `json:"batch"` // index in the epoch of the next batch to run
	Loss           float64                `json:"loss"`
	Metrics        map[string]float64     `json:"metrics"` // never nil once parsed
	DataSeed       uint64                 `json:"data_seed"`
	ComputeSeconds float64                `json:"compute_seconds"` // across incarnations
	Libtorch       string                 `json:"libtorch"`
	Device         string                 `json:"device"`
	Reason         codes.CheckpointReason `json:"reason"`          // codes.Periodic, codes.Emergency, codes.Final or codes.Milestone
	World          int                    `json:"world,omitempty"` // processes of the group that made it; 0: one
	Time           time.Time              `json:"time"`            // UTC, RFC 3339 with nanoseconds
	Files          []FileEntry            `json:"files"`           // sorted by name; never nil once parsed
}

// FileEntry is one payload file of a checkpoint.
type FileEntry struct {
	Name   string `json:"name"`   // a plain file name, see Pending.Write
	Size   int64  `json:"size"`   // bytes
	SHA256 string `json:"sha256"` // lowercase hex
}

// ParseManifest decodes and checks a manifest strictly: unknown fields, trailing data, a format
// version other than FormatVersion (the error names it), negative positions, a missing or
// unrepresentable time, and invalid, duplicate or malformed file entries are errors. The time is
// returned in UTC; nil metrics and files become empty.
func ParseManifest(data []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("parse manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, errors.New("parse manifest: data after the JSON object")
	}
	if err := m.check(); err != nil {
		return Manifest{}, fmt.Errorf("parse manifest: %w", err)
	}
	m.Time = m.Time.UTC()
	if m.Metrics == nil {
		m.Metrics = map[string]float64{}
	}
	if m.Files == nil {
		m.Files = []FileEntry{}
	}
	return m, nil
}

func (m *Manifest) check() error {
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("unsupported format version %d (this build reads %d)", m.FormatVersion, FormatVersion)
	}
	if m.Step < 0 || m.Epoch < 0 || m.Batch < 0 {
		return fmt.Errorf("negative position: epoch %d, step %d, batch %d", m.Epoch, m.Step, m.Batch)
	}
	if m.Time.IsZero() {
		return errors.New("missing time")
	}
	if y := m.Time.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("time %s out of range", m.Time)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		switch {
		case !validName(f.Name):
			return fmt.Errorf("invalid file name %q", f.Name)
		case seen[f.Name]:
			return fmt.Errorf("file %q listed twice", f.Name)
		case f.Size < 0:
			return fmt.Errorf("file %q: negative size %d", f.Name, f.Size)
		case !isSHA256(f.SHA256):
			return fmt.Errorf("file %q: sha256 %q is not 64 lowercase hex digits", f.Name, f.SHA256)
		}
		seen[f.Name] = true
	}
	return nil
}

// validName reports whether name can be a payload file: a plain file name, not the manifest.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && name != ManifestName &&
		!strings.ContainsAny(name, "/\\\x00")
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// DirName is the name of the directory of the checkpoint at step: step-%08d.
func DirName(step int64) string { return fmt.Sprintf("step-%08d", step) }

// parseDirName returns the step of a checkpoint directory name, exactly as DirName writes it.
func parseDirName(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, "step-")
	if !ok || len(digits) < 8 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	step, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || DirName(step) != name {
		return 0, false
	}
	return step, true
}
