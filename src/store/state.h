/* state.h - the state directory: where one corral installation keeps
 * everything it must not lose (DESIGN.md 6).
 *
 *   <dir>/corral.db, -wal, -shm   the store (store.h), mode 0600
 *   <dir>/secrets.key             32 random bytes, mode 0600: the master
 *                                 secret; every key corral uses is derived
 *                                 from it (crypto_kdf), never the secret itself
 *   <dir>/threads/<env-id>/<thread-id>/   thread homes
 *
 * `corral serve` and the admin verbs (`corral env|key|thread|usage`) open
 * the same directory the same way, so either works with the other running.
 * The first open of an empty directory creates it (0700), the secrets key
 * and the database, whose first migrations create the plans and the
 * environment 'default'.
 *
 * Ownership: a store_state owns its strings, the open store and a copy of
 * the master secret; store_state_close() releases them all and wipes the
 * secret.
 */
#ifndef CORRAL_STORE_STATE_H
#define CORRAL_STORE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/error.h"

#define STORE_STATE_DEFAULT_DIR "./corral-data"
#define STORE_STATE_ENV "CORRAL_STATE_DIR"

/* Sub-keys derived from the master secret with crypto_kdf (context
 * "corral-k"); a number is never reused for another purpose. */
enum store_subkey {
	STORE_SUBKEY_HASH = 1,        /* keys store_open(): API-key and admin-token hashes */
	STORE_SUBKEY_CONNECTORS = 2,  /* reserved: secretbox of connector secrets */
	STORE_SUBKEY_WEBHOOKS = 3,    /* reserved: webhook signatures */
};

struct store_state {
	char *dir;
	char *db_path;
	char *key_path;
	char *threads_dir;
	struct store *store;
	bool created;                /* this open created the database */
	unsigned char master[32];
};

/* $CORRAL_STATE_DIR when set and not empty, else "./corral-data". */
const char *store_state_default_dir(void);

/* Open (creating what is missing) the state directory `dir`.  Refuses a
 * secrets.key that is readable or writable by group or others, that is
 * not a regular file, or that is not exactly 32 bytes, with a sentence
 * saying how to fix it.  On failure nothing needs releasing. */
int store_state_open(struct store_state *s, const char *dir, struct cr_error *err);
void store_state_close(struct store_state *s);

/* 32 bytes for `purpose`, derived from the master secret. */
void store_state_subkey(const struct store_state *s, enum store_subkey purpose,
			unsigned char out[32]);

/* The home of a thread, <dir>/threads/<env-id>/<thread-id> (caller frees),
 * or NULL with err set when thread_id fails store_check_thread_id().
 * Nothing is created. */
char *store_state_thread_home(const struct store_state *s, int64_t env_id, const char *thread_id,
			      struct cr_error *err);

/* Remove a thread's home, or all the homes of an environment (thread_id
 * NULL), with everything in them.  Symbolic links inside are removed, never
 * followed.  A home that does not exist is not an error; *removed (may be
 * NULL) says whether there was one. */
int store_state_remove_home(const struct store_state *s, int64_t env_id, const char *thread_id,
			    bool *removed, struct cr_error *err);

#endif
