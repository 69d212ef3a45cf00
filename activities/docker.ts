import type { DockerFleet, EngineEndpoint } from '../lib/docker-fleet';

/** What an engine says about itself: capacity, runtimes and daemon settings. */
export interface EngineFacts {
  serverVersion: string;
  apiVersion: string;
  kernelVersion: string;
  os: string;
  architecture: string;
  cpus: number;
  memoryBytes: number;
  runtimes: string[];
  defaultRuntime: string;
  securityOptions: string[];
  storageDriver: string;
  containers: number;
}

export interface DockerActivityDeps {
  fleet: DockerFleet;
}

export function createDockerActivities({ fleet }: DockerActivityDeps) {
  return {
    /** Reads an engine's identity and capacity over its TLS Docker API. */
    async describeEngine(endpoint: EngineEndpoint): Promise<EngineFacts> {
      const docker = fleet.engine(endpoint);
      const [info, version] = await Promise.all([docker.info(), docker.version()]);
      return {
        serverVersion: String(info.ServerVersion),
        apiVersion: String(version.ApiVersion),
        kernelVersion: String(info.KernelVersion),
        os: String(info.OperatingSystem),
        architecture: String(info.Architecture),
        cpus: Number(info.NCPU),
        memoryBytes: Number(info.MemTotal),
        runtimes: Object.keys(info.Runtimes ?? {}).sort(),
        defaultRuntime: String(info.DefaultRuntime),
        securityOptions: (info.SecurityOptions ?? []) as string[],
        storageDriver: String(info.Driver),
        containers: Number(info.Containers),
      };
    },
  };
}
