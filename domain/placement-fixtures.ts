import type { Candidate } from './placement';

/** A placement candidate for unit tests: an empty, active 8-CPU amd64 server in `eu`, with `over` applied. */
export const candidate = (name: string, over: Partial<Candidate> = {}): Candidate => ({
  id: `id-${name}`,
  name,
  status: 'active',
  cordoned: false,
  inMaintenance: false,
  architecture: 'amd64',
  region: 'eu',
  labels: {},
  hasGpu: false,
  gpuType: null,
  gpuCount: 0,
  total: { cpu: 8, memoryMb: 16384, diskGb: 200 },
  reserved: { cpu: 0, memoryMb: 0, diskGb: 0 },
  ...over,
});
