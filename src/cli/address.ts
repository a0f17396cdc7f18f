/** A network address split into its parts. IPv6 hosts are kept without brackets. */
export interface Address {
  host: string;
  port: number;
}

/** Thrown by parseAddress; `reason` says what is wrong without repeating the input. */
export class AddressError extends Error {
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(`bad address "${input}": ${reason}`);
    this.name = "AddressError";
  }
}

export const PORT_MIN = 1;
export const PORT_MAX = 65535;

// A DNS name or an IPv4 address: labels of letters, digits, '-' and '_', separated by dots.
const HOSTNAME_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$/;

/**
 * Parses "host:port" or "[ipv6]:port". The port is a decimal integer in 1..65535; the host
 * is a DNS name, an IPv4 address or a bracketed IPv6 address, never empty.
 *
 * @example parseAddress("h1:7001") // { host: "h1", port: 7001 }
 * @example parseAddress("[::1]:7001") // { host: "::1", port: 7001 }
 */
export function parseAddress(input: string): Address {
  if (input === "")
    throw new AddressError(input, "the address is empty; give host:port, like 127.0.0.1:7001");
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/.exec(input);
  if (scheme) {
    throw new AddressError(
      input,
      `give host:port without "${scheme[1]}://"${scheme[2] ? `, like ${scheme[2]}` : ""}`,
    );
  }
  const colon = input.lastIndexOf(":");
  if (colon < 0) throw new AddressError(input, "expected host:port");
  const hostPart = input.slice(0, colon);
  const port = parsePort(input, input.slice(colon + 1));
  if (hostPart.startsWith("[")) {
    if (!hostPart.endsWith("]")) throw new AddressError(input, "IPv6 host is missing its closing ]");
    const host = hostPart.slice(1, -1);
    if (!isIPv6(host)) throw new AddressError(input, `"${host}" is not an IPv6 address`);
    return { host, port };
  }
  if (hostPart === "") throw new AddressError(input, "host is empty");
  if (hostPart.includes(":")) {
    throw new AddressError(input, "an IPv6 host must be in brackets, like [::1]:7001");
  }
  if (hostPart.length > 253 || !HOSTNAME_RE.test(hostPart)) {
    throw new AddressError(input, `"${hostPart}" is not a valid host name or IPv4 address`);
  }
  return { host: hostPart, port };
}

function parsePort(input: string, text: string): number {
  if (text === "") throw new AddressError(input, "port is empty");
  if (!/^[0-9]+$/.test(text)) throw new AddressError(input, `port "${text}" is not a number`);
  const port = Number(text);
  if (port < PORT_MIN || port > PORT_MAX) {
    throw new AddressError(input, `port ${port} is outside ${PORT_MIN}..${PORT_MAX}`);
  }
  return port;
}

const IPV4_PART = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;
const IPV6_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const IPV6_ZONE = /^[0-9A-Za-z.:-]+$/;

/**
 * Whether text is an IPv6 address in its text forms (RFC 4291 2.2: eight groups, one "::",
 * a trailing dotted IPv4, a %zone), as node:net's isIPv6 says; written here because loading
 * node:net costs a CLI call about 15 ms of start-up.
 */
export function isIPv6(text: string): boolean {
  const percent = text.indexOf("%");
  if (percent >= 0 && !IPV6_ZONE.test(text.slice(percent + 1))) return false;
  const address = percent >= 0 ? text.slice(0, percent) : text;
  const halves = address.split("::");
  if (halves.length > 2) return false;
  const groupsOf = (half: string) => (half === "" ? [] : half.split(":"));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const last = halves.length === 2 ? tail : head;
  let count = head.length + tail.length;
  if (last.length > 0 && last[last.length - 1]!.includes(".")) {
    const v4 = last.pop()!.split(".");
    if (v4.length !== 4 || !v4.every((p) => IPV4_PART.test(p))) return false;
    count += 1; // the dotted IPv4 stands for two groups
  }
  if (![...head, ...tail].every((g) => IPV6_GROUP.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}
