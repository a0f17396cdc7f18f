// Test certificates made at test time with openssl (never committed): a CA, leaf certificates
// for 127.0.0.1 signed by it (valid, or expired in 2020), and a second CA with its own leaf.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pem {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  keyFile: string;
}

export interface TestPki {
  dir: string;
  ca: Pem;
  /** Valid now, for 127.0.0.1 and localhost, usable by a server and by a client. */
  leaf: Pem;
  /** Signed by `ca`, valid only during 2020-01-01..02. */
  expired: Pem;
  /** A second CA and a leaf it signed (trusted by nobody here). */
  otherCa: Pem;
  otherLeaf: Pem;
  remove(): void;
}

const CA_CONFIG = `[ca]
default_ca = ca_section
[ca_section]
database = index.txt
serial = serial
new_certs_dir = .
default_md = sha256
policy = policy_any
copy_extensions = copy
[policy_any]
commonName = supplied
[leaf]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
`;

/** Makes a fresh set of certificates in a temporary directory (about half a second). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "longboat-pki-"));
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const pem = (name: string): Pem => ({
    cert: readFileSync(join(dir, `${name}.pem`)),
    key: readFileSync(join(dir, `${name}.key`)),
    certFile: join(dir, `${name}.pem`),
    keyFile: join(dir, `${name}.key`),
  });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const makeCa = (name: string) => {
    openssl(
      "req",
      "-x509",
      ...ec,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
    );
    return pem(name);
  };
  writeFileSync(join(dir, "ca.cnf"), CA_CONFIG);
  let serial = 0x1000;
  const makeLeaf = (name: string, ca: string, dates: string[]) => {
    writeFileSync(join(dir, "index.txt"), "");
    writeFileSync(join(dir, "serial"), `${(serial++).toString(16)}\n`);
    openssl("req", ...ec, "-subj", "/CN=127.0.0.1", "-keyout", `${name}.key`, "-out", `${name}.csr`);
    openssl(
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-cert",
      `${ca}.pem`,
      "-keyfile",
      `${ca}.key`,
      "-in",
      `${name}.csr`,
      "-out",
      `${name}.pem`,
      "-extensions",
      "leaf",
      "-notext",
      ...dates,
    );
    return pem(name);
  };
  const ca = makeCa("ca");
  const otherCa = makeCa("other-ca");
  return {
    dir,
    ca,
    otherCa,
    leaf: makeLeaf("leaf", "ca", ["-days", "2"]),
    expired: makeLeaf("expired", "ca", ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]),
    otherLeaf: makeLeaf("other-leaf", "other-ca", ["-days", "2"]),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
