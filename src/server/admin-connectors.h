/* admin-connectors.h - /admin/v1/connectors and /admin/v1/audit (behind the
 * admin token, which api_admin() in admin.c has checked).
 *
 *   GET    /admin/v1/connectors[?env=E]          {"connectors": [connector...]}
 *   POST   /admin/v1/connectors                  201 connector
 *          {"type", "name", "mode"?, settings..., "secret": TEXT | "secrets": {NAME: VALUE}}
 *   GET    /admin/v1/connectors/{name}           connector + "recent_uses"
 *   DELETE /admin/v1/connectors/{name}[?force=true]   {"name", "deleted", "detached"}
 *   POST   /admin/v1/connectors/{name}/rotate    connector; {"secret" | "secrets",
 *                                                "vars"?, "access_key_id"?}
 *   POST   /admin/v1/connectors/{name}/attach    connector; {"env": E}
 *   POST   /admin/v1/connectors/{name}/detach    connector; {"env": E}
 *   GET    /admin/v1/audit[?connector=N&limit=L] {"uses": [use...]} newest first
 *
 * Shapes are connector_json() and connector_use_json() (secrets/connector.h),
 * the same as `corral connector ... --json`.  The settings are the fields of
 * struct connector_spec: base_url, api_host, host, port, user, database,
 * region, access_key_id, vars; "secret" is text in the format the CLI reads
 * from stdin.  Refusals are {"error", "message"}: 400 validation_error,
 * 404 not_found, 409 conflict (duplicate name, attached, clashing names).
 */
#ifndef CORRAL_SERVER_ADMIN_CONNECTORS_H
#define CORRAL_SERVER_ADMIN_CONNECTORS_H

#include "server/api.h"

/* `head` is "connectors" or "audit", `rest` what follows it after '/'
 * (NULL when nothing does). */
enum MHD_Result api_admin_connectors(struct server *srv, struct MHD_Connection *conn,
				     struct request *req, const char *head, const char *rest,
				     const char *method);

#endif
