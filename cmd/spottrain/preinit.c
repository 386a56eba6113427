// The notice signals are caught from the process's first instructions: see preinit.go.

#include <signal.h>
#include <string.h>
#include <time.h>

#include "preinit.h"

static volatile sig_atomic_t earlySig;
static struct timespec earlyAt;

// noteEarly records the first notice signal; it is async-signal-safe (clock_gettime is).
static void noteEarly(int sig) {
	if (earlySig == 0) {
		clock_gettime(CLOCK_REALTIME, &earlyAt);
		earlySig = sig;
	}
}

// testBinary reports whether the process is a go test binary (named *.test, or given -test.*
// flags), as internal/notices decides it.
static int testBinary(int argc, char **argv) {
	if (argc > 0) {
		size_t n = strlen(argv[0]);
		if (n >= 5 && strcmp(argv[0] + n - 5, ".test") == 0) {
			return 1;
		}
	}
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "-test.", 6) == 0) {
			return 1;
		}
	}
	return 0;
}

// catchEarly installs noteEarly for SIGTERM, SIGINT and SIGHUP, and blocks them, but in a go test
// binary. The Go runtime unblocks them on every thread when it starts (a signal pending by then
// goes to noteEarly). A child begins with the mask of the thread that forks it, which in a Go
// program has them unblocked: only a parent that blocks them on its forking thread, as the group
// launcher does (distributed/sigmask.go), gives a child whose notice sent while its dynamic loader
// runs waits for this handler.
static void catchEarly(int argc, char **argv, char **envp) {
	(void)envp;
	if (testBinary(argc, argv)) {
		return;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = noteEarly;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int earlyNotice(long long *sec, long *nsec) {
	*sec = earlyAt.tv_sec;
	*nsec = earlyAt.tv_nsec;
	return earlySig;
}

// An executable's .preinit_array runs before the initializers of every shared library (libtorch's
// take about 0.5 s on 2 cores), right after the dynamic loader has mapped and relocated them.
__attribute__((section(".preinit_array"), used)) static void (*const preinitCatchEarly)(int, char **, char **) = catchEarly;
