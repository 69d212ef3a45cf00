import fs from 'node:fs';
import Docker from 'dockerode';

export interface EngineEndpoint {
  host: string;
  port: number;
}

/** A registry row's Docker endpoint: its address (an inet may carry a /32) and TLS port (2376 by default). */
export function serverEndpoint(s: { ipAddress: string; dockerPort: number | null }): EngineEndpoint {
  return { host: s.ipAddress.replace(/\/\d+$/, ''), port: s.dockerPort ?? 2376 };
}

export interface FleetTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * The Docker engines of the fleet, each reached over TCP with mutual TLS. One dockerode
 * client per engine, created on first use and kept; the TLS material is read once.
 * Key material stays inside this object: it is never logged or returned.
 */
export class DockerFleet {
  private readonly clients = new Map<string, Docker>();
  private material?: { ca: Buffer; cert: Buffer; key: Buffer };

  constructor(
    private readonly tls: FleetTls,
    private readonly timeoutMs = 30_000,
  ) {}

  static key(e: EngineEndpoint): string {
    return `${e.host}:${e.port}`;
  }

  /** The client for one engine. */
  engine(endpoint: EngineEndpoint): Docker {
    const k = DockerFleet.key(endpoint);
    let client = this.clients.get(k);
    if (!client) {
      this.material ??= {
        ca: fs.readFileSync(this.tls.caFile),
        cert: fs.readFileSync(this.tls.certFile),
        key: fs.readFileSync(this.tls.keyFile),
      };
      client = new Docker({
        protocol: 'https',
        host: endpoint.host,
        port: endpoint.port,
        ...this.material,
        timeout: this.timeoutMs,
      });
      this.clients.set(k, client);
    }
    return client;
  }

  /** Drops a cached client, e.g. after a server's certificates were rotated. */
  forget(endpoint: EngineEndpoint): void {
    this.clients.delete(DockerFleet.key(endpoint));
  }
}

/** Parses "host:port,host:port" (PODEX_LOCAL_ENGINES) into endpoints. */
export function parseEndpoints(list: string | undefined): EngineEndpoint[] {
  return (list ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const i = s.lastIndexOf(':');
      const port = Number(s.slice(i + 1));
      if (i <= 0 || !Number.isInteger(port)) throw new Error(`bad engine endpoint '${s}' (want host:port)`);
      return { host: s.slice(0, i), port };
    });
}
