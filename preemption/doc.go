// Package preemption simulates spot-VM interrupts: seeded interrupt patterns, and a Runner that
// kills and restarts a trainer process on that schedule.
//
// Guarantees:
//
//   - Determinism. A Schedule built from the same Pattern, seed and no-notice share yields the same
//     sequence of Interrupts on every machine and Go version that keeps math/rand/v2's PCG stable.
//     Gaps and notice draws come from two separate PCG streams of the seed, so changing the
//     no-notice share never moves the interrupt times. Nothing reads the global rand.
//   - Machines. A job of N simulated machines (NewJobSchedule, Config.Machines) draws each
//     machine's interrupts from streams of its own (machine 0's are those of a job of one), on
//     the job's uptime clock, and merges them earliest first: with a Poisson pattern the job is
//     interrupted at N times the rate. Each Interrupt names its machine; machines hit at the same
//     instant are one interrupt of the job. With Runner.RanksPerMachine the interrupt goes to that
//     machine's worker processes of the group the child launched; every interrupt restarts the
//     whole job.
//   - Signals. An interrupt with notice sends SIGTERM and, if the child has not exited after the
//     grace period (wall time, 30 s by default as on GCP), SIGKILL. An interrupt without notice
//     sends SIGKILL at once. Gaps count the child's uptime: the next interrupt is armed when a
//     child starts, Interrupt.At is the sum of the gaps drawn so far, and an interrupt whose child
//     exits first is dropped (each start draws the next one).
//   - Time scale. Pattern gaps and the restart delay are spot time; the Runner waits
//     spot/TimeScale of wall time (TimeScale 3600: an hour of spot time per second). The grace
//     period is not scaled: the trainer's emergency checkpoint takes real time. A cancelled
//     context is a real user's Ctrl+C: the Runner forwards SIGTERM and waits the grace period
//     before SIGKILL.
//   - Which exits it caused. The Runner records for each child whether it signalled it. Exit 0
//     ends the run; exit codes.ExitPreempted (75: preempted, whoever gave the notice), a death by
//     a signal the Runner sent, and exit 1 after the Runner interrupted one of the child's
//     machines start the child again after the restart delay; any other code, or a death by a
//     signal the Runner did not send, ends the run with an *ExitError.
//   - Reports. Through Runner.OnEvent, in order, as payloads of package events: ChildStart as
//     each child starts, InterruptSent (kind codes.Notice or codes.Kill; reason codes.Schedule,
//     codes.Grace or codes.Cancel; AtSpotS for scheduled ones), ChildExit (Caused: whether the
//     Runner signalled this child), Restart, and SignalFailed if a signal could not be sent for
//     another reason than the child having exited. A child that exits on its own just as its
//     signal is sent may be reported as caused; its exit code still decides what happens next.
package preemption
