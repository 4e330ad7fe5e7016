/* state.c - the state directory (see state.h). */
#define _GNU_SOURCE
#include "store/state.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KDF_CONTEXT "corral-k"
/* Deeper trees than this are refused rather than exhaust descriptors. */
#define MAX_TREE_DEPTH 512

const char *store_state_default_dir(void)
{
	const char *d = getenv(STORE_STATE_ENV);

	return d && *d ? d : STORE_STATE_DEFAULT_DIR;
}

/* mkdir -p: missing parents 0755, the last component `mode`. */
static int make_dir(const char *dir, mode_t mode, struct cr_error *err)
{
	if (mkdir(dir, mode) == 0 || errno == EEXIST)
		goto check;
	if (errno != ENOENT)
		return cr_error_set(err, errno, "cannot create directory '%s'", dir);
	{
		cleanup_free char *path = xstrdup(dir);
		for (char *p = path + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				return cr_error_set(err, errno, "cannot create directory '%s'", path);
			*p = '/';
		}
	}
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return cr_error_set(err, errno, "cannot create directory '%s'", dir);
check:;
	struct stat st;
	if (stat(dir, &st) < 0)
		return cr_error_set(err, errno, "cannot stat '%s'", dir);
	if (!S_ISDIR(st.st_mode))
		return cr_error_set(err, 0, "'%s' is not a directory", dir);
	return 0;
}

/* Write a new secret to a temporary file and link it into place: link()
 * never replaces, so two processes creating it at once agree on one. */
static int create_secret(const char *dir, const char *path, struct cr_error *err)
{
	cleanup_free char *tmp = xasprintf("%s/.secrets.key.%d.tmp", dir, (int)getpid());
	unsigned char key[32];
	int fd, r = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cr_error_set(err, errno, "cannot create '%s'", tmp);
	randombytes_buf(key, sizeof(key));
	if (fchmod(fd, 0600) < 0 || write_all(fd, key, sizeof(key)) < 0 || fsync(fd) < 0)
		r = cr_error_set(err, errno, "cannot write '%s'", tmp);
	sodium_memzero(key, sizeof(key));
	close(fd);
	if (r == 0 && link(tmp, path) < 0 && errno != EEXIST)
		r = cr_error_set(err, errno, "cannot create '%s'", path);
	unlink(tmp);
	return r;
}

static int load_secret(const char *dir, const char *path, unsigned char out[32],
		       struct cr_error *err)
{
	cleanup_close int fd = -1;
	struct stat st;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0 && errno == ENOENT) {
		if (create_secret(dir, path, err) < 0)
			return -1;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	}
	if (fd < 0)
		return cr_error_set(err, errno, "cannot open secrets key '%s'", path);
	if (fstat(fd, &st) < 0)
		return cr_error_set(err, errno, "cannot stat secrets key '%s'", path);
	if (!S_ISREG(st.st_mode))
		return cr_error_set(err, 0, "secrets key '%s' is not a regular file", path);
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))
		return cr_error_set(err, 0,
				    "secrets key '%s' is readable or writable by group or others "
				    "(mode %04o); it must be private to its owner: run 'chmod 600 %s'",
				    path, (unsigned)(st.st_mode & 07777), path);
	if (st.st_size != 32)
		return cr_error_set(err, 0, "secrets key '%s' holds %lld bytes, not 32", path,
				    (long long)st.st_size);
	n = read_noeintr(fd, out, 32);
	if (n != 32)
		return cr_error_set(err, n < 0 ? errno : 0, "cannot read secrets key '%s'", path);
	return 0;
}

void store_state_subkey(const struct store_state *s, enum store_subkey purpose,
			unsigned char out[32])
{
	crypto_kdf_derive_from_key(out, 32, (uint64_t)purpose, KDF_CONTEXT, s->master);
}

int store_state_open(struct store_state *s, const char *dir, struct cr_error *err)
{
	unsigned char hash_key[32];

	memset(s, 0, sizeof(*s));
	if (dir == NULL || *dir == '\0')
		return cr_error_set(err, 0, "the state directory is empty");
	if (sodium_init() < 0)
		return cr_error_set(err, 0, "cannot initialise libsodium");
	s->dir = xstrdup(dir);
	s->db_path = xasprintf("%s/corral.db", dir);
	s->key_path = xasprintf("%s/secrets.key", dir);
	s->threads_dir = xasprintf("%s/threads", dir);
	if (make_dir(dir, 0700, err) < 0 || load_secret(dir, s->key_path, s->master, err) < 0 ||
	    make_dir(s->threads_dir, 0700, err) < 0)
		goto fail;
	s->created = access(s->db_path, F_OK) < 0;
	store_state_subkey(s, STORE_SUBKEY_HASH, hash_key);
	s->store = store_open(s->db_path, hash_key, err);
	sodium_memzero(hash_key, sizeof(hash_key));
	if (s->store == NULL)
		goto fail;
	return 0;
fail:
	cr_error_wrap(err, "state directory '%s'", dir);
	store_state_close(s);
	return -1;
}

void store_state_close(struct store_state *s)
{
	store_close(s->store);
	free(s->dir);
	free(s->db_path);
	free(s->key_path);
	free(s->threads_dir);
	sodium_memzero(s->master, sizeof(s->master));
	memset(s, 0, sizeof(*s));
}

char *store_state_thread_home(const struct store_state *s, int64_t env_id, const char *thread_id,
			      struct cr_error *err)
{
	if (store_check_thread_id(thread_id, err) < 0)
		return NULL;
	return xasprintf("%s/%lld/%s", s->threads_dir, (long long)env_id, thread_id);
}

/* Remove `name` in directory `parent` and everything below it, through
 * descriptors only (O_NOFOLLOW), so a symbolic link a sandbox left in its
 * home can never send the removal elsewhere. */
static int remove_at(int parent, const char *name, const char *top, int depth,
		     struct cr_error *err)
{
	struct dirent *e;
	DIR *d;
	int fd;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return cr_error_set(err, errno, "cannot remove '%s' in '%s'", name, top);
	if (depth > MAX_TREE_DEPTH)
		return cr_error_set(err, 0, "'%s' is nested more than %d directories deep", top,
				    MAX_TREE_DEPTH);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cr_error_set(err, errno, "cannot open '%s' in '%s'", name, top);
	d = fdopendir(fd);
	if (d == NULL) {
		close_keep_errno(fd);
		return cr_error_set(err, errno, "cannot read '%s' in '%s'", name, top);
	}
	while ((errno = 0, e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (remove_at(dirfd(d), e->d_name, top, depth + 1, err) < 0) {
			closedir(d);
			return -1;
		}
	}
	if (errno != 0) {
		int saved = errno;
		closedir(d);
		return cr_error_set(err, saved, "cannot read '%s' in '%s'", name, top);
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return cr_error_set(err, errno, "cannot remove '%s' in '%s'", name, top);
	return 0;
}

int store_state_remove_home(const struct store_state *s, int64_t env_id, const char *thread_id,
			    bool *removed, struct cr_error *err)
{
	cleanup_free char *parent = NULL;
	cleanup_close int fd = -1;
	struct stat st;
	const char *name;
	char idbuf[32];

	if (removed)
		*removed = false;
	if (thread_id) {
		if (store_check_thread_id(thread_id, err) < 0)
			return -1;
		parent = xasprintf("%s/%lld", s->threads_dir, (long long)env_id);
		name = thread_id;
	} else {
		parent = xstrdup(s->threads_dir);
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)env_id);
		name = idbuf;
	}
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return cr_error_set(err, errno, "cannot open '%s'", parent);
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return cr_error_set(err, errno, "cannot stat '%s/%s'", parent, name);
	}
	cleanup_free char *top = xasprintf("%s/%s", parent, name);
	if (remove_at(fd, name, top, 0, err) < 0)
		return -1;
	if (removed)
		*removed = true;
	return 0;
}
