// Errors with stable codes. A bad input names the object and the field.

export type ErrorCode =
  | "INVALID_OBJECT"
  | "INVALID_FIELD"
  | "UNKNOWN_KIND"
  | "DUPLICATE_OBJECT"
  | "MISSING_REFERENCE"
  | "YAML_PARSE"
  | "CA_REFUSED"
  | "CA_UNAUTHENTICATED"
  | "XDS_REJECTED"
  | "HBONE_PROTOCOL"
  | "AUTHZ_DENIED"
  | "NOT_LOCAL"
  | "NETNS_SYSCALL"
  | "NETNS_PRIVILEGE"
  | "NETNS_COMMAND"
  | "LOCAL_STATE"
  | "CONFIG"
  | "KUBE_API"
  | "OBSERVABILITY"
  | "ZDS_PROTOCOL";

export class AmbitError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "AmbitError";
  }
}

/** Names the object (`Kind ns/name`, with the file when known) and the field. */
export class ObjectError extends AmbitError {
  constructor(
    code: ErrorCode,
    readonly object: { kind: string; namespace?: string; name?: string; file?: string },
    readonly field: string | undefined,
    reason: string,
  ) {
    const ref = `${object.kind} ${object.namespace ? `${object.namespace}/` : ""}${object.name ?? "<unnamed>"}`;
    const where = object.file ? ` (${object.file})` : "";
    super(code, `${ref}${where}${field ? `: field ${field}` : ""}: ${reason}`, { object, field });
    this.name = "ObjectError";
  }

  /** What admin endpoints and the dashboard show of it. */
  summary(): { code: ErrorCode; message: string; object: ObjectError["object"]; field: string | undefined } {
    return { code: this.code, message: this.message, object: this.object, field: this.field };
  }
}
