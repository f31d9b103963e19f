// What a queued claim costs in memory: a national site queues a million of them. Most specs
// have no command, environment, user data, SSH keys, labels, ports, volumes, devices or
// networks, and their resources are one of a few flavors'; a protobuf spec still holds a new
// empty list, map and buffer for each, about a third of a queued claim. Here those are one
// shared frozen value, and equal resources one frozen object (for the first few thousand
// distinct ones). Nothing changes a claim's spec or resources in place (a change makes a new
// record), so the sharing is safe; frozen, a mistake throws instead of changing every claim.
// Pure.
import type { InstanceSpec, Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Res } from './model';

const EMPTY_LIST: never[] = Object.freeze([]) as unknown as never[];
const EMPTY_MAP: Record<string, string> = Object.freeze({}) as Record<string, string>;
const EMPTY_BYTES = Buffer.alloc(0);

/** An empty list shared by every claim (devices, victims). */
export const noneOf = <T>(): T[] => EMPTY_LIST;

/** Equal values as one frozen object, for at most `max` distinct ones (beyond, as given). */
class Interned<T extends object> {
  private readonly known = new Map<string, T>();

  constructor(
    private readonly key: (value: T) => string,
    private readonly max = 4096,
  ) {}

  of(value: T): T {
    const key = this.key(value);
    const known = this.known.get(key);
    if (known) return known;
    if (this.known.size >= this.max) return value;
    const frozen = Object.freeze({ ...value });
    this.known.set(key, frozen);
    return frozen;
  }
}

const resources = new Interned<Resources>((r) => `${r.cpuMillis}|${r.memoryBytes}|${r.gpus}|${r.pids}|${r.diskBytes}`);
const amounts = new Interned<Res>((r) => `${r.cpu}|${r.mem}|${r.gpus}`);

/** The same spec with its empty parts shared and its resources interned. */
export function compactSpec(s: InstanceSpec): InstanceSpec {
  // A spec built by hand may lack a part: it becomes the empty one.
  const list = <T>(xs: T[] | undefined): T[] => (xs?.length ? xs : EMPTY_LIST);
  const map = (m: Record<string, string> | undefined) => (m && Object.keys(m).length > 0 ? m : EMPTY_MAP);
  return {
    name: s.name,
    flavor: s.flavor,
    resources: s.resources && resources.of(s.resources),
    image: s.image,
    command: list(s.command),
    environment: map(s.environment),
    userData: s.userData?.length ? s.userData : EMPTY_BYTES,
    sshPublicKeys: list(s.sshPublicKeys),
    labels: map(s.labels),
    ports: list(s.ports),
    volumes: list(s.volumes),
    devices: list(s.devices),
    networks: list(s.networks),
    restartOnFailure: s.restartOnFailure,
  };
}

/** The claim's resource amounts, equal ones shared. */
export const compactRes = (r: Res): Res => amounts.of(r);
