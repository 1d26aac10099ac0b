/** Two network namespaces joined by a veth pair: two "nodes" on one machine (needs root). */
import { execFileSync } from 'node:child_process';

export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Join two existing namespaces by the veth pair `veth`; each end gets its address (a /24), and each a loopback. */
export function joinByVeth(ns: string[], veth: string[], addresses: string[]): void {
  ip('link', 'add', veth[0], 'netns', ns[0], 'type', 'veth', 'peer', 'name', veth[1], 'netns', ns[1]);
  for (const i of [0, 1]) {
    ip('-n', ns[i], 'addr', 'add', `${addresses[i]}/24`, 'dev', veth[i]);
    ip('-n', ns[i], 'link', 'set', veth[i], 'up');
    ip('-n', ns[i], 'link', 'set', 'lo', 'up');
  }
}

/** Delete the namespaces (their veth ends go with them); a namespace that was never made is no error. */
export function deleteNamespaces(ns: string[]): void {
  for (const n of ns) {
    try {
      ip('netns', 'del', n);
    } catch {
      /* not created */
    }
  }
}
