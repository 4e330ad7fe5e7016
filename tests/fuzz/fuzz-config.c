/* fuzz-config.c - the option-value parsers and checks of sandbox/config.h
 * on arbitrary NUL-terminated strings.
 *
 * Each parser is compared with a reference written differently (strtoull
 * and explicit arithmetic), and each check's acceptance is re-derived from
 * its documented rules.  A refusal must carry a message; an acceptance
 * must not. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/config.h"

static void expect(bool cond)
{
	if (!cond)
		abort();
}

/* The result and the error agree. */
static void check_err(int r, struct cr_error *err)
{
	expect(r == 0 || r == -1);
	expect((r == 0) == (err->msg == NULL));
	cr_error_release(err);
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* "D+" or "D+.D{1,3}" in thousandths, by strtoull; -1 on syntax or when
 * above max. */
static int ref_milli(const char *s, uint64_t max, uint64_t *out)
{
	const char *dot = strchr(s, '.');
	size_t wl = dot ? (size_t)(dot - s) : strlen(s);
	size_t fl = dot ? strlen(dot + 1) : 0;
	unsigned long long whole;
	uint64_t frac = 0;

	if (wl == 0 || !all_digits(s, wl))
		return -1;
	if (dot && (fl == 0 || fl > 3 || !all_digits(dot + 1, fl)))
		return -1;
	errno = 0;
	whole = strtoull(s, NULL, 10);
	if (errno == ERANGE || whole > max / 1000)
		return -1;
	for (size_t i = 0; i < 3; i++)
		frac = frac * 10 + (i < fl ? (uint64_t)(dot[1 + i] - '0') : 0);
	*out = whole * 1000 + frac;
	return *out > max ? -1 : 0;
}

static void fuzz_seconds(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	uint32_t ms = 0;
	uint64_t want = 0;
	int r = sandbox_parse_seconds(s, "--timeout", &ms, &err);
	int w = ref_milli(s, SANDBOX_MAX_TIMEOUT_MS, &want);

	expect(r == ((w == 0 && want > 0) ? 0 : -1));
	if (r == 0)
		expect(ms == want && ms >= 1 && ms <= SANDBOX_MAX_TIMEOUT_MS);
	check_err(r, &err);
}

static void fuzz_cpus(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	uint32_t milli = 0;
	uint64_t want = 0;
	int r = sandbox_parse_cpus(s, "--cpus", &milli, &err);
	int w = ref_milli(s, 1024 * 1000, &want);

	expect(r == ((w == 0 && want >= 10) ? 0 : -1));
	if (r == 0)
		expect(milli == want);
	check_err(r, &err);
}

static void fuzz_uint(const char *s, uint64_t min, uint64_t max)
{
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v = 0;
	int r = sandbox_parse_uint(s, "--pids", min, max, &v, &err);
	size_t n = strlen(s);
	bool ok = n > 0 && all_digits(s, n);
	unsigned long long want = 0;

	if (ok) {
		errno = 0;
		want = strtoull(s, NULL, 10);
		ok = errno != ERANGE && want >= min && want <= max;
	}
	expect(r == (ok ? 0 : -1));
	if (r == 0)
		expect(v == want);
	check_err(r, &err);
}

static void fuzz_size(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v = 0;
	int r = sandbox_parse_size(s, "--tmp-size", &v, &err);
	size_t n = strlen(s);
	size_t dl = n;
	unsigned shift = 0;
	bool ok;

	if (n > 0) {
		switch (s[n - 1]) {
		case 'k': case 'K': shift = 10; dl = n - 1; break;
		case 'm': case 'M': shift = 20; dl = n - 1; break;
		case 'g': case 'G': shift = 30; dl = n - 1; break;
		}
	}
	ok = dl > 0 && all_digits(s, dl);
	if (ok) {
		unsigned long long d;
		errno = 0;
		d = strtoull(s, NULL, 10);
		/* Anything that fits a signed 64-bit JSON integer. */
		ok = errno != ERANGE && d <= (INT64_MAX >> shift);
		if (r == 0)
			expect(v == (uint64_t)d << shift);
	}
	expect(r == (ok ? 0 : -1));
	if (r == 0)
		expect(v <= INT64_MAX);
	check_err(r, &err);
}

static void fuzz_language(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	enum sandbox_language l = SANDBOX_LANG_NONE;
	int r = sandbox_parse_language(s, &l, &err);

	if (r == 0)
		expect(l != SANDBOX_LANG_NONE && strcmp(sandbox_language_name(l), s) == 0);
	else
		expect(l == SANDBOX_LANG_NONE);
	check_err(r, &err);
}

static void fuzz_user(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_user_name(s, &err);
	size_t n = strlen(s);
	bool ok = n >= 1 && n <= 32 && (islower((unsigned char)s[0]) || s[0] == '_') &&
		  strcmp(s, "root") != 0 && strcmp(s, "nobody") != 0;

	for (size_t i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
	}
	expect(r == (ok ? 0 : -1));
	check_err(r, &err);
}

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);
	return n >= pl && memcmp(s, prefix, pl) == 0;
}

static bool is_name(const char *s, size_t n, const char *name)
{
	return n == strlen(name) && memcmp(s, name, n) == 0;
}

static void fuzz_env(const char *s)
{
	static const char *const names[] = { "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD",
					     "TMPDIR", "GCONV_PATH", "LOCPATH", "GLIBC_TUNABLES",
					     "BASH_ENV", "ENV", "IFS", "PS4", "SHELLOPTS",
					     "BASHOPTS" };
	static const char *const prefixes[] = { "LD_", "MALLOC_", "BASH_FUNC_", "CORRAL_" };
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_env_assignment(s, &err);
	const char *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : 0;
	bool ok = eq && n >= 1 && n <= 128 && !isdigit((unsigned char)s[0]) &&
		  strlen(eq + 1) <= 128 * 1024;

	for (size_t i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		     c == '_';
	}
	for (size_t i = 0; ok && i < sizeof(names) / sizeof(names[0]); i++)
		ok = !is_name(s, n, names[i]);
	for (size_t i = 0; ok && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		ok = !has_prefix(s, n, prefixes[i]);
	expect(r == (ok ? 0 : -1));
	check_err(r, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Stop at an embedded NUL, as a C string from argv or JSON would. */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	fuzz_seconds(s);
	fuzz_cpus(s);
	fuzz_uint(s, 0, UINT64_MAX);
	fuzz_uint(s, 2, 4194304);
	fuzz_uint(s, SANDBOX_MIN_MEMORY >> 20, 1u << 20);
	fuzz_size(s);
	fuzz_language(s);
	fuzz_user(s);
	fuzz_env(s);
	free(s);
	return 0;
}
