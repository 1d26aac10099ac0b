/**
 * Slurm's host-list forms and what `scontrol show hostnames` (slurm-wlm 22.05.8) prints for each; the Slurm test
 * (test/slurm.test.ts) checks the same table against the live scontrol where Slurm is installed.
 */
export const SLURM_HOSTLISTS: [string, string[]][] = [
  ['gpu[01-03,07]', ['gpu01', 'gpu02', 'gpu03', 'gpu07']],
  ['n[8-10]', ['n8', 'n9', 'n10']],
  ['n[08-10]', ['n08', 'n09', 'n10']],
  ['n[009-011]', ['n009', 'n010', 'n011']],
  ['n[99-101]', ['n99', 'n100', 'n101']],
  ['n[01-3]', ['n01', 'n02', 'n03']],
  ['n[1-003]', ['n1', 'n2', 'n3']],
  ['n[0001]', ['n0001']],
  ['n[1-3,5-6],m7', ['n1', 'n2', 'n3', 'n5', 'n6', 'm7']],
  ['rack[1-2]-node[01-02]', ['rack1-node01', 'rack1-node02', 'rack2-node01', 'rack2-node02']],
  ['n[1-2][3-4]', ['n13', 'n14', 'n23', 'n24']],
  ['n[1-2]-[3-4]', ['n1-3', 'n1-4', 'n2-3', 'n2-4']],
  ['n[01-02]-ib[1-2]', ['n01-ib1', 'n01-ib2', 'n02-ib1', 'n02-ib2']],
  ['rack[1-2]-node[01-02],gpu[5,7]', ['rack1-node01', 'rack1-node02', 'rack2-node01', 'rack2-node02', 'gpu5', 'gpu7']],
  ['n[001-002],n[7]', ['n001', 'n002', 'n7']],
  ['10.0.0.[1-2]', ['10.0.0.1', '10.0.0.2']],
  ['[1-2]', ['1', '2']],
  ['n1,n1', ['n1', 'n1']],
  ['n[1,1]', ['n1', 'n1']],
  ['n[1-2],,m', ['n1', 'n2', 'm']],
  ['a b', ['a', 'b']],
  ['gpu5', ['gpu5']],
];
/** Lists scontrol refuses ("Invalid hostlist"). */
export const BAD_SLURM_HOSTLISTS = ['n[5-3]', 'n[]', 'n[a-b]', 'n[-3]', 'n[1-2,]', 'n[1-2]]', 'n[[1-2]]', 'n[1-65537]'];
