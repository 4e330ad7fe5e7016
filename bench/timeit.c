/* timeit.c - time how long whole commands take to run, precisely.
 *
 *   timeit [-n RUNS] [-w WARMUPS] -- LABEL PROG [ARGS...] [:: LABEL PROG [ARGS...]]...
 *
 * Each command is started with posix_spawn (stdin and stdout on /dev/null,
 * stderr inherited) and timed with CLOCK_MONOTONIC from just before the
 * spawn to the return of waitpid, so the figure is the command's whole
 * wall time (start, run, exit, reap) with no shell in between.  The
 * commands are interleaved: round r runs every command once, starting
 * with command r % k, so drift in machine load (frequency, page cache,
 * other tenants) falls on all of them alike.  Warm-up rounds run first and
 * are not counted.
 *
 * Output, one line per command, in microseconds:
 *   LABEL median P90 min max mean
 * A command that exits non-zero or dies stops the run with exit code 1:
 * a benchmark of a failing command measures nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct cmd {
	const char *label;
	char **argv;
	uint64_t *ns;  /* one sample per counted run */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: timeit [-n RUNS] [-w WARMUPS] -- LABEL PROG [ARGS...] [:: LABEL PROG [ARGS...]]...\n");
	exit(2);
}

static long parse_count(const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > 1000000) {
		fprintf(stderr, "timeit: '%s' is not a count >= %ld\n", s, min);
		exit(2);
	}
	return v;
}

/* Run one command to completion; returns its wall time in ns. */
static uint64_t run_once(const struct cmd *c, const posix_spawn_file_actions_t *fa)
{
	uint64_t t0, t1;
	pid_t pid;
	int st, e;

	t0 = now_ns();
	e = posix_spawnp(&pid, c->argv[0], fa, NULL, c->argv, environ);
	if (e != 0) {
		fprintf(stderr, "timeit: cannot start '%s': %s\n", c->argv[0], strerror(e));
		exit(1);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			perror("timeit: waitpid");
			exit(1);
		}
	}
	t1 = now_ns();
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (WIFSIGNALED(st))
			fprintf(stderr, "timeit: %s (%s) died of signal %d\n", c->label, c->argv[0],
				WTERMSIG(st));
		else
			fprintf(stderr, "timeit: %s (%s) exited with %d\n", c->label, c->argv[0],
				WEXITSTATUS(st));
		exit(1);
	}
	return t1 - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, p in (0, 100]. */
static uint64_t percentile(const uint64_t *s, long n, double p)
{
	long rank = (long)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return s[rank - 1];
}

static double median(const uint64_t *s, long n)
{
	return n % 2 ? (double)s[n / 2] : ((double)s[n / 2 - 1] + (double)s[n / 2]) / 2.0;
}

int main(int argc, char **argv)
{
	long runs = 200, warmups = 20;
	struct cmd *cmds;
	size_t k = 0;
	posix_spawn_file_actions_t fa;
	int opt;

	while ((opt = getopt(argc, argv, "+n:w:h")) != -1) {
		switch (opt) {
		case 'n': runs = parse_count(optarg, 1); break;
		case 'w': warmups = parse_count(optarg, 0); break;
		default: usage();
		}
	}
	if (optind >= argc)
		usage();

	/* Split the rest at "::" into LABEL PROG ARGS... groups. */
	cmds = calloc((size_t)argc, sizeof(*cmds));
	if (cmds == NULL)
		return 1;
	for (int i = optind; i < argc;) {
		int j = i;
		while (j < argc && strcmp(argv[j], "::") != 0)
			j++;
		if (j - i < 2)
			usage();
		cmds[k].label = argv[i];
		cmds[k].argv = &argv[i + 1];
		cmds[k].ns = calloc((size_t)runs, sizeof(uint64_t));
		if (cmds[k].ns == NULL)
			return 1;
		if (j < argc)
			argv[j] = NULL;  /* terminates this command's argv */
		k++;
		i = j + 1;
	}

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);

	for (long r = 0; r < warmups + runs; r++) {
		for (size_t i = 0; i < k; i++) {
			struct cmd *c = &cmds[((size_t)r + i) % k];
			uint64_t t = run_once(c, &fa);
			if (r >= warmups)
				c->ns[r - warmups] = t;
		}
	}

	for (size_t i = 0; i < k; i++) {
		struct cmd *c = &cmds[i];
		double sum = 0;
		qsort(c->ns, (size_t)runs, sizeof(uint64_t), cmp_u64);
		for (long r = 0; r < runs; r++)
			sum += (double)c->ns[r];
		printf("%s %.1f %.1f %.1f %.1f %.1f\n", c->label, median(c->ns, runs) / 1e3,
		       (double)percentile(c->ns, runs, 90) / 1e3, (double)c->ns[0] / 1e3,
		       (double)c->ns[runs - 1] / 1e3, sum / (double)runs / 1e3);
	}
	posix_spawn_file_actions_destroy(&fa);
	return 0;
}
