/* test-cgroup.c - the pure path logic of sandbox/cgroup.h.
 *
 * cgroup_parse_self() reads /proc/self/cgroup as the kernel writes it on
 * pure v2 hosts, hybrid (systemd) hosts and old v1-only hosts, and in
 * containers; cgroup_join() must never let a listed path climb out of the
 * mount. */
#include "sandbox/cgroup.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* Parse and compare; `want` NULL means "not found". */
static int parse_is(const char *text, const char *ctrl, const char *want)
{
	char *got = cgroup_parse_self(text, ctrl);
	int ok = want ? got != NULL && strcmp(got, want) == 0 : got == NULL;
	if (!ok)
		fprintf(stderr, "  parse '%s' in %.60s...: got '%s', want '%s'\n", ctrl, text,
			got ? got : "(null)", want ? want : "(null)");
	free(got);
	return ok;
}

static const char pure_v2[] =
	"0::/user.slice/user-1000.slice/user@1000.service/app.slice/corral.service\n";

/* A systemd host on the hybrid layout (Ubuntu 20.04, Debian 10). */
static const char hybrid[] =
	"12:hugetlb:/\n"
	"11:pids:/system.slice/corral.service\n"
	"10:cpuset:/\n"
	"9:devices:/system.slice/corral.service\n"
	"8:blkio:/system.slice\n"
	"7:rdma:/\n"
	"6:freezer:/\n"
	"5:net_cls,net_prio:/\n"
	"4:memory:/process_api/abc\n"
	"3:perf_event:/\n"
	"2:cpu,cpuacct:/system.slice/corral.service\n"
	"1:name=systemd:/system.slice/corral.service\n"
	"0::/system.slice/corral.service\n";

/* A v1-only host with no unified line at all (CentOS 7). */
static const char v1_only[] =
	"11:cpuacct,cpu:/x\n"
	"10:memory:/docker/0123456789abcdef\n"
	"9:pids:/docker/0123456789abcdef\n"
	"1:name=systemd:/docker/0123456789abcdef";   /* no final newline */

static void test_parse_v2(void)
{
	CHECK(parse_is(pure_v2, "", "/user.slice/user-1000.slice/user@1000.service/app.slice/corral.service"));
	CHECK(parse_is(pure_v2, "memory", NULL));
	CHECK(parse_is(pure_v2, "cpu", NULL));
	/* Inside a container with a cgroup namespace. */
	CHECK(parse_is("0::/\n", "", "/"));
	CHECK(parse_is("0::/", "", "/"));
	/* No trailing newline, path with colons and spaces kept whole. */
	CHECK(parse_is("0::/a:b/c d", "", "/a:b/c d"));
	/* Outside the namespace root the kernel prints ".." components: the
	 * parser returns them as they are; cgroup_join refuses them. */
	CHECK(parse_is("0::/../../sibling\n", "", "/../../sibling"));
	/* An empty path is returned as "" rather than NULL. */
	CHECK(parse_is("0::\n", "", ""));
	/* A deleted cgroup. */
	CHECK(parse_is("0::/gone (deleted)\n", "", "/gone (deleted)"));
}

static void test_parse_hybrid(void)
{
	CHECK(parse_is(hybrid, "memory", "/process_api/abc"));
	CHECK(parse_is(hybrid, "pids", "/system.slice/corral.service"));
	/* Combined controllers are matched per name, in either order. */
	CHECK(parse_is(hybrid, "cpu", "/system.slice/corral.service"));
	CHECK(parse_is(hybrid, "cpuacct", "/system.slice/corral.service"));
	CHECK(parse_is(hybrid, "net_cls", "/"));
	CHECK(parse_is(hybrid, "net_prio", "/"));
	CHECK(parse_is(hybrid, "name=systemd", "/system.slice/corral.service"));
	CHECK(parse_is(hybrid, "", "/system.slice/corral.service"));
	CHECK(parse_is(hybrid, "blkio", "/system.slice"));
	CHECK(parse_is(hybrid, "hugetlb", "/"));
	/* Prefixes and suffixes of a listed controller are not it. */
	CHECK(parse_is(hybrid, "cp", NULL));
	CHECK(parse_is(hybrid, "cpuac", NULL));
	CHECK(parse_is(hybrid, "mem", NULL));
	CHECK(parse_is(hybrid, "memoryx", NULL));
	CHECK(parse_is(hybrid, "net", NULL));
	CHECK(parse_is(hybrid, "systemd", NULL));
	CHECK(parse_is(hybrid, "name", NULL));
	CHECK(parse_is(hybrid, "misc", NULL));
	CHECK(parse_is(hybrid, "cpu,cpuacct", NULL));

	CHECK(parse_is("1:cpu,cpuacct:/x\n", "cpu", "/x"));
	CHECK(parse_is("1:cpu,cpuacct:/x\n", "cpuacct", "/x"));
	CHECK(parse_is("1:cpuacct,cpu:/x\n", "cpu", "/x"));

	CHECK(parse_is(v1_only, "cpu", "/x"));
	CHECK(parse_is(v1_only, "cpuacct", "/x"));
	CHECK(parse_is(v1_only, "memory", "/docker/0123456789abcdef"));
	CHECK(parse_is(v1_only, "name=systemd", "/docker/0123456789abcdef"));
	/* No "0::" line: v2 is not in use. */
	CHECK(parse_is(v1_only, "", NULL));
}

static void test_parse_malformed(void)
{
	CHECK(parse_is("", "", NULL));
	CHECK(parse_is("", "memory", NULL));
	CHECK(parse_is("\n\n\n", "", NULL));
	CHECK(parse_is("garbage\n", "", NULL));
	CHECK(parse_is("garbage\n", "memory", NULL));
	CHECK(parse_is("4:memory\n", "memory", NULL));   /* one colon only */
	CHECK(parse_is("0:\n", "", NULL));
	CHECK(parse_is(":::\n", "", NULL));
	CHECK(parse_is("::/x\n", "", NULL));   /* no hierarchy id */
	CHECK(parse_is("00::/x\n", "", NULL));
	CHECK(parse_is("1::/x\n", "", NULL));  /* only id 0 is the unified line */
	CHECK(parse_is("0:memory:/x\n", "", NULL));
	CHECK(parse_is("4::/x\n", "memory", NULL));
	CHECK(parse_is("4:,,:/x\n", "memory", NULL));
	CHECK(parse_is("4:memory,:/x\n", "memory", "/x"));
	CHECK(parse_is("4:,memory:/x\n", "memory", "/x"));
	/* Malformed lines before a good one are skipped, not fatal. */
	CHECK(parse_is("junk\n4:memory\n\n0::/good\n", "", "/good"));
	CHECK(parse_is("junk\n:\n4:memory:/m\n", "memory", "/m"));
	/* The first matching line wins. */
	CHECK(parse_is("4:memory:/first\n5:memory:/second\n", "memory", "/first"));
	/* The match is on the controller field, not the path. */
	CHECK(parse_is("4:pids:/memory\n", "memory", NULL));
	/* A colon in the path does not split it. */
	CHECK(parse_is("4:memory:/a:b:c\n", "memory", "/a:b:c"));
	/* The path ends at the newline. */
	CHECK(parse_is("4:memory:/a\n5:pids:/b\n", "memory", "/a"));
	/* Windows line ends are not the kernel's: the \r stays in the path. */
	CHECK(parse_is("0::/x\r\n", "", "/x\r"));
}

static int join_is(const char *mount, const char *path, const char *leaf, const char *want)
{
	char *got = cgroup_join(mount, path, leaf);
	int ok = want ? got != NULL && strcmp(got, want) == 0 : got == NULL;
	if (!ok)
		fprintf(stderr, "  join('%s', '%s', %s): got '%s', want '%s'\n", mount, path,
			leaf ? leaf : "NULL", got ? got : "(null)", want ? want : "(null)");
	free(got);
	return ok;
}

static void test_join(void)
{
	const char *m = "/sys/fs/cgroup";

	CHECK(join_is(m, "/", NULL, "/sys/fs/cgroup"));
	CHECK(join_is(m, "", NULL, "/sys/fs/cgroup"));
	CHECK(join_is(m, "/", "corral", "/sys/fs/cgroup/corral"));
	CHECK(join_is(m, "/system.slice/corral.service", NULL,
		      "/sys/fs/cgroup/system.slice/corral.service"));
	CHECK(join_is(m, "/system.slice/corral.service", "corral",
		      "/sys/fs/cgroup/system.slice/corral.service/corral"));
	CHECK(join_is("/sys/fs/cgroup/memory", "/process_api/abc", "corral",
		      "/sys/fs/cgroup/memory/process_api/abc/corral"));
	/* Relative paths and duplicate or trailing slashes are normalised. */
	CHECK(join_is(m, "a/b", NULL, "/sys/fs/cgroup/a/b"));
	CHECK(join_is(m, "//a///b//", NULL, "/sys/fs/cgroup/a/b"));
	CHECK(join_is(m, "/a/", "leaf", "/sys/fs/cgroup/a/leaf"));
	CHECK(join_is(m, "////", NULL, "/sys/fs/cgroup"));
	/* Names that merely contain dots are names. */
	CHECK(join_is(m, "/...", NULL, "/sys/fs/cgroup/..."));
	CHECK(join_is(m, "/..a/a..", NULL, "/sys/fs/cgroup/..a/a.."));
	CHECK(join_is(m, "/.hidden", NULL, "/sys/fs/cgroup/.hidden"));
	CHECK(join_is(m, "/a.b/user@1000.service", NULL, "/sys/fs/cgroup/a.b/user@1000.service"));
	CHECK(join_is(m, "/gone (deleted)", NULL, "/sys/fs/cgroup/gone (deleted)"));

	/* ".." and "." anywhere are refused. */
	CHECK(join_is(m, "..", NULL, NULL));
	CHECK(join_is(m, "/..", NULL, NULL));
	CHECK(join_is(m, "/../../etc", NULL, NULL));
	CHECK(join_is(m, "/a/../b", NULL, NULL));
	CHECK(join_is(m, "/a/..", NULL, NULL));
	CHECK(join_is(m, "/a/../", "corral", NULL));
	CHECK(join_is(m, "/a//..//b", NULL, NULL));
	CHECK(join_is(m, ".", NULL, NULL));
	CHECK(join_is(m, "/.", NULL, NULL));
	CHECK(join_is(m, "/a/./b", NULL, NULL));
	CHECK(join_is(m, "/a/.", NULL, NULL));
	CHECK(join_is(m, "./a", NULL, NULL));
}

int main(void)
{
	test_parse_v2();
	test_parse_hybrid();
	test_parse_malformed();
	test_join();
	return unit_report("test-cgroup");
}
