package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"spottrain/codes"
	"spottrain/configs"
	"spottrain/data/solar"
	"spottrain/distributed"
	"spottrain/preemption"
	"spottrain/torch"
	"spottrain/train"
)

// groupHelp ends train's --help: the group of several processes.
const groupHelp = `
Several processes (data-parallel training on PyTorch's c10d):
  --nproc-per-node N starts N worker processes of this program on this machine (as torchrun
  --standalone does), each with the same flags, and exits with the group's status: 0 when every
  worker is done, 75 when the group stopped (a notice, which reaches every worker, or a lost peer:
  start again to resume), else the lowest rank's failure (1, or 2 for bad input).

  --nnodes N --node-rank R --master-addr HOST --master-port P runs the group on N machines (as
  torchrun's static rendezvous): start the same command on each, with its own --node-rank; node 0
  hosts the rendezvous store on HOST:P (default port 29500), and only node 0 needs the run dir.
  Each machine's launcher exits with its workers' status; a notice on any machine stops them all.

  A process that finds WORLD_SIZE set is a worker of a group that a launcher started: torchrun
  (torchrun --nproc_per_node N --no_python spottrain train ...), Kubeflow's PyTorchJob or this
  program. It reads the variables they set:
    RANK, WORLD_SIZE          this process's rank, and the number of processes (required)
    MASTER_ADDR, MASTER_PORT  where the rendezvous store (c10d's TCPStore) listens (required)
    LOCAL_RANK                the rank among this machine's processes (default 0)
    LOCAL_WORLD_SIZE          the processes on this machine (default 1)
    TORCHELASTIC_USE_AGENT_STORE=True, TORCHELASTIC_RESTART_COUNT
                              the launcher hosts the store (torchrun's agent); its keys are under
                              /worker/attempt_<TORCHELASTIC_RESTART_COUNT>
  A variable that is not as it should be is bad input (exit 2).
`

func runTrain(ctx context.Context, args []string, stdout io.Writer, stop <-chan train.Notice) error {
	fs := newFlagSet("train", "train (--experiment NAME | --config FILE) [--set key=value]... [--nproc-per-node N] [--nnodes N --node-rank R --master-addr HOST --master-port P]", stdout)
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(fs.Output(), groupHelp) }
	cf := addConfigFlags(fs, "train")
	cf.addGroupFlags(fs)
	force := fs.Bool("force", false, "resume the run dir's checkpoints even though the config changed in a way that breaks resume")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	member, err := distributed.FromEnv(os.Getenv)
	if err != nil {
		return &train.InputError{Err: fmt.Errorf("a worker of a group (WORLD_SIZE is set): %w", err)}
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if member == nil && (cfg.Distributed.NProcPerNode > 1 || cfg.Distributed.NNodes > 1) {
		return launchGroup(cfg, args, stdout, stop)
	}
	if member != nil {
		member.Timeout = cfg.Distributed.Timeout
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop = withCloudNotices(ctx, cfg.Preemption.Notice, stop, stdout)
	return trainAndReport(ctx, cfg, stdout, train.Options{Stop: stop, Force: *force, Member: member})
}

// launchGroup starts cfg's distributed.nproc_per_node workers: this program's train with args,
// which see WORLD_SIZE and train as ranks of one group, this machine's part of a group of
// distributed.nnodes machines. It hosts the group's store (on a free port on one machine, on
// distributed.master_port on node 0 of several; the other nodes host none). It forwards the
// signals of stop to the workers (each watches the cloud's notices itself) and returns the
// group's end as the error that exitCode maps to the group's status.
func launchGroup(cfg configs.Config, args []string, stdout io.Writer, stop <-chan train.Notice) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("launch workers: %w", err)
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case n := <-stop:
			sigs <- n.Signal
		case <-done:
		}
	}()
	d := cfg.Distributed
	l := &distributed.Launcher{
		NProc:      d.NProcPerNode,
		NNodes:     d.NNodes,
		NodeRank:   d.NodeRank,
		MasterAddr: d.MasterAddr,
		MasterPort: d.MasterPort,
		Command:    func(int) *exec.Cmd { return exec.Command(self, append([]string{"train"}, args...)...) },
		Listen: func(timeout time.Duration) (distributed.Store, error) {
			if d.NNodes <= 1 {
				s, err := torch.NewStoreServer(timeout)
				if err != nil {
					return nil, err
				}
				return s, nil
			}
			// A port in use is found here first: c10d would also log its failures on stderr.
			ln, err := net.Listen("tcp", ":"+strconv.Itoa(d.MasterPort))
			if err == nil {
				err = ln.Close()
			}
			var s *torch.Store
			if err == nil {
				s, err = torch.NewStoreServerAt(d.MasterPort, timeout)
			}
			if err != nil {
				first, _, _ := strings.Cut(err.Error(), "\n")
				return nil, fmt.Errorf("distributed.master_port %d: node 0 cannot host the store there: %s", d.MasterPort, first)
			}
			return s, nil
		},
		Timeout: d.Timeout,
		Signals: sigs,
		Stdout:  stdout,
		Stderr:  os.Stderr,
	}
	return groupError(l.Run())
}

// groupError returns err, the end of a group, as exitCode reads it: a status of 75 as a
// stoppedGroup, 2 as an input error; other statuses are failures (1).
func groupError(err error) error {
	var ee *distributed.ExitError
	switch {
	case !errors.As(err, &ee):
		return err
	case ee.Code == codes.ExitPreempted:
		return stoppedGroup{ee}
	case ee.Code == codes.ExitBadInput:
		return &train.InputError{Err: ee}
	}
	return err
}

// stoppedGroup is a group that stopped on a notice or a lost peer, to be started again (it
// resumes from the newest committed checkpoint): it is errStopped (exit 75).
type stoppedGroup struct{ *distributed.ExitError }

func (stoppedGroup) Is(target error) bool { return target == errStopped }

// withCloudNotices starts watching for the cloud's preemption notice as source (the config's
// preemption.notice) says, and returns a channel that carries the first notice, the cloud's or
// one of stop's (a signal); the watch ends with ctx. A cloud named in the config whose metadata
// server cannot be reached is one warning on stderr.
func withCloudNotices(ctx context.Context, source string, stop <-chan train.Notice, log io.Writer) <-chan train.Notice {
	if source == preemption.NoticeNone {
		return stop
	}
	cloud := make(chan train.Notice, 1)
	go preemption.WatchNotices(ctx, source,
		func(n preemption.CloudNotice) { cloud <- train.Notice{Signal: n, At: time.Now()} },
		func(msg string) { fmt.Fprintln(log, msg) },
		func(msg string) { fmt.Fprintln(os.Stderr, "spottrain: warning: "+msg) })
	first := make(chan train.Notice, 1)
	go func() {
		select {
		case n := <-stop:
			first <- n
		case n := <-cloud:
			first <- n
		case <-ctx.Done():
		}
	}()
	return first
}

// testHook, when set, changes the options of every training job before it starts. Only a build
// with -tags testhooks sets it (testhooks.go); a normal build leaves it nil.
var testHook func(*train.Options) error

// trainAndReport runs the job and prints its test scores against persistence.
func trainAndReport(ctx context.Context, cfg configs.Config, stdout io.Writer, opt train.Options) error {
	opt.Log, opt.Terminal = stdout, isTerminal(stdout)
	if testHook != nil {
		if err := testHook(&opt); err != nil {
			return err
		}
	}
	sum, err := train.Run(ctx, cfg, opt)
	var pe *train.PreemptedError
	if err != nil && !errors.As(err, &pe) && sum != nil && sum.Result != nil {
		fmt.Fprintf(stdout, "stopped after %d steps\n", sum.Result.Steps)
	}
	if err != nil || opt.Member != nil && opt.Member.Rank > 0 {
		return err // rank 0 reports for the group
	}
	t := sum.Test
	if cfg.Model.Kind == configs.KindResNet {
		fmt.Fprintf(stdout, "\n%s: %d steps in %s; test set (%d images): top-1 %s%%, top-5 %s%%\nrun dir: %s\n",
			sum.Name, sum.Result.Steps, sum.Wall.Round(1e7), sum.Samples[2], score(t, "top1", 100, "%.2f"), score(t, "top5", 100, "%.2f"), sum.RunDir)
		return nil
	}
	fmt.Fprintf(stdout, "\n%s: %d steps in %s; test split (%d windows of %d h):\n", sum.Name, sum.Result.Steps,
		sum.Wall.Round(1e7), sum.Samples[2], cfg.Data.LSTM.HorizonHours)
	printForecastScores(stdout, t, "test split")
	fmt.Fprintf(stdout, "run dir: %s\n", sum.RunDir)
	return nil
}

// printForecastScores prints the LSTM's daylight scores t on the windows of what (e.g. "test
// split") beside the four baselines', with its skill against each.
func printForecastScores(stdout io.Writer, t map[string]float64, what string) {
	fmt.Fprintf(stdout, "daylight scores (sun zenith < 87°, measured hours), %s:\n", what)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "forecast\tMAE kW\tRMSE kW\tLSTM skill\t")
	fmt.Fprintf(tw, "LSTM\t%s\t%s\t\t\n", score(t, "mae_kw", 1, "%.4f"), score(t, "rmse_kw", 1, "%.4f"))
	for _, b := range forecastBaselines {
		name := solar.BaselineNames[b.index]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", b.title, score(t, name+"_mae_kw", 1, "%.4f"),
			score(t, name+"_rmse_kw", 1, "%.4f"), score(t, "skill_"+name, 1, "%+.3f"))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "skill = 1 - RMSE/RMSE_baseline: above 0 the LSTM beats that baseline; nRMSE %s, nMAE %s of capacity\n",
		score(t, "nrmse", 100, "%.2f%%"), score(t, "nmae", 100, "%.2f%%"))
}

// forecastBaselines are the baselines of package solar, strongest first, with their titles.
var forecastBaselines = []struct {
	index int // solar.Baseline*
	title string
}{
	{solar.BaselineCLIPER, "CLIPER"}, {solar.BaselineSmartPersistence, "smart persistence"},
	{solar.BaselineClimatology, "climatology"}, {solar.BaselinePersistence, "persistence (24 h)"},
}

// score formats the metric name of t, times scale, with format; "-" when t lacks it (a score
// undefined on the data, left out with a warning).
func score(t train.Metrics, name string, scale float64, format string) string {
	v, ok := t[name]
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, scale*v)
}
