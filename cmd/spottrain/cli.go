package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"spottrain/torch"
)

// commands are the subcommands of spottrain, for the suggestion after a misspelled one.
var commands = []string{"train", "run", "batch", "verify", "analyze", "config", "ckpt", "forecast", "evaluate", "demo", "help", "version"}

// versionLine is what --version and version print: this build's version (the module version the
// go command stamped, else the VCS revision, "+dirty" when the work tree had changes; "(devel)"
// when neither is known), the libtorch it is linked with, and the Go toolchain and platform.
func versionLine() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		switch {
		case bi.Main.Version != "" && bi.Main.Version != "(devel)":
			v = bi.Main.Version
		case rev != "":
			v = rev[:min(len(rev), 12)]
			if dirty {
				v += "+dirty"
			}
		}
	}
	return fmt.Sprintf("spottrain %s, libtorch %s, %s %s/%s", v, torch.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// nearest returns the name of known nearest to name (the first among equals) when it is at most two
// edits away (editDistance), and at most one per two letters of that name (so "rm" is not taken for
// "ls"), else "": the suggestion after a misspelled command.
func nearest(name string, known []string) string {
	best, dist := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < dist && d <= len(k)/2 {
			best, dist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b: the fewest insertions,
// deletions, substitutions and swaps of two adjacent letters that turn one into the other.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
