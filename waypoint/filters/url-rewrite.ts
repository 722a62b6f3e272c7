// URLRewrite: hostname and path (ReplaceFullPath, or ReplacePrefixMatch of
// the PathPrefix the route matched), keeping the query string.
import type { PathModifier } from "../../core/model/waypoint.js";

/** Path after a PathModifier; `prefix` is the matched PathPrefix (normalized). */
export function rewritePath(path: string, m: PathModifier, prefix: string | undefined): string {
  if (m.type === "ReplaceFullPath") return m.value;
  const p = prefix ?? "/";
  const rest = p === "/" ? path : path.slice(p.length);
  let repl = m.value;
  if (repl === "/" && rest.startsWith("/")) repl = "";
  else if (repl.endsWith("/") && rest.startsWith("/")) repl = repl.slice(0, -1);
  const out = `${repl}${rest}`;
  return out === "" ? "/" : out.startsWith("/") ? out : `/${out}`;
}

/** New url (path + query) for a request url. */
export function rewriteUrl(url: string, m: PathModifier, prefix: string | undefined): string {
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  return rewritePath(path, m, prefix) + (q < 0 ? "" : url.slice(q));
}
