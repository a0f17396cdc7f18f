import { describe, expect, test } from "bun:test";
import { AddressError, isIPv6, parseAddress } from "../../src/cli/address.ts";

describe("parseAddress", () => {
  test("splits a host name and port", () => {
    expect(parseAddress("h1:7001")).toEqual({ host: "h1", port: 7001 });
  });

  test("accepts an IPv4 host", () => {
    expect(parseAddress("127.0.0.1:8001")).toEqual({ host: "127.0.0.1", port: 8001 });
  });

  test("accepts a bracketed IPv6 host and returns it without brackets", () => {
    expect(parseAddress("[::1]:7001")).toEqual({ host: "::1", port: 7001 });
  });

  test("accepts the port bounds 1 and 65535", () => {
    expect(parseAddress("h:1").port).toBe(1);
    expect(parseAddress("h:65535").port).toBe(65535);
  });

  const bad: [string, string][] = [
    ["h1", 'bad address "h1": expected host:port'],
    [":7001", 'bad address ":7001": host is empty'],
    ["h1:", 'bad address "h1:": port is empty'],
    ["h1:0", 'bad address "h1:0": port 0 is outside 1..65535'],
    ["h1:65536", 'bad address "h1:65536": port 65536 is outside 1..65535'],
    ["h1:http", 'bad address "h1:http": port "http" is not a number'],
    ["h1:-1", 'bad address "h1:-1": port "-1" is not a number'],
    ["::1:7001", 'bad address "::1:7001": an IPv6 host must be in brackets, like [::1]:7001'],
    ["[::1:7001", 'bad address "[::1:7001": IPv6 host is missing its closing ]'],
    ["[h1]:7001", 'bad address "[h1]:7001": "h1" is not an IPv6 address'],
    ["h 1:7001", 'bad address "h 1:7001": "h 1" is not a valid host name or IPv4 address'],
  ];
  for (const [input, message] of bad) {
    test(`refuses "${input}"`, () => {
      expect(() => parseAddress(input)).toThrow(
        new AddressError(input, message.slice(message.indexOf(": ") + 2)),
      );
      expect(() => parseAddress(input)).toThrow(message);
    });
  }
});

describe("isIPv6", () => {
  // The same answers as node:net's isIPv6 (the CLI does not load node:net: start-up time).
  const samples = [
    "::",
    "::1",
    "1::",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1::2::3",
    ":::",
    "1:::2",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:",
    "fe80::1%eth0",
    "fe80::1%",
    "fe80::1%eth 0",
    "::ffff:192.168.0.1",
    "::ffff:256.0.0.1",
    "::ffff:01.2.3.4",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "1.2.3.4",
    "::1.2.3.4",
    "1.2.3.4::",
    "1::1.2.3",
    "12345::",
    "abcd:EF01::",
    "g::",
    "",
    " ::1",
    "[::1]",
    "2001:db8:0:0:0:0:2:1",
    "2001:db8::2:1",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",
  ];
  test("agrees with node:net on every sample", () => {
    const { isIPv6: nodeIsIPv6 } = process.getBuiltinModule("node:net");
    expect(samples.map((s) => [s, isIPv6(s)])).toEqual(samples.map((s) => [s, nodeIsIPv6(s)]));
  });
});
