/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha): lets grpcurl, `buf curl` and
 * other tools list the services and fetch the schema from the server itself. The schema is
 * the FileDescriptorSet that scripts/gen-proto.ts compiles from proto/ into src/pb.
 */
import protobuf from "protobufjs/minimal.js";
import { FILE_DESCRIPTOR_SET_BASE64 } from "../../pb/descriptors.ts";
import { grpc } from "../../pb/longboat.js";
import { bidiStreaming, type ServiceDef } from "./service.ts";

const pb = grpc.reflection.v1;

export const REFLECTION_V1 = "grpc.reflection.v1.ServerReflection";
export const REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection";

/** Files of a FileDescriptorSet, indexed by name and by every symbol they define. */
export class DescriptorIndex {
  /** File name → serialized FileDescriptorProto. */
  readonly files = new Map<string, Uint8Array>();
  private readonly imports = new Map<string, string[]>();
  private readonly symbols = new Map<string, string>();
  /** Fully-qualified message names (for all_extension_numbers_of_type). */
  readonly messages = new Set<string>();

  constructor(fileDescriptorSet: Uint8Array) {
    const reader = protobuf.Reader.create(fileDescriptorSet);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag >>> 3 === 1 && (tag & 7) === 2) this.addFile(reader.bytes());
      else reader.skipType(tag & 7);
    }
  }

  /** The file defining a fully-qualified symbol (package.Message, package.Service.Method, …). */
  fileOfSymbol(symbol: string): string | undefined {
    return this.symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /** The file and every file it imports, directly or not; each once, the file first. */
  withDependencies(name: string): Uint8Array[] {
    const seen = new Set<string>();
    const order: string[] = [];
    const pending = [name];
    while (pending.length > 0) {
      const next = pending.shift()!;
      if (seen.has(next) || !this.files.has(next)) continue;
      seen.add(next);
      order.push(next);
      pending.push(...(this.imports.get(next) ?? []));
    }
    return order.map((n) => this.files.get(n)!);
  }

  private addFile(bytes: Uint8Array): void {
    const file = decodeFields(bytes);
    const name = file.string(1) ?? "";
    const pkg = file.string(2) ?? "";
    this.files.set(name, bytes);
    this.imports.set(name, file.strings(3));
    const prefix = pkg === "" ? "" : `${pkg}.`;
    for (const m of file.messages(4)) this.addMessage(name, prefix, m);
    for (const e of file.messages(5)) this.symbols.set(`${prefix}${e.string(1)}`, name);
    for (const s of file.messages(6)) {
      const service = `${prefix}${s.string(1)}`;
      this.symbols.set(service, name);
      for (const m of s.messages(2)) this.symbols.set(`${service}.${m.string(1)}`, name);
    }
  }

  private addMessage(file: string, prefix: string, message: Fields): void {
    const full = `${prefix}${message.string(1)}`;
    this.symbols.set(full, file);
    this.messages.add(full);
    for (const nested of message.messages(3)) this.addMessage(file, `${full}.`, nested);
    for (const e of message.messages(4)) this.symbols.set(`${full}.${e.string(1)}`, file);
  }
}

/** The length-delimited fields of one message, by field number (enough for descriptors). */
interface Fields {
  string(n: number): string | undefined;
  strings(n: number): string[];
  messages(n: number): Fields[];
}

function decodeFields(bytes: Uint8Array): Fields {
  const byNumber = new Map<number, Uint8Array[]>();
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if ((tag & 7) !== 2) {
      reader.skipType(tag & 7);
      continue;
    }
    const list = byNumber.get(tag >>> 3) ?? [];
    list.push(reader.bytes());
    byNumber.set(tag >>> 3, list);
  }
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    string: (n) => {
      const list = byNumber.get(n);
      return list ? text(list[list.length - 1]!) : undefined;
    },
    strings: (n) => (byNumber.get(n) ?? []).map(text),
    messages: (n) => (byNumber.get(n) ?? []).map(decodeFields),
  };
}

type ReflectionRequest = ReturnType<typeof pb.ServerReflectionRequest.toObject>;

const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/**
 * The reflection service under `name` (v1 or v1alpha), answering from index and listing
 * `served` (the services of the server, the reflection service included).
 */
export function reflectionService(name: string, index: DescriptorIndex, served: () => string[]): ServiceDef {
  const answer = (req: ReflectionRequest): Record<string, unknown> => {
    const base = { validHost: req.host ?? "", originalRequest: req };
    const error = (code: number, message: string) => ({
      ...base,
      errorResponse: { errorCode: code, errorMessage: message },
    });
    const files = (file: string | undefined, what: string) =>
      file === undefined || !index.files.has(file)
        ? error(NOT_FOUND, `${what} not found`)
        : { ...base, fileDescriptorResponse: { fileDescriptorProto: index.withDependencies(file) } };
    if (req.listServices !== undefined && req.listServices !== null) {
      return { ...base, listServicesResponse: { service: served().map((n) => ({ name: n })) } };
    }
    if (req.fileByFilename != null) return files(req.fileByFilename, `file ${req.fileByFilename}`);
    if (req.fileContainingSymbol != null) {
      const symbol = req.fileContainingSymbol;
      return files(index.fileOfSymbol(symbol), `symbol ${symbol}`);
    }
    if (req.fileContainingExtension != null) {
      const ext = req.fileContainingExtension;
      return error(NOT_FOUND, `extension ${ext.extensionNumber} of ${ext.containingType} not found`);
    }
    if (req.allExtensionNumbersOfType != null) {
      const type = req.allExtensionNumbersOfType.replace(/^\./, "");
      if (!index.messages.has(type)) return error(NOT_FOUND, `message type ${type} not found`);
      return { ...base, allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: [] } };
    }
    return error(INVALID_ARGUMENT, "the request names no question (message_request is empty)");
  };
  return {
    name,
    methods: {
      ServerReflectionInfo: bidiStreaming<ReflectionRequest>(
        pb.ServerReflectionRequest,
        pb.ServerReflectionResponse,
        async function* (requests) {
          for await (const req of requests) yield answer(req);
        },
        (input) => oneofOnly(input),
      ),
    },
  };
}

/** A decoded request keeps only the oneof member that was set (toObject fills every default). */
function oneofOnly(input: unknown): ReflectionRequest {
  const message = pb.ServerReflectionRequest.fromObject(input as Record<string, unknown>);
  return pb.ServerReflectionRequest.toObject(message, { oneofs: true }) as ReflectionRequest;
}

/** The index of this build's schema (src/pb/descriptors.ts), made once. */
let builtIn: DescriptorIndex | undefined;
export function builtInDescriptors(): DescriptorIndex {
  builtIn ??= new DescriptorIndex(new Uint8Array(Buffer.from(FILE_DESCRIPTOR_SET_BASE64, "base64")));
  return builtIn;
}
