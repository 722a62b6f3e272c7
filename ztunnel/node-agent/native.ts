// The only native code ambit needs, through koffi (prebuilt FFI, no install
// script): setns, sockets created inside another network namespace, socket
// marks, IP_TRANSPARENT and SO_ORIGINAL_DST. Everything else is TypeScript.
//
// Why this works: a network namespace is a property of the calling *thread*
// at the time a socket is created; the socket stays in that namespace for its
// whole life. Node runs JS on the main thread, so we switch the main thread
// into the pod's namespace, make synchronous syscalls (socket, setsockopt,
// bind, listen) and switch back in `finally`. libuv's threadpool threads are
// separate threads and are never switched. The resulting fd is then handed to
// Node (`net.Server#listen({ fd })`, `new net.Socket({ fd })`, dgram
// `bind({ fd })`), which polls it from the main loop as usual.
//
// Linux only; constants are the generic Linux ABI values (x86_64 and arm64).
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import koffi from "koffi";
import { AmbitError } from "../../core/errors/errors.js";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;
const SO_MARK = 36;
const SOL_IP = 0;
const SOL_IPV6 = 41;
const IP_TRANSPARENT = 19;
const IPV6_TRANSPARENT = 75;
const SO_ORIGINAL_DST = 80; // also IP6T_SO_ORIGINAL_DST at SOL_IPV6
const CLONE_NEWNET = 0x40000000;
const EINPROGRESS = 115;

/** A syscall failed; `errno` is the Linux errno, `syscall` its name. */
export class NetnsSyscallError extends AmbitError {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    context: string,
  ) {
    super("NETNS_SYSCALL", `${syscall} failed: ${errnoName(errno)} (${context})`, { syscall, errno });
    this.name = "NetnsSyscallError";
  }
  /** e.g. "EADDRINUSE". */
  get errnoCode(): string {
    return errnoName(this.errno);
  }
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

// ---------- libc bindings (loaded on first use) ----------

interface Libc {
  setns: (fd: number, nstype: number) => number;
  socket: (domain: number, type: number, protocol: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, val: Buffer, len: Buffer) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  listen: (fd: number, backlog: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;
function lib(): Libc {
  if (libc) return libc;
  if (process.platform !== "linux") {
    throw new AmbitError("NETNS_SYSCALL", "network namespaces need Linux");
  }
  const c = koffi.load("libc.so.6");
  libc = {
    setns: c.func("int setns(int fd, int nstype)"),
    socket: c.func("int socket(int domain, int type, int protocol)"),
    setsockopt: c.func("int setsockopt(int fd, int level, int name, const void *val, uint32_t len)"),
    getsockopt: c.func("int getsockopt(int fd, int level, int name, void *val, void *len)"),
    bind: c.func("int bind(int fd, const void *addr, uint32_t len)"),
    listen: c.func("int listen(int fd, int backlog)"),
    connect: c.func("int connect(int fd, const void *addr, uint32_t len)"),
    close: c.func("int close(int fd)"),
  } as Libc;
  return libc;
}

function check(rc: number, syscall: string, context: string): number {
  if (rc < 0) throw new NetnsSyscallError(syscall, koffi.errno(), context);
  return rc;
}

// ---------- namespaces ----------

/** An open handle on a network namespace (keeps it alive while open). */
export class Netns {
  private closed = false;
  private constructor(
    readonly path: string,
    readonly fd: number,
  ) {}

  /** `path` is `/var/run/netns/<name>`, `/proc/<pid>/ns/net`, or a bare name under /var/run/netns. */
  static open(path: string): Netns {
    const full = path.includes("/") ? path : `/var/run/netns/${path}`;
    let fd: number;
    try {
      fd = fs.openSync(full, "r"); // Node opens with O_CLOEXEC;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new NetnsSyscallError(
        "open",
        os.constants.errno[e.code as keyof typeof os.constants.errno] ?? 0,
        full,
      );
    }
    return new Netns(full, fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

let home: Netns | undefined;
const stack: Netns[] = [];

/** The namespace the main thread was in when this module first switched away. */
function homeNetns(): Netns {
  if (!home) home = Netns.open("/proc/thread-self/ns/net");
  return home;
}

/**
 * Runs `fn` with the calling (main) thread inside the namespace, then switches
 * back, also on error. `fn` must be synchronous: anything it awaits would run
 * later, outside the namespace. Nesting is allowed.
 */
export function withNetns<T>(netns: string | Netns, fn: () => T): T {
  const c = lib();
  const previous = stack.length > 0 ? stack[stack.length - 1]! : homeNetns();
  if (typeof netns !== "string" && netns.isClosed) {
    throw new AmbitError(
      "NETNS_SYSCALL",
      `network namespace handle ${netns.path} is closed (pod un-enrolled?)`,
    );
  }
  const target = typeof netns === "string" ? Netns.open(netns) : netns;
  try {
    check(c.setns(target.fd, CLONE_NEWNET), "setns", target.path);
    stack.push(target);
    try {
      const out = fn();
      if (out && typeof (out as { then?: unknown }).then === "function") {
        throw new AmbitError(
          "NETNS_SYSCALL",
          "withNetns: the callback must be synchronous (it returned a promise)",
        );
      }
      return out;
    } finally {
      stack.pop();
      if (c.setns(previous.fd, CLONE_NEWNET) < 0) {
        // Staying in a pod's namespace would silently put every later socket
        // of this process in the wrong place: never continue.
        const errno = koffi.errno();
        process.stderr.write(
          `ambit: fatal: cannot return to network namespace ${previous.path}: ${errnoName(errno)}\n`,
        );
        process.abort();
      }
    }
  } finally {
    if (typeof netns === "string") target.close();
  }
}

// ---------- addresses ----------

export interface SockAddr {
  address: string;
  port: number;
  family: 4 | 6;
}

function encodeSockaddr(address: string, port: number): Buffer {
  const v = net.isIP(address);
  if (v === 4) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    for (const [i, o] of address.split(".").entries()) b.writeUInt8(Number(o), 4 + i);
    return b;
  }
  if (v === 6) {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(AF_INET6, 0);
    b.writeUInt16BE(port, 2);
    ipv6Bytes(address).copy(b, 8);
    return b;
  }
  throw new AmbitError("INVALID_FIELD", `not an IP address: '${address}'`);
}

function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = text.slice(0, -v4[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t];
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

function decodeSockaddr(b: Buffer): SockAddr {
  const family = b.readUInt16LE(0);
  const port = b.readUInt16BE(2);
  if (family === AF_INET) {
    return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port, family: 4 };
  }
  if (family === AF_INET6) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(8 + i * 2).toString(16));
    // Let the URL parser compress it to the canonical form.
    const address = new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
    return { address, port, family: 6 };
  }
  throw new AmbitError("NETNS_SYSCALL", `unexpected address family ${family}`);
}

// ---------- socket options ----------

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}

/** The OS fd of a connected or listening Node socket (Linux: `_handle.fd`). */
export function socketFd(socket: net.Socket | net.Server | number): number {
  if (typeof socket === "number") return socket;
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw new AmbitError("NETNS_SYSCALL", "socket has no OS file descriptor (closed, or not a TCP socket)");
  }
  return fd;
}

function setIntOpt(fd: number, level: number, name: number, value: number, what: string): void {
  check(lib().setsockopt(fd, level, name, int32(value), 4), "setsockopt", what);
}

/** SO_MARK: packets of this socket carry `mark` (ztunnel's own traffic skips capture). */
export function setMark(socket: net.Socket | number, mark: number): void {
  setIntOpt(socketFd(socket), SOL_SOCKET, SO_MARK, mark, `SO_MARK=${mark}`);
}

/** IP_TRANSPARENT (or IPV6_TRANSPARENT): allows binding a non-local source address. */
export function setTransparent(socket: net.Socket | number, family: 4 | 6 = 4): void {
  const fd = socketFd(socket);
  if (family === 6) setIntOpt(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT");
  else setIntOpt(fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
}

/** SO_MARK as currently set on the socket. */
export function getMark(socket: net.Socket | number): number {
  const val = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  check(lib().getsockopt(socketFd(socket), SOL_SOCKET, SO_MARK, val, len), "getsockopt", "SO_MARK");
  return val.readInt32LE(0);
}

/**
 * The destination the client dialled before an iptables REDIRECT/DNAT
 * rewrote it (SO_ORIGINAL_DST on an accepted socket).
 */
export function originalDst(socket: net.Socket | number): SockAddr {
  const fd = socketFd(socket);
  const six =
    typeof socket !== "number" &&
    socket.localAddress !== undefined &&
    net.isIPv6(socket.localAddress) &&
    !socket.localAddress.startsWith("::ffff:");
  const val = Buffer.alloc(28);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(val.length, 0);
  check(
    lib().getsockopt(fd, six ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, val, len),
    "getsockopt",
    "SO_ORIGINAL_DST",
  );
  return decodeSockaddr(val);
}

// ---------- sockets inside a namespace ----------

export interface ListenOptions {
  /** Bind address; default 0.0.0.0. */
  host?: string;
  port: number;
  /** "tcp" (default: bound and listening) or "udp" (bound). */
  protocol?: "tcp" | "udp";
  /** SO_REUSEPORT, so a second process (a ztunnel upgrade) can listen alongside. */
  reusePort?: boolean;
  transparent?: boolean;
  mark?: number;
  backlog?: number;
}

/**
 * Creates a listening TCP (or bound UDP) socket inside the namespace and
 * returns its fd: `net.createServer().listen({ fd })` or
 * `dgram.createSocket("udp4").bind({ fd })` then serve it from here.
 */
export function listenInNetns(netns: string | Netns, opts: ListenOptions): number {
  const host = opts.host ?? "0.0.0.0";
  const family = net.isIPv6(host) ? 6 : 4;
  const addr = encodeSockaddr(host, opts.port);
  const udp = opts.protocol === "udp";
  const what = `${udp ? "udp" : "tcp"} ${host}:${opts.port} in ${typeof netns === "string" ? netns : netns.path}`;
  return withNetns(netns, () => {
    const c = lib();
    const fd = check(
      c.socket(
        family === 6 ? AF_INET6 : AF_INET,
        (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
        0,
      ),
      "socket",
      what,
    );
    try {
      setIntOpt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
      if (opts.reusePort) setIntOpt(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
      if (opts.transparent) setTransparent(fd, family);
      if (opts.mark !== undefined) setMark(fd, opts.mark);
      check(c.bind(fd, addr, addr.length), "bind", what);
      if (!udp) check(c.listen(fd, opts.backlog ?? 511), "listen", what);
      return fd;
    } catch (err) {
      c.close(fd);
      throw err;
    }
  });
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** Source address to bind (with `transparent`, may be another host's IP). */
  localAddress?: string;
  localPort?: number;
  transparent?: boolean;
  mark?: number;
  /** Fails the promise with ETIMEDOUT after this long (default 10 s). */
  timeoutMs?: number;
}

/**
 * Opens a TCP connection from inside the namespace. The socket is created
 * (and bound) in the namespace, then Node's own connect runs on it from the
 * main loop: routing uses the socket's namespace, not the thread's.
 * Resolves once connected; rejects with the connect error (ECONNREFUSED...).
 */
export function connectInNetns(netns: string | Netns, opts: ConnectOptions): Promise<net.Socket> {
  let socket: net.Socket;
  try {
    socket = connectInNetnsNow(netns, opts);
  } catch (err) {
    return Promise.reject(err);
  }
  const what = `tcp to ${opts.host}:${opts.port} from ${typeof netns === "string" ? netns : netns.path}`;
  return new Promise<net.Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      const e = new NetnsSyscallError("connect", os.constants.errno.ETIMEDOUT, what);
      socket.destroy();
      reject(e);
    }, opts.timeoutMs ?? 10_000);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

/**
 * Like connectInNetns, but returns the socket at once with the connect in
 * progress: "connect" or "error" follow, as with net.connect. For callers
 * (the inbound proxy) that take a socket synchronously and time out themselves.
 * Throws only when the socket cannot be created or bound in the namespace.
 */
export function connectInNetnsNow(netns: string | Netns, opts: ConnectOptions): net.Socket {
  const family = net.isIPv6(opts.host) ? 6 : 4;
  const what = `tcp to ${opts.host}:${opts.port} from ${typeof netns === "string" ? netns : netns.path}`;
  const fd = withNetns(netns, () => {
    const c = lib();
    const s = check(
      c.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      "socket",
      what,
    );
    try {
      if (opts.transparent) setTransparent(s, family);
      if (opts.mark !== undefined) setMark(s, opts.mark);
      if (opts.localAddress !== undefined || opts.localPort !== undefined) {
        const local = encodeSockaddr(
          opts.localAddress ?? (family === 6 ? "::" : "0.0.0.0"),
          opts.localPort ?? 0,
        );
        check(c.bind(s, local, local.length), "bind", `${what}, source ${opts.localAddress ?? "*"}`);
      }
      return s;
    } catch (err) {
      c.close(s);
      throw err;
    }
  });
  // manualStart: do not start reading before the connect completes (an
  // unconnected socket would read EOF and end itself).
  const socket = new net.Socket({
    fd,
    readable: true,
    writable: true,
    manualStart: true,
  } as net.SocketConstructorOpts);
  socket.connect({ host: opts.host, port: opts.port });
  return socket;
}

/**
 * Blocking-free connect done entirely with syscalls inside the namespace;
 * returns the fd with the connect in progress. Used by tests and by callers
 * that hand the fd to another process. Most callers want `connectInNetns`.
 */
export function startConnectInNetns(netns: string | Netns, opts: ConnectOptions): number {
  const family = net.isIPv6(opts.host) ? 6 : 4;
  const addr = encodeSockaddr(opts.host, opts.port);
  return withNetns(netns, () => {
    const c = lib();
    const s = check(
      c.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      "socket",
      "connect",
    );
    if (opts.mark !== undefined) setMark(s, opts.mark);
    if (c.connect(s, addr, addr.length) < 0) {
      const errno = koffi.errno();
      if (errno !== EINPROGRESS) {
        c.close(s);
        throw new NetnsSyscallError("connect", errno, `${opts.host}:${opts.port}`);
      }
    }
    return s;
  });
}

/** Closes a raw fd returned by listenInNetns when it was never handed to Node. */
export function closeFd(fd: number): void {
  lib().close(fd);
}

// ---------- privileges ----------

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

/** Effective capabilities of this process, from /proc/self/status. */
function effectiveCaps(): bigint {
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** Whether this process may create namespaces, enter them and change their rules. */
export function hasNetnsPrivileges(): boolean {
  if (process.platform !== "linux") return false;
  const caps = effectiveCaps();
  return (caps & (1n << BigInt(CAP_NET_ADMIN))) !== 0n && (caps & (1n << BigInt(CAP_SYS_ADMIN))) !== 0n;
}

/** Throws a clear error when the process cannot manage network namespaces. */
export function requireNetnsPrivileges(what = "this command"): void {
  if (hasNetnsPrivileges()) return;
  throw new AmbitError(
    "NETNS_PRIVILEGE",
    `${what} creates network namespaces, veth links and iptables rules, which needs root ` +
      "(or the CAP_NET_ADMIN and CAP_SYS_ADMIN capabilities). Run it with sudo, or as root in a container " +
      "started with --cap-add NET_ADMIN --cap-add SYS_ADMIN.",
  );
}
