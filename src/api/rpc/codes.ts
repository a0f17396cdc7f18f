/**
 * Connect codes as gRPC status numbers and back. The names and numbers are gRPC's
 * (the Connect protocol uses the same codes written in snake_case).
 */
import { type ConnectCode, isConnectCode } from "../errors.ts";

const GRPC_NUMBERS: Record<ConnectCode, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};

const BY_NUMBER = new Map<number, ConnectCode>(
  Object.entries(GRPC_NUMBERS).map(([name, n]) => [n, name as ConnectCode]),
);

/** The gRPC status number of a Connect code (0 is OK and has no Connect code). */
export function grpcStatusOf(code: ConnectCode): number {
  return GRPC_NUMBERS[code];
}

/** The Connect code of a gRPC status number; "unknown" for a number gRPC does not define. */
export function connectCodeOf(status: number): ConnectCode | "ok" {
  if (status === 0) return "ok";
  return BY_NUMBER.get(status) ?? "unknown";
}

export { isConnectCode };
