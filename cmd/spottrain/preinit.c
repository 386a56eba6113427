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

// catchEarly installs noteEarly for SIGTERM, SIGINT and SIGHUP.
static void catchEarly(int argc, char **argv, char **envp) {
	(void)argc;
	(void)argv;
	(void)envp;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = noteEarly;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int earlyNotice(long long *sec, long *nsec) {
	*sec = earlyAt.tv_sec;
	*nsec = earlyAt.tv_nsec;
	return earlySig;
}

// An executable's .preinit_array runs before the initializers of every shared library (libtorch's
// take about 0.9 s on 2 cores), right after the dynamic loader has mapped and relocated them.
__attribute__((section(".preinit_array"), used)) static void (*const preinitCatchEarly)(int, char **, char **) = catchEarly;
