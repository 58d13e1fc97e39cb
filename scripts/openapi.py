#!/usr/bin/env python3
# Writes src/api/openapi.json, the OpenAPI 3.1 document of the query port:
#   python3 scripts/openapi.py > src/api/openapi.json
# The tests hold its paths equal to the routes and run schemathesis against it.
import json
S = lambda **k: k
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def pref(n): return {"$ref": f"#/components/parameters/{n}"}
def rref(n): return {"$ref": f"#/components/responses/{n}"}
nullable_str = {"type": ["string", "null"]}
str_list = {"type": "array", "items": {"type": "string"}}
nullable_flag = {"type": ["boolean", "null"]}
octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
ip_or_net = {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"},
    {"type": "string", "pattern": f"^({octet}\\.){{3}}{octet}/(3[0-2]|[12]?[0-9])$"}],
    "description": "An address or a CIDR range (IPv6 ranges such as `2001:db8::/32` too)."}
name_item = {"type": "string", "pattern": "\\S"}
name_list = {"type": ["array", "null"], "items": name_item, "description": "null is the empty list."}
action_list = {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/Action"}, "description": "null is the empty list."}
ip_list = {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/IpOrRange"}, "description": "null is the empty list."}
json_any = {}  # any JSON value

def ok_json(schema, desc="OK"):
    return {"description": desc, "content": {"application/json": {"schema": schema}}}

errors_read = {"400": rref("BadRequest"), "401": rref("Unauthorized"), "503": rref("Unavailable")}

filters = ["action", "resource_type", "resource_id", "actor", "client_ip", "outcome", "status",
           "since", "until", "q", "configuration", "unapplied", "instance"]
filter_refs = [pref(f) for f in filters]

params = {
    "action": {"description": "Exact action (create, update, delete, read, login or a custom action)."},
    "resource_type": {"description": "Exact resource type."},
    "resource_id": {"description": "Exact resource id."},
    "actor": {"description": "Exact actor name."},
    "configuration": {"description": "Name of the configuration that caused the entry."},
    "instance": {"description": "The instance that wrote the entry."},
    "q": {"description": "Text contained in the path or the changes."},
}
parameters = {}
for name, p in params.items():
    parameters[name] = {"name": name, "in": "query", "required": False, "description": p["description"],
                        "schema": {"type": "string", "maxLength": 1024}}
parameters["client_ip"] = {"name": "client_ip", "in": "query", "required": False,
    "description": "Client address, or a CIDR range containing it.", "schema": ref("IpOrRange")}
parameters["outcome"] = {"name": "outcome", "in": "query", "required": False,
    "schema": {"type": "string", "enum": ["success", "failure", "error"]}}
parameters["status"] = {"name": "status", "in": "query", "required": False,
    "description": "The HTTP status the client got.", "schema": {"type": "integer", "minimum": 100, "maximum": 599}}
parameters["since"] = {"name": "since", "in": "query", "required": False,
    "description": "Entries at or after this time (RFC 3339).", "schema": {"type": "string", "format": "date-time"}}
parameters["until"] = {"name": "until", "in": "query", "required": False,
    "description": "Entries at or before this time (RFC 3339).", "schema": {"type": "string", "format": "date-time"}}
parameters["unapplied"] = {"name": "unapplied", "in": "query", "required": False,
    "description": "true: entries whose request asked for something the app did not apply; false: the others.",
    "schema": {"type": "boolean"}}
parameters["limit"] = {"name": "limit", "in": "query", "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}
parameters["cursor"] = {"name": "cursor", "in": "query", "required": False,
    "description": "`next_cursor` of the previous page.", "schema": ref("Ulid")}
parameters["format"] = {"name": "format", "in": "query", "required": False,
    "schema": {"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}}
parameters["entry_id"] = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
parameters["config_id"] = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
parameters["kind"] = {"name": "kind", "in": "path", "required": True, "description": "Resource type.",
    "schema": {"type": "string"}}
parameters["resource_id_path"] = {"name": "id", "in": "path", "required": True, "description": "Resource id.",
    "schema": {"type": "string"}}

entry_props = {
    "id": ref("Ulid"),
    "timestamp": {"type": "string", "format": "date-time", "description": "When the upstream answered (UTC, microseconds)."},
    "request_id": {"type": "string"},
    "action": {"type": "string"},
    "outcome": {"type": "string", "enum": ["success", "failure", "error"]},
    "method": {"type": "string"},
    "path": {"type": "string"},
    "query": {"type": "string"},
    "status": {"type": "integer", "minimum": 0, "maximum": 999},
    "duration_ms": {"type": "number", "minimum": 0},
    "resource_type": {"type": "string"},
    "resource_id": nullable_str,
    "parents": {"type": "array", "items": ref("Parent")},
    "actor": {"type": "string"},
    "actor_source": {"type": "string", "enum": ["header", "jwt", "basic", "whoami", "login", "anonymous", "token"]},
    "actor_verified": {"type": "boolean"},
    "client_ip": {"type": "string"},
    "peer_ip": {"type": "string"},
    "forwarded_for": str_list,
    "user_agent": nullable_str,
    "configuration": nullable_str,
    "before": {"description": "The resource before the change (any JSON), or null."},
    "after": {"description": "The resource after the change (any JSON), or null."},
    "changes": {"type": "array", "items": ref("Change")},
    "unapplied": {"type": ["array", "null"], "items": ref("Unapplied"),
                  "description": "Requested fields the app did not apply as asked; null when there is nothing to compare. Absent on entries written before it existed."},
    "request_body": {"description": "The redacted request body (capture full), or null."},
    "snapshot_error": nullable_str,
    "instance": {"type": "string"},
    "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
}
entry = {"type": "object", "properties": entry_props,
         "required": [k for k in entry_props if k != "unapplied"]}

config_fields = {
    # Not blank, no control character (U+0000-001F, U+007F-009F).
    "name": {"type": "string", "minLength": 1, "maxLength": 200,
             "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"},
    "description": {"type": ["string", "null"]},
    "configuration_type": {"type": "string", "enum": ["include", "exclude"]},
    "is_active": {"type": "boolean"},
    "priority": {"type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807},
    "audit_actions": action_list, "audit_all_actions": nullable_flag,
    "audit_resource_types": name_list, "audit_all_resource_types": nullable_flag,
    "audit_users": name_list, "audit_all_users": nullable_flag,
    "audit_ips": ip_list, "audit_all_ips": nullable_flag,
    "exclude_actions": action_list, "exclude_resource_types": name_list,
    "exclude_users": name_list, "exclude_ips": ip_list,
    "capture": {"type": "string", "enum": ["metadata", "diff", "full"]},
}
config_out = {k: (str_list if k.endswith(("_actions", "_types", "_users", "_ips")) and not k.startswith("audit_all_") else v) for k, v in config_fields.items()}
config_out["description"] = {"type": "string"}
config_out = {"id": {"type": "integer"}, **config_out,
              "source": {"type": "string", "enum": ["api", "file"]},
              "created_at": {"type": "string"}, "updated_at": {"type": "string"}}

schemas = {
    "Ulid": {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$", "description": "A ULID: sortable by time."},
    "Error": {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
              "required": ["error"]},
    "Parent": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
               "required": ["type", "id"]},
    "Change": {"type": "object", "properties": {"path": {"type": "string"}, "old": {}, "new": {}},
               "required": ["path", "old", "new"]},
    "Unapplied": {"type": "object", "properties": {"path": {"type": "string", "description": "JSON Pointer."},
                  "requested": {}, "applied": {}}, "required": ["path", "requested", "applied"]},
    "Entry": entry,
    "EntryPage": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Entry")},
                  "next_cursor": {"oneOf": [ref("Ulid"), {"type": "null"}]}}, "required": ["items", "next_cursor"]},
    "EntryList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Entry")}},
                  "required": ["items"]},
    "Action": {"type": "string", "enum": ["create", "delete", "login", "read", "update"],
               "description": "A built-in action or one declared in resources.toml (this instance lists its own)."},
    "IpOrRange": ip_or_net,
    "ConfigurationInput": {"type": "object", "properties": config_fields, "additionalProperties": False,
                           "required": ["name"], "description": "A whole configuration: absent fields take their defaults."},
    "ConfigurationPatch": {"type": "object", "properties": config_fields, "additionalProperties": False,
                           "description": "The fields to change."},
    "Configuration": {"type": "object", "properties": config_out, "required": list(config_out)},
    "ConfigurationList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Configuration")}},
                          "required": ["items"]},
    "Verification": {"type": "object", "properties": {"ok": {"type": "boolean"}, "checked": {"type": "integer", "minimum": 0},
                     "first_bad": {"oneOf": [ref("Ulid"), {"type": "null"}]},
                     "heads": {"type": "array", "items": ref("Head"),
                               "description": "Each instance's newest entry: keep it elsewhere, and `auditgate verify --heads FILE` fails if a chain no longer reaches it."}},
                     "required": ["ok", "checked", "first_bad", "heads"]},
    "Head": {"type": "object", "properties": {"instance": {"type": "string"}, "id": ref("Ulid"),
             "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}, "required": ["instance", "id", "hash"]},
    "Counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    "Stats": {"type": "object", "properties": {"by_action": ref("Counts"), "by_resource_type": ref("Counts"),
              "by_actor": ref("Counts"), "by_outcome": ref("Counts"), "total": {"type": "integer", "minimum": 0}},
              "required": ["by_action", "by_resource_type", "by_actor", "by_outcome", "total"]},
    "Status": {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]},
    "State": {"type": "object", "required": ["state", "entry", "timestamp", "action"], "properties": {
        "state": {"description": "The resource's after-state, null when the entry deleted it or took no snapshot."},
        "entry": ref("Ulid"), "timestamp": {"type": "string", "format": "date-time"}, "action": {"type": "string"}}},
}

def err(desc): return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}
responses = {
    "BadRequest": err("A parameter or the body cannot be accepted; `field` names it."),
    "Unauthorized": {**err("Tokens are configured and no valid bearer token was sent."),
                     "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "Forbidden": err("A read token tried to change something."),
    "Conflict": err("Another configuration has this name."),
    "NotFound": err("No such entry, configuration or resource."),
    "TooLarge": err("The body is larger than allowed."),
    "TooSlow": err("The body arrived slower than the minimum rate."),
    "Unavailable": err("The store is unavailable, or the instance is shutting down."),
}

write_errors = {"400": rref("BadRequest"), "401": rref("Unauthorized"), "403": rref("Forbidden"), "409": rref("Conflict"),
                "408": rref("TooSlow"), "413": rref("TooLarge"), "503": rref("Unavailable")}
body = {"required": True, "content": {"application/json": {"schema": ref("ConfigurationInput")}}}
patch_body = {"required": True, "content": {"application/json": {"schema": ref("ConfigurationPatch")}}}
config_links = {op: {"operationId": op, "parameters": {"id": "$response.body#/id"}}
                for op in ["getConfiguration", "replaceConfiguration", "updateConfiguration", "deleteConfiguration"]}

paths = {
  "/api/v1/audit-logs": {"get": {"operationId": "listEntries", "summary": "Entries, newest first, keyset-paged.",
      "parameters": filter_refs + [pref("limit"), pref("cursor")],
      "responses": {"200": {**ok_json(ref("EntryPage")), "links": {
          "getEntry": {"operationId": "getEntry", "parameters": {"id": "$response.body#/items/0/id"}},
          "resourceHistory": {"operationId": "resourceHistory", "parameters": {
              "kind": "$response.body#/items/0/resource_type", "id": "$response.body#/items/0/resource_id"}}}},
          **errors_read}}},
  "/api/v1/audit-logs/export": {"get": {"operationId": "exportEntries", "summary": "Every matching entry, streamed, newest first.",
      "parameters": filter_refs + [pref("format")],
      "responses": {"200": {"description": "NDJSON (one entry a line) or CSV (cells that could be read as formulas are defused).",
                            "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                        "text/csv": {"schema": {"type": "string"}}}},
                    **errors_read}}},
  "/api/v1/audit-logs/stream": {"get": {"operationId": "streamEntries",
      "summary": "Server-Sent Events: each newly committed entry matching the filters, oldest first (`id:` the entry id, `data:` the entry). Without Last-Event-ID it starts after the newest entry stored now.",
      "parameters": filter_refs + [{"name": "Last-Event-ID", "in": "header", "required": False,
          "description": "Resume after this entry (the id of the last event received).", "schema": ref("Ulid")}],
      "responses": {"200": {"description": "An endless event stream; a comment line keeps it alive when quiet.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    **errors_read}}},
  "/api/v1/audit-logs/{id}": {"get": {"operationId": "getEntry", "parameters": [pref("entry_id")],
      "responses": {"200": ok_json(ref("Entry")), "401": rref("Unauthorized"), "404": rref("NotFound"),
                    "503": rref("Unavailable")}}},
  "/api/v1/resources/{kind}/{id}/history": {"get": {"operationId": "resourceHistory", "summary": "A resource's entries, oldest first.",
      "parameters": [pref("kind"), pref("resource_id_path")],
      "responses": {"200": ok_json(ref("EntryList")), "401": rref("Unauthorized"), "503": rref("Unavailable")}}},
  "/api/v1/resources/{kind}/{id}/state": {"get": {"operationId": "resourceState",
      "summary": "The resource as of a moment: the `after` of its last entry at or before `at` (null when that entry deleted it).",
      "parameters": [pref("kind"), pref("resource_id_path"), {"name": "at", "in": "query", "required": False,
          "description": "The moment (RFC 3339); now when absent.", "schema": {"type": "string", "format": "date-time"}}],
      "responses": {"200": ok_json(ref("State")), "400": rref("BadRequest"), "401": rref("Unauthorized"),
                    "404": rref("NotFound"), "503": rref("Unavailable")}}},
  "/api/v1/audit-configurations": {
      "get": {"operationId": "listConfigurations", "summary": "Every audit configuration, oldest first.",
              "responses": {"200": ok_json(ref("ConfigurationList")), "401": rref("Unauthorized"), "503": rref("Unavailable")}},
      "post": {"operationId": "createConfiguration", "summary": "Create (admin); recorded in the trail.",
               "requestBody": body,
               "responses": {"201": {**ok_json(ref("Configuration"), "Created"),
                                     "headers": {"Location": {"schema": {"type": "string"}}},
                                     "links": config_links}, **write_errors}}},
  "/api/v1/audit-configurations/{id}": {
      "parameters": [pref("config_id")],
      "get": {"operationId": "getConfiguration",
              "responses": {"200": ok_json(ref("Configuration")), "401": rref("Unauthorized"), "404": rref("NotFound"),
                            "503": rref("Unavailable")}},
      "put": {"operationId": "replaceConfiguration", "summary": "Replace (admin): absent fields take their defaults.",
              "requestBody": body,
              "responses": {"200": ok_json(ref("Configuration")), "404": rref("NotFound"), **write_errors}},
      "patch": {"operationId": "updateConfiguration", "summary": "Merge the given fields (admin).",
                "requestBody": patch_body,
                "responses": {"200": ok_json(ref("Configuration")), "404": rref("NotFound"), **write_errors}},
      "delete": {"operationId": "deleteConfiguration", "summary": "Delete (admin); recorded in the trail.",
                 "responses": {"204": {"description": "Deleted"}, "401": rref("Unauthorized"), "403": rref("Forbidden"),
                               "404": rref("NotFound"), "503": rref("Unavailable")}}},
  "/api/v1/verify": {"get": {"operationId": "verify", "summary": "Checks every instance's hash chain.",
      "responses": {"200": ok_json(ref("Verification")), "401": rref("Unauthorized"), "503": rref("Unavailable")}}},
  "/api/v1/stats": {"get": {"operationId": "stats", "summary": "Counts by action, resource type, actor and outcome.",
      "parameters": [pref("since"), pref("until")],
      "responses": {"200": ok_json(ref("Stats")), **errors_read}}},
  "/api/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This document.",
      "responses": {"200": ok_json({"type": "object"}), "401": rref("Unauthorized")}}},
  "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus text format.",
      "responses": {"200": {"description": "Counters", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": rref("Unauthorized")}}},
  "/healthz": {"get": {"operationId": "healthz", "security": [], "summary": "The process answers.",
      "responses": {"200": ok_json(ref("Status"))}}},
  "/readyz": {"get": {"operationId": "readyz", "security": [], "summary": "Ready: not shutting down, and the store answers.",
      "responses": {"200": ok_json(ref("Status")), "503": ok_json(ref("Status"), "Not ready")}}},
}

doc = {
  "openapi": "3.1.0",
  "info": {"title": "auditgate query API", "version": "1",
           "description": "The query port of auditgate: the audit trail, its verification and the audit configurations. Errors are `{\"error\": \"…\", \"field\": \"…\"}`."},
  "security": [{}, {"bearer": []}],
  "paths": paths,
  "components": {"schemas": schemas, "parameters": parameters, "responses": responses,
                 "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                     "description": "Needed when `[query] tokens` are configured; `read` tokens may not change configurations."}}},
}
print(json.dumps(doc, indent=2))
