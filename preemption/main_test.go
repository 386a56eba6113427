package preemption_test

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"spottrain/codes"
)

// TestMain doubles as a fake trainer when the test binary is re-executed with
// PREEMPTION_TEST_CHILD set (see fakeTrainer).
func TestMain(m *testing.M) {
	if mode := os.Getenv("PREEMPTION_TEST_CHILD"); mode != "" {
		os.Exit(fakeTrainer(mode, os.Getenv("PREEMPTION_TEST_DIR")))
	}
	os.Exit(m.Run())
}

// fakeTrainer keeps its progress in dir/progress: each start does one unit of work and saves it;
// it exits 0 once progress reaches PREEMPTION_TEST_TARGET, else prints "ready" and waits for a
// notice. Modes:
//
//	trainer: on SIGTERM append "term" to dir/markers and exit 75 (an emergency checkpoint).
//	ignore:  on SIGTERM print "ignoring" and keep waiting (only SIGKILL stops it).
//	fail:    exit 3 at once.
//	selfkill: die by a SIGKILL it sends itself.
//
// Any child still waiting after 20 s exits 1, so none outlives a broken test.
func fakeTrainer(mode, dir string) int {
	switch mode {
	case "fail":
		return 3
	case "selfkill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	target, err := strconv.Atoi(os.Getenv("PREEMPTION_TEST_TARGET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake trainer:", err)
		return 1
	}
	progress := 0
	if b, err := os.ReadFile(filepath.Join(dir, "progress")); err == nil {
		progress, _ = strconv.Atoi(string(b))
	}
	progress++
	if err := os.WriteFile(filepath.Join(dir, "progress"), []byte(strconv.Itoa(progress)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fake trainer:", err)
		return 1
	}
	if progress >= target {
		return 0
	}
	fmt.Println("ready")
	timeout := time.After(20 * time.Second)
	for {
		select {
		case <-term:
			if mode == "ignore" {
				fmt.Println("ignoring")
				continue
			}
			f, err := os.OpenFile(filepath.Join(dir, "markers"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return 1
			}
			fmt.Fprintln(f, "term")
			if f.Close() != nil {
				return 1
			}
			return codes.ExitPreempted
		case <-timeout:
			return 1
		}
	}
}
