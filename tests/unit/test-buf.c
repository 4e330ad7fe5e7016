/* test-buf.c - util/buf.h: the growable buffer under every other module.
 *
 * buf.h promises that `data` is NUL-terminated whenever it is non-NULL
 * and that buf_detach() never returns NULL.  Fresh heap memory is made
 * non-zero (M_PERTURB) so that a missing terminator shows. */
#include "util/buf.h"
#include "unit.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static void test_add(void)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "hello");
	CHECK(b.len == 5 && b.cap > 5);
	CHECK_STR(b.data, "hello");
	buf_add(&b, ", \0x", 4);
	CHECK(b.len == 9 && memcmp(b.data, "hello, \0x", 9) == 0 && b.data[9] == '\0');
	buf_addf(&b, "%d-%s", 42, "z");
	CHECK(b.len == 13 && memcmp(b.data + 9, "42-z", 5) == 0);
	buf_add(&b, "", 0);
	CHECK(b.len == 13);
	buf_reset(&b);
	CHECK(b.len == 0 && b.data && b.data[0] == '\0');
	buf_release(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	buf_release(&b);   /* twice is harmless */
}

static void test_grow(void)
{
	struct buf b = BUF_INIT;
	size_t cap;

	/* Growing an empty buffer makes it a valid empty string. */
	buf_grow(&b, 0);
	CHECK(b.data != NULL && b.len == 0);
	CHECK(b.data != NULL && b.data[0] == '\0');
	buf_release(&b);

	buf_grow(&b, 1000);
	CHECK(b.cap >= 1001 && b.len == 0);
	CHECK(b.data != NULL && b.data[0] == '\0');
	cap = b.cap;
	for (int i = 0; i < 1000; i++)
		buf_add(&b, "x", 1);
	CHECK(b.cap == cap);   /* no reallocation after a big enough grow */
	CHECK(b.len == 1000 && b.data[1000] == '\0' && strspn(b.data, "x") == 1000);
	buf_release(&b);

	/* Many small adds stay correct across reallocations. */
	for (int i = 0; i < 10000; i++)
		buf_addf(&b, "%d,", i % 10);
	CHECK(b.len == 20000 && b.data[b.len] == '\0');
	CHECK(memcmp(b.data + 19990, "5,6,7,8,9,", 10) == 0);
	buf_release(&b);
}

static void test_detach(void)
{
	struct buf b = BUF_INIT;
	size_t len = 7;
	char *s;

	s = buf_detach(&b, &len);
	CHECK(s != NULL && len == 0 && s[0] == '\0');
	free(s);

	buf_adds(&b, "abc");
	s = buf_detach(&b, &len);
	CHECK(len == 3);
	CHECK_STR(s, "abc");
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	free(s);

	s = buf_detach(&b, NULL);
	CHECK_STR(s, "");
	free(s);

	/* A grown but unwritten buffer detaches as "". */
	buf_grow(&b, 16);
	s = buf_detach(&b, &len);
	CHECK(len == 0);
	CHECK(s != NULL && s[0] == '\0');
	free(s);
}

int main(void)
{
	mallopt(M_PERTURB, 0x55);
	test_add();
	test_grow();
	test_detach();
	return unit_report("test-buf");
}
