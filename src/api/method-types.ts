/**
 * The NodeHost API's service name and the protobuf classes of each method's request and
 * response: all an API client needs (src/api/client.ts), without the server's handlers.
 */
import { longboat } from "../pb/longboat.js";
import type { PbType } from "./rpc/service.ts";
import type { MethodName } from "./schemas.ts";

const pb = longboat.nodehost.v1;

export const SERVICE = "longboat.nodehost.v1.NodeHostService";

/** The request and response message classes of every method of NodeHostService. */
export const METHOD_TYPES: Record<MethodName, { request: PbType; response: PbType }> = {
  GetSession: { request: pb.GetSessionRequest, response: pb.GetSessionResponse },
  CloseSession: { request: pb.CloseSessionRequest, response: pb.CloseSessionResponse },
  Propose: { request: pb.ProposeRequest, response: pb.ProposeResponse },
  Read: { request: pb.ReadRequest, response: pb.ReadResponse },
  StaleRead: { request: pb.StaleReadRequest, response: pb.StaleReadResponse },
  AddReplica: { request: pb.AddReplicaRequest, response: pb.AddReplicaResponse },
  DeleteReplica: { request: pb.DeleteReplicaRequest, response: pb.DeleteReplicaResponse },
  GetMembership: { request: pb.GetMembershipRequest, response: pb.GetMembershipResponse },
  TransferLeader: { request: pb.TransferLeaderRequest, response: pb.TransferLeaderResponse },
  RequestSnapshot: { request: pb.RequestSnapshotRequest, response: pb.RequestSnapshotResponse },
  Status: { request: pb.StatusRequest, response: pb.StatusResponse },
  RemoveData: { request: pb.RemoveDataRequest, response: pb.RemoveDataResponse },
  Compact: { request: pb.CompactRequest, response: pb.CompactResponse },
  QueryRaftLog: { request: pb.QueryRaftLogRequest, response: pb.QueryRaftLogResponse },
};
