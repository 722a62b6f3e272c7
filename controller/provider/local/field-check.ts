// A small collector of field errors, used to validate plain YAML objects the
// way the API server's schemas would. Each check returns the value when it is
// valid (so callers can descend), and records `field: reason` otherwise.
import { isIP } from "node:net";

export interface FieldProblem {
  field: string;
  reason: string;
}

export type Obj = Record<string, unknown>;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DURATION = /^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$/;

export function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function isIanaSvcName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes("--");
}

export class FieldCheck {
  readonly problems: FieldProblem[] = [];

  fail(field: string, reason: string): undefined {
    this.problems.push({ field, reason });
    return undefined;
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }

  object(v: unknown, field: string, required = false): Obj | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, "is required") : undefined;
    if (!isObject(v)) return this.fail(field, "must be an object");
    return v;
  }

  array(v: unknown, field: string, required = false): unknown[] | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, "is required") : undefined;
    if (!Array.isArray(v)) return this.fail(field, "must be a list");
    return v;
  }

  /** A list of objects; yields [element, its field path] for the valid ones. */
  objects(v: unknown, field: string, required = false): [Obj, string][] {
    const list = this.array(v, field, required);
    if (!list) return [];
    const out: [Obj, string][] = [];
    list.forEach((e, i) => {
      const o = this.object(e, `${field}[${i}]`, true);
      if (o) out.push([o, `${field}[${i}]`]);
    });
    return out;
  }

  string(v: unknown, field: string, required = false): string | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, "is required") : undefined;
    if (typeof v !== "string") return this.fail(field, `must be a string, got ${JSON.stringify(v)}`);
    if (required && v === "") return this.fail(field, "must not be empty");
    return v;
  }

  strings(v: unknown, field: string): string[] | undefined {
    const list = this.array(v, field);
    if (!list) return undefined;
    let good = true;
    list.forEach((e, i) => {
      if (typeof e !== "string") {
        this.fail(`${field}[${i}]`, `must be a string, got ${JSON.stringify(e)}`);
        good = false;
      }
    });
    return good ? (list as string[]) : undefined;
  }

  boolean(v: unknown, field: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") return this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  int(
    v: unknown,
    field: string,
    opts: { required?: boolean; min?: number; max?: number } = {},
  ): number | undefined {
    if (v === undefined || v === null) return opts.required ? this.fail(field, "is required") : undefined;
    if (typeof v !== "number" || !Number.isInteger(v))
      return this.fail(field, `must be an integer, got ${JSON.stringify(v)}`);
    if (opts.min !== undefined && v < opts.min)
      return this.fail(field, `must be at least ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max)
      return this.fail(field, `must be at most ${opts.max}, got ${v}`);
    return v;
  }

  number(v: unknown, field: string, opts: { min?: number; max?: number } = {}): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v))
      return this.fail(field, `must be a number, got ${JSON.stringify(v)}`);
    if (opts.min !== undefined && v < opts.min)
      return this.fail(field, `must be at least ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max)
      return this.fail(field, `must be at most ${opts.max}, got ${v}`);
    return v;
  }

  port(v: unknown, field: string, required = false): number | undefined {
    return this.int(v, field, { required, min: 1, max: 65535 });
  }

  /** A port number or an IANA service name (a container port's name). */
  portOrName(v: unknown, field: string, required = false): number | string | undefined {
    if (typeof v === "string") {
      if (/^[0-9]+$/.test(v)) return this.port(Number(v), field);
      if (!isIanaSvcName(v))
        return this.fail(
          field,
          `must be a port number or a port name (lowercase, at most 15 characters), got ${JSON.stringify(v)}`,
        );
      return v;
    }
    return this.port(v, field, required);
  }

  oneOf<T extends string>(v: unknown, field: string, values: readonly T[], required = false): T | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, "is required") : undefined;
    if (typeof v !== "string" || !values.includes(v as T)) {
      return this.fail(field, `must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
    }
    return v as T;
  }

  stringMap(v: unknown, field: string): Record<string, string> | undefined {
    const o = this.object(v, field);
    if (!o) return undefined;
    let good = true;
    for (const [k, val] of Object.entries(o)) {
      if (typeof val !== "string") {
        this.fail(`${field}.${k}`, `must be a string, got ${JSON.stringify(val)} (quote it)`);
        good = false;
      }
    }
    return good ? (o as Record<string, string>) : undefined;
  }

  /** `required` for list elements, where null is not "absent" but a hole. */
  ip(v: unknown, field: string, required = false): string | undefined {
    const s = this.string(v, field, required);
    if (s === undefined) return undefined;
    if (isIP(s) === 0) return this.fail(field, `must be an IP address, got ${JSON.stringify(s)}`);
    return s;
  }

  duration(v: unknown, field: string, required = false): string | undefined {
    const s = this.string(v, field, required);
    if (s === undefined) return undefined;
    if (!DURATION.test(s))
      return this.fail(field, `must be a duration such as "1s" or "500ms", got ${JSON.stringify(s)}`);
    return s;
  }

  dnsLabel(v: unknown, field: string, required = false): string | undefined {
    const s = this.string(v, field, required);
    if (s === undefined) return undefined;
    if (s.length > 63 || !DNS1123_LABEL.test(s)) {
      return this.fail(
        field,
        `must be a DNS label (lowercase letters, digits and '-', at most 63 characters), got ${JSON.stringify(s)}`,
      );
    }
    return s;
  }

  dnsSubdomain(v: unknown, field: string, required = false): string | undefined {
    const s = this.string(v, field, required);
    if (s === undefined) return undefined;
    if (s.length > 253 || !DNS1123_SUBDOMAIN.test(s)) {
      return this.fail(
        field,
        `must be a DNS subdomain (lowercase letters, digits, '-' and '.'), got ${JSON.stringify(s)}`,
      );
    }
    return s;
  }
}
