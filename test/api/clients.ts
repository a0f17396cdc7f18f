// Clients we did not write: @connectrpc/connect-node's Connect, gRPC and gRPC-Web transports,
// driven by descriptors built at run time from this build's FileDescriptorSet (no codegen).
import type { Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { create, createFileRegistry, type DescService, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { FILE_DESCRIPTOR_SET_BASE64 } from "../../src/pb/descriptors.ts";

/** A streaming test service over NodeHost messages (served by test/api/protocols.test.ts). */
const STREAM_FILE = create(FileDescriptorProtoSchema, {
  name: "longboat/test/v1/stream.proto",
  package: "longboat.test.v1",
  dependency: ["longboat/nodehost/v1/nodehost.proto"],
  syntax: "proto3",
  service: [
    {
      name: "StreamService",
      method: [
        {
          name: "Count",
          inputType: ".longboat.nodehost.v1.ReadRequest",
          outputType: ".longboat.nodehost.v1.ReadResponse",
          serverStreaming: true,
        },
        {
          name: "Echo",
          inputType: ".longboat.nodehost.v1.ReadRequest",
          outputType: ".longboat.nodehost.v1.ReadResponse",
          clientStreaming: true,
          serverStreaming: true,
        },
      ],
    },
  ],
});

const set = fromBinary(FileDescriptorSetSchema, Buffer.from(FILE_DESCRIPTOR_SET_BASE64, "base64"));
set.file.push(STREAM_FILE);
const registry = createFileRegistry(set);

export function service(name: string): DescService {
  const s = registry.getService(name);
  if (!s) throw new Error(`no service ${name} in the descriptor set`);
  return s;
}

export interface ClientKind {
  name: string;
  transport(baseUrl: string, opts?: Record<string, unknown>): Transport;
  /** Whether it can do client streaming (bidi) — HTTP/2 only, and not gRPC-Web. */
  bidi: boolean;
}

/** Every protocol, HTTP version and codec a client may use. */
export const CLIENT_KINDS: ClientKind[] = [
  ...(["1.1", "2"] as const).flatMap((httpVersion) =>
    [true, false].map((binary) => ({
      name: `Connect over HTTP/${httpVersion} (${binary ? "proto" : "json"})`,
      bidi: httpVersion === "2",
      transport: (baseUrl: string, o: Record<string, unknown> = {}) =>
        createConnectTransport({ baseUrl, httpVersion, useBinaryFormat: binary, ...o } as never),
    })),
  ),
  ...[true, false].map((binary) => ({
    name: `gRPC over HTTP/2 (${binary ? "proto" : "json"})`,
    bidi: true,
    transport: (baseUrl: string, o: Record<string, unknown> = {}) =>
      createGrpcTransport({ baseUrl, useBinaryFormat: binary, ...o } as never),
  })),
  ...(["1.1", "2"] as const).map((httpVersion) => ({
    name: `gRPC-Web over HTTP/${httpVersion} (proto)`,
    bidi: false,
    transport: (baseUrl: string, o: Record<string, unknown> = {}) =>
      createGrpcWebTransport({ baseUrl, httpVersion, useBinaryFormat: true, ...o } as never),
  })),
];
