/* connector.h - connectors: credentials an operator stores once, attaches
 * to environments, and corral hands to every execution of those
 * environments (DESIGN.md 5).
 *
 * Types and what an execution receives in inject mode (the default):
 *
 *   anthropic  secret api_key; setting base_url (optional)
 *              ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL when base_url is set
 *   github     secret token; settings base_url (default https://github.com/,
 *              always ending in '/'), api_host (optional, kept for the
 *              broker)
 *              GH_TOKEN, GITHUB_TOKEN; when the base URL's host is not
 *              github.com also GH_HOST and GH_ENTERPRISE_TOKEN (what gh
 *              reads for GitHub Enterprise); and the file /etc/gitconfig:
 *                  [url "https://x-access-token:TOKEN@github.com/"]
 *                  	insteadOf = https://github.com/
 *              (the token percent-encoded, the base URL as configured).
 *              The base URL is the sandbox's GitHub: when it is another
 *              host, a second line "insteadOf = https://github.com/" sends
 *              github.com URLs there too, so https://github.com/org/repo
 *              clones from GitHub Enterprise (or a test server) unchanged.
 *   postgres   secret url (postgres:// or postgresql://), or with the
 *              setting host a secret password and the settings port
 *              (default 5432), user (required), database (optional)
 *              DATABASE_URL (the URL, or one built from the settings),
 *              PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (each when
 *              known; PGPORT is 5432 when the URL names none)
 *   aws        secrets AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional);
 *              settings access_key_id (required), region (optional)
 *              AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *              when set, AWS_REGION and AWS_DEFAULT_REGION when set
 *   env        any number (1 to 64) of NAME -> secret value; the names must
 *              pass sandbox_check_env_assignment() (not PATH, HOME, LD_*...)
 *              exactly those variables, in the order given
 *
 * In broker mode (anthropic and github only) the secret never enters the
 * sandbox; the daemon's broker adds it to requests it forwards:
 *
 *   anthropic  ANTHROPIC_API_KEY=corral-brokered-credential (a placeholder)
 *              and ANTHROPIC_BASE_URL=http://127.0.0.1:3129; requests there
 *              go to base_url (default https://api.anthropic.com) with the
 *              x-api-key header replaced by the real key
 *   github     the file /etc/gitconfig:
 *                  [url "http://127.0.0.1:3130/"]
 *                  	insteadOf = https://github.com/
 *              (the base URL as configured, and github.com as above); git requests there go to the
 *              base URL with "Authorization: Basic x-access-token:TOKEN".
 *              No GH_TOKEN: the broker serves git, not GitHub's REST API.
 *
 * Secrets are sealed (seal.h) with crypto_secretbox_easy (XSalsa20-Poly1305,
 * a random nonce per write) under the state directory's sub-key
 * STORE_SUBKEY_CONNECTORS, together with the connector's type and name, so
 * a sealed secret copied onto another connector's row does not open.  The
 * database holds only the sealed bytes.  Nothing here returns a secret to
 * an operator: what is shown is the type, name, settings, the names the
 * connector injects, where it is attached, and a fingerprint, a keyed hash
 * (BLAKE2b, 8 bytes in hex) of the secret values in the order of their
 * names, so two connectors holding the same secret show the same
 * fingerprint within one state directory.
 *
 * Every secret value is 4 to 65536 bytes without a NUL byte (a shorter one
 * would be scrubbed out of every output it happens to appear in); tokens,
 * keys and URLs hold no whitespace or control character, a password no
 * control character, an env value anything but NUL.
 *
 * Errors follow store.h: EINVAL for a bad input (a sentence that never
 * quotes a secret), EEXIST for a duplicate name, ENOENT for an unknown
 * connector or environment, ENOTUNIQ when two connectors of an environment
 * would inject one name, EBUSY when deleting an attached connector,
 * EBADMSG when a sealed secret does not open (secrets.key was replaced),
 * EOPNOTSUPP for a connector whose mode cannot be served.
 */
#ifndef CORRAL_SECRETS_CONNECTOR_H
#define CORRAL_SECRETS_CONNECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/state.h"
#include "store/store.h"
#include "util/error.h"

#define CONNECTOR_MIN_SECRET 4
#define CONNECTOR_MAX_SECRET 65536
#define CONNECTOR_MAX_INPUT (1u << 20)
#define CONNECTOR_MAX_VARS 64

/* One secret value and the name it goes by: "api_key" (anthropic),
 * "token" (github), "url" or "password" (postgres), "AWS_SECRET_ACCESS_KEY"
 * and "AWS_SESSION_TOKEN" (aws), the variable's name (env).  Both strings
 * are owned; the value is wiped when freed. */
struct connector_secret {
	char *name;
	char *value;
};

void connector_secrets_free(struct connector_secret *v, size_t n);

/* --- creating and rotating -------------------------------------------- */

/* What an operator asks for: every string owned (NULL when not given) and
 * released by connector_spec_release(), which wipes the secret parts.
 *
 * The secret comes either as `input`, text in the format the CLI reads
 * from stdin, or as `secrets`, pairs (the admin API's "secrets" object),
 * not both:
 *   anthropic, github   the key or token itself
 *   postgres            a postgres:// URL; with `host`, the password
 *   aws                 NAME=VALUE lines: AWS_SECRET_ACCESS_KEY (required),
 *                       AWS_SESSION_TOKEN (optional), AWS_ACCESS_KEY_ID
 *                       (instead of `access_key_id`)
 *   env                 with exactly one name in `vars`, that variable's
 *                       value itself (it may span lines); otherwise
 *                       NAME=VALUE lines, whose names must then be `vars`
 * Trailing CR and LF are removed from a key, token, URL or password; one
 * trailing newline from a single env value.  In NAME=VALUE lines the value
 * runs to the end of the line as it is (no quotes, no escapes; a final CR
 * is removed); blank lines and lines starting with '#' are skipped. */
struct connector_spec {
	char *name;
	char *type;
	char *mode;                  /* NULL: "inject" */
	char *base_url;              /* anthropic, github */
	char *api_host;              /* github */
	char *host;                  /* postgres: settings instead of a URL */
	char *port;                  /* postgres, 1..65535 */
	char *user;                  /* postgres */
	char *database;              /* postgres */
	char *region;                /* aws */
	char *access_key_id;         /* aws */
	char **vars;                 /* env */
	size_t nvars;
	char *input;                 /* the secret as text (may hold any byte) */
	size_t input_len;
	struct connector_secret *secrets;
	size_t nsecrets;
};

void connector_spec_add_var(struct connector_spec *spec, const char *name);
/* Append a pair (copied). */
void connector_spec_add_secret(struct connector_spec *spec, const char *name, const char *value);
void connector_spec_release(struct connector_spec *spec);

/* "anthropic", "github", "postgres", "aws", "env": true for these. */
bool connector_type_known(const char *type);

/* Check everything, seal the secret and store a new connector; `out` gets
 * it as connector_json() shows it (no secret).  Nothing is stored unless
 * all of it is valid. */
int connector_add(struct store_state *s, const struct connector_spec *spec,
		  struct store_connector *out, struct cr_error *err);

/* What connector_add() checks that needs no store: everything but the
 * uniqueness of the name.  The CLI calls it before it opens the state
 * directory. */
int connector_spec_check(const struct connector_spec *spec, struct cr_error *err);

/* Replace the secret of connector spec->name in place.  Only the secret
 * (input or secrets), `vars` (env) and `access_key_id` (aws: a new key
 * pair has a new id; kept when not given) may be set besides the name:
 * other settings cannot change (delete and add again).  For postgres the
 * secret keeps its form (a URL, or a password).  `out` gets the connector
 * as it is now. */
int connector_rotate(struct store_state *s, const struct connector_spec *spec,
		     struct store_connector *out, struct cr_error *err);

/* --- the shapes shown by the CLI and the admin API ---------------------- */

/* {"id", "name", "type", "mode", "settings": {...}, "injects": [...],
 *  "fingerprint", "created_at", "rotated_at", "environments": [...]}
 * (new reference). */
json_t *connector_json(const struct store_connector *c);
/* {"id", "trace_id", "connector", "environment", "used_at"} */
json_t *connector_use_json(const struct store_connector_use *u);

/* --- what an execution receives --------------------------------------- */

/* A file corral places, read-only and for one execution only, at
 * /etc/<path_in_etc> inside the sandbox. */
struct connector_file {
	const char *path_in_etc;     /* "gitconfig" (static) */
	char *content;               /* holds a secret; wiped on release */
	char *connector;             /* name of the connector it comes from */
};

/* A string to replace with "[REDACTED:<label>]" in what the execution
 * prints: every secret value and every text built from one (the
 * URL-with-token, a DATABASE_URL).  Encoded forms (URL-encoded, base64)
 * are the scrubber's to derive. */
struct connector_scrub {
	char *value;                 /* wiped on release */
	char *label;                 /* the connector's name */
};

/* A connector in broker mode: the sandbox gets a placeholder and a
 * loopback endpoint (see the table at the top), and the daemon's broker
 * (egress/egress.h) forwards to `upstream` adding `header`. */
enum connector_broker_kind {
	CONNECTOR_BROKER_ANTHROPIC = 1,  /* served on 127.0.0.1:3129 */
	CONNECTOR_BROKER_GITHUB = 2,     /* served on 127.0.0.1:3130 */
};
struct connector_broker {
	enum connector_broker_kind kind;
	char *connector;             /* the connector's name */
	char *upstream;              /* base URL */
	char *header;                /* "x-api-key: ..." / "Authorization: Basic ...";
				      * a secret, wiped on release */
};

struct connector_injection {
	char **env;                  /* "NAME=VALUE", NULL-terminated (never NULL
				      * after a success); nenv entries */
	size_t nenv;
	struct connector_file *files;
	size_t nfiles;
	struct connector_scrub *scrub;   /* no duplicate values, longest first */
	size_t nscrub;
	struct connector_broker *brokers;
	size_t nbrokers;
	int64_t *connector_ids;      /* the connectors used, by name */
	size_t nconnectors;
};

/* Everything the connectors attached to environment `env_id` inject, in
 * the order of the connectors' names, each connector's variables in the
 * order of the table above.  An environment without connectors (or one
 * that does not exist) gives an empty injection.  On failure `out` is
 * empty (releasing it is harmless): EBADMSG when a secret does not open,
 * EOPNOTSUPP for a connector not in inject mode, ENOTUNIQ when two
 * connectors set one name (attach prevents it).  Each environment entry
 * passes sandbox_check_env_assignment(). */
int connector_injection_for_env(struct store_state *s, int64_t env_id,
				struct connector_injection *out, struct cr_error *err);
/* Free and wipe what `inj` holds; it is empty afterwards. */
void connector_injection_release(struct connector_injection *inj);

/* Record in the audit that execution `trace_id` received connector
 * `connector_id` (call it for each of inj->connector_ids, after
 * store_exec_insert(): the environment is taken from the execution). */
int connector_record_use(struct store *st, const char *trace_id, int64_t connector_id,
			 struct cr_error *err);

#endif
