// earlyNotice returns the first of SIGTERM, SIGINT and SIGHUP that came before the Go runtime
// started (0: none), and when (CLOCK_REALTIME).
int earlyNotice(long long *sec, long *nsec);
