// The few etcd v3 gRPC messages the etcd benchmark needs, built with protobufjs reflection
// (field numbers from etcd's api/etcdserverpb/rpc.proto), and gRPC length-prefixed framing.
import protobuf from "protobufjs";

const root = protobuf.Root.fromJSON({
  nested: {
    etcdserverpb: {
      nested: {
        ResponseHeader: {
          fields: {
            clusterId: { type: "uint64", id: 1 },
            memberId: { type: "uint64", id: 2 },
            revision: { type: "int64", id: 3 },
            raftTerm: { type: "uint64", id: 4 },
          },
        },
        KeyValue: {
          fields: {
            key: { type: "bytes", id: 1 },
            createRevision: { type: "int64", id: 2 },
            modRevision: { type: "int64", id: 3 },
            version: { type: "int64", id: 4 },
            value: { type: "bytes", id: 5 },
            lease: { type: "int64", id: 6 },
          },
        },
        PutRequest: { fields: { key: { type: "bytes", id: 1 }, value: { type: "bytes", id: 2 } } },
        PutResponse: { fields: { header: { type: "ResponseHeader", id: 1 } } },
        RangeRequest: {
          fields: { key: { type: "bytes", id: 1 }, serializable: { type: "bool", id: 7 } },
        },
        RangeResponse: {
          fields: {
            header: { type: "ResponseHeader", id: 1 },
            kvs: { rule: "repeated", type: "KeyValue", id: 2 },
            more: { type: "bool", id: 3 },
            count: { type: "int64", id: 4 },
          },
        },
      },
    },
  },
});

export const PutRequest = root.lookupType("etcdserverpb.PutRequest");
export const RangeRequest = root.lookupType("etcdserverpb.RangeRequest");
export const RangeResponse = root.lookupType("etcdserverpb.RangeResponse");
export const PUT_PATH = "/etcdserverpb.KV/Put";
export const RANGE_PATH = "/etcdserverpb.KV/Range";

/** gRPC message framing: 1 byte compressed flag (0) + u32 big-endian length + message. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.byteLength);
  new DataView(out.buffer).setUint32(1, message.byteLength, false);
  out.set(message, 5);
  return out;
}

/** The message of a single-message gRPC response body; throws when the framing is wrong. */
export function grpcUnframe(body: Uint8Array): Uint8Array {
  if (body.byteLength < 5)
    throw new Error(`gRPC body of ${body.byteLength} bytes is shorter than its 5-byte prefix`);
  if (body[0] !== 0) throw new Error("compressed gRPC responses are not supported");
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1, false);
  if (5 + length > body.byteLength)
    throw new Error(`gRPC frame says ${length} bytes, body has ${body.byteLength - 5}`);
  return body.subarray(5, 5 + length);
}

export function encodePut(key: Uint8Array, value: Uint8Array): Uint8Array {
  return grpcFrame(PutRequest.encode({ key, value }).finish());
}

/** A Range of one key; serializable=false makes it linearizable (a ReadIndex round on the leader). */
export function encodeRange(key: Uint8Array, serializable = false): Uint8Array {
  return grpcFrame(RangeRequest.encode({ key, serializable }).finish());
}
