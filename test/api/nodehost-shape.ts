// Compile-time check run by `tsc --noEmit -p .` (not a bun test): the real NodeHost satisfies
// the API's NodeHostLike structurally, so createNodeHostApi({ nodehost }) accepts it.
import type { NodeHostLike } from "../../src/api/types.ts";
import type { NodeHost } from "../../src/nodehost.ts";

type Satisfies<T extends NodeHostLike> = T;
export type RealNodeHostFits = Satisfies<NodeHost>;
