/**
 * Reading the API's PEM files named by flags, with errors that name the flag and the file.
 */
import type { ClientTls } from "../api/client.ts";
import type { ApiTlsMaterial } from "../api/server.ts";
import type { ForwardTls } from "../api/types.ts";
import type { DrummerSecurity } from "../drummer/client.ts";
import type { ApiClientConfig, ApiServerConfig, NodeHostConfig } from "./config.ts";
import { ConfigError } from "./merge.ts";

/** The contents of a PEM file; ConfigError when it cannot be read or holds no PEM block. */
export function readPem(path: string, flag: string): Buffer {
  // node:fs only when a file is named: a plain `cmd` call does not pay for loading it.
  const { readFileSync } = process.getBuiltinModule("node:fs");
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ConfigError(`${flag} ${path} cannot be read: ${(e as Error).message}`);
  }
  if (!bytes.toString("latin1").includes("-----BEGIN ")) {
    throw new ConfigError(`${flag} ${path} is not a PEM file (no "-----BEGIN" line)`);
  }
  return bytes;
}

/** The API server's TLS and the TLS of requests it forwards to other NodeHosts; undefined: cleartext. */
export function apiServerTls(
  config: ApiServerConfig,
): { serve: ApiTlsMaterial; forward: ForwardTls } | undefined {
  if (config.apiTlsCert === undefined || config.apiTlsKey === undefined) return undefined;
  const cert = readPem(config.apiTlsCert, "--api-tls-cert");
  const key = readPem(config.apiTlsKey, "--api-tls-key");
  const ca = config.apiTlsCa === undefined ? undefined : readPem(config.apiTlsCa, "--api-tls-ca");
  return {
    serve: { cert, key, ...(ca ? { ca } : {}) },
    // Forwarded requests trust the deployment's CA and present this host's certificate, which a
    // leader requiring client certificates (the same --api-tls-ca) accepts.
    forward: { cert, key, ...(ca ? { ca } : {}) },
  };
}

/** The client TLS of cmd and backup; undefined: plain http. */
export function apiClientTls(config: ApiClientConfig): ClientTls | undefined {
  const https = config.tlsCa !== undefined || config.tlsCert !== undefined || config.insecureSkipVerify;
  if (!https) return undefined;
  return {
    ...(config.tlsCa === undefined ? {} : { ca: readPem(config.tlsCa, "--tls-ca") }),
    ...(config.tlsCert === undefined || config.tlsKey === undefined
      ? {}
      : { cert: readPem(config.tlsCert, "--tls-cert"), key: readPem(config.tlsKey, "--tls-key") }),
    insecureSkipVerify: config.insecureSkipVerify,
  };
}

/** How the master client of `nodehost --master` calls the drummers: token and https when given. */
export function masterSecurity(config: NodeHostConfig): DrummerSecurity {
  const https = config.masterTlsCa !== undefined || config.masterTlsCert !== undefined;
  return {
    ...(config.masterToken === undefined ? {} : { token: config.masterToken }),
    ...(https
      ? {
          tls: {
            ...(config.masterTlsCa === undefined
              ? {}
              : { ca: readPem(config.masterTlsCa, "--master-tls-ca") }),
            ...(config.masterTlsCert === undefined || config.masterTlsKey === undefined
              ? {}
              : {
                  cert: readPem(config.masterTlsCert, "--master-tls-cert"),
                  key: readPem(config.masterTlsKey, "--master-tls-key"),
                }),
          },
        }
      : {}),
  };
}
