package configs

import (
	"fmt"
	"strings"
)

// Error is a problem with a configuration: every loading and validation error is one.
type Error struct {
	File string // the file or document name, or "--set key=value"; "" when unknown
	Line int    // 1-based; 0 when there is no line (a flag, a file-level problem)
	Key  string // dotted key, e.g. "train.epochs"; "" for a document-level problem
	Msg  string
}

// Error formats e on one line: "cfg.yaml:12: train.epochs: must be >= 1 (got 0)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
