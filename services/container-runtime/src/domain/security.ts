// What an instance may do on its node, engine-neutral: the Docker backend turns it into
// HostConfig (CapDrop/CapAdd, no-new-privileges, ReadonlyRootfs), the Kubernetes backend into
// the container's securityContext. Every instance starts from nothing (drop ALL) and gets
// DEFAULT_CAPABILITIES; more comes only from its flavor (which only the site admin defines)
// and from the devices it was granted (InfiniBand: IPC_LOCK). The README says why this set.
import type { Flavor } from '@lapis/proto/lapis/common/v1/common';

/**
 * What a light-weight VM needs: files and owners (package managers, sshd, volumes),
 * users (su, sshd), signals, ports below 1024, and chroot (sshd's privilege separation).
 * Left out of Docker's default set: NET_RAW (raw and packet sockets: spoofing on the
 * project bridge), MKNOD (device nodes), AUDIT_WRITE (the host's audit log), SETFCAP and
 * SETPCAP (handing capabilities to files and processes).
 */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
];

/** Writable in-memory directories of a read-only root (what programs expect to write). */
export const WRITABLE_DIRS: readonly string[] = ['/tmp', '/run'];

export interface Security {
  /** Capabilities the instance has; every other one is dropped. */
  capabilities: string[];
  readOnlyRoot: boolean;
}

/** The instance's capabilities and root filesystem from its flavor and its device grant. */
export function instanceSecurity(flavor: Flavor | undefined, grantCapabilities: readonly string[]): Security {
  return {
    capabilities: [...new Set([...DEFAULT_CAPABILITIES, ...(flavor?.capabilities ?? []), ...grantCapabilities])],
    readOnlyRoot: flavor?.readOnlyRootFilesystem ?? false,
  };
}
