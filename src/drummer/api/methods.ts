import type { PbType } from "../../api/rpc/service.ts";
import { longboat } from "../../pb/longboat.js";
import type { DrummerMethod } from "./schemas.ts";

const pb = longboat.drummer.v1;

export const DRUMMER_SERVICE = "longboat.drummer.v1.DrummerService";

/** The request and response message classes of every method of DrummerService. */
export const DRUMMER_METHOD_TYPES: Record<DrummerMethod, { request: PbType; response: PbType }> = {
  Report: { request: pb.ReportRequest, response: pb.ReportResponse },
  CreateShard: { request: pb.CreateShardRequest, response: pb.CreateShardResponse },
  SetRegions: { request: pb.SetRegionsRequest, response: pb.SetRegionsResponse },
  Bootstrap: { request: pb.BootstrapRequest, response: pb.BootstrapResponse },
  GetDeployment: { request: pb.GetDeploymentRequest, response: pb.GetDeploymentResponse },
  ListNodeHosts: { request: pb.ListNodeHostsRequest, response: pb.ListNodeHostsResponse },
  ListShards: { request: pb.ListShardsRequest, response: pb.ListShardsResponse },
  ListDecisions: { request: pb.ListDecisionsRequest, response: pb.ListDecisionsResponse },
  ListDrummers: { request: pb.ListDrummersRequest, response: pb.ListDrummersResponse },
  AddDrummer: { request: pb.AddDrummerRequest, response: pb.AddDrummerResponse },
  RemoveDrummer: { request: pb.RemoveDrummerRequest, response: pb.RemoveDrummerResponse },
};
