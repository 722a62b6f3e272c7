// RequestHeaderModifier: set / add / remove on the headers sent upstream.
// Header names are case-insensitive; the header object uses lower-case keys.
import type { HeaderModifier } from "../../core/model/waypoint.js";

export type HeaderBag = Record<string, string | string[] | number | undefined>;

export function applyHeaderModifier(h: HeaderBag, m: HeaderModifier): void {
  if (m.set) for (const { name, value } of m.set) h[name.toLowerCase()] = value;
  if (m.add)
    for (const { name, value } of m.add) {
      const k = name.toLowerCase();
      const cur = h[k];
      if (cur === undefined) h[k] = value;
      else if (Array.isArray(cur)) h[k] = [...cur, value];
      else h[k] = k === "cookie" ? `${cur}; ${value}` : [String(cur), value];
    }
  if (m.remove) for (const name of m.remove) delete h[name.toLowerCase()];
}

export const requestHeaderModifier = applyHeaderModifier;
