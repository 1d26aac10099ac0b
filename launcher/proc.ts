/**
 * Linux process-table helpers (/proc). Node has no API to list a process group's members or to find the
 * processes of one job, and the launcher needs both: the shim to clean up a worker's left-over children, the
 * tests to prove that no process of a job survives.
 */
import * as fs from 'node:fs';

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  /** process state letter from /proc/<pid>/stat: R, S, T (stopped), Z (zombie)... */
  state: string;
}

/** Parse /proc/<pid>/stat; undefined when the process is gone. The command name may hold spaces and ')'. */
export function readProc(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, state: fields[0], ppid: Number(fields[1]), pgid: Number(fields[2]) };
}

export function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** Live (non-zombie) members of a process group. */
export function groupMembers(pgid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const pid of allPids()) {
    const p = readProc(pid);
    if (p && p.pgid === pgid && p.state !== 'Z') out.push(p);
  }
  return out;
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z';
}

/**
 * Live processes whose environment holds HARDNET_JOB_ID=<jobId>: every worker, shim and grandchild of a job
 * inherits it, so this finds them even after they were re-parented or moved to another process group.
 */
export function jobProcesses(jobId: string): ProcInfo[] {
  const needle = `HARDNET_JOB_ID=${jobId}\0`;
  const out: ProcInfo[] = [];
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (!('\0' + environ + '\0').includes('\0' + needle)) continue;
    const p = readProc(pid);
    if (p && p.state !== 'Z') out.push(p);
  }
  return out;
}
