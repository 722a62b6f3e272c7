// ResponseHeaderModifier: set / add / remove on the headers sent downstream,
// applied to upstream responses and to the waypoint's own (404, 503...).
import type { HeaderModifier } from "../../core/model/waypoint.js";
import { applyHeaderModifier, type HeaderBag } from "./request-header-modifier.js";

export function responseHeaderModifier(h: HeaderBag, mods: HeaderModifier[] | undefined): void {
  if (mods) for (const m of mods) applyHeaderModifier(h, m);
}
