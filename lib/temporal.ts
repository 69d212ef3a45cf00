import fs from 'node:fs';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type ClientInterceptors, type ConnectionOptions } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from '../domain/config';
import { payloadDataConverter } from './payload-codec';

type TemporalSettings = Pick<
  Config,
  | 'TEMPORAL_ADDRESS'
  | 'TEMPORAL_NAMESPACE'
  | 'TEMPORAL_TLS_CERT_FILE'
  | 'TEMPORAL_TLS_KEY_FILE'
  | 'TEMPORAL_TLS_CA_FILE'
  | 'TEMPORAL_TLS_SERVER_NAME'
  | 'TEMPORAL_API_KEY'
  | 'TEMPORAL_PAYLOAD_KEYS'
>;

const converters = new Map<string, DataConverter | undefined>();
/**
 * The data converter every client and worker of the process uses (lib/payload-codec): one per
 * key setting, so a client and a worker of the same process always agree. Undefined without keys.
 */
export function temporalDataConverter(c: Pick<Config, 'TEMPORAL_PAYLOAD_KEYS'>): DataConverter | undefined {
  const k = c.TEMPORAL_PAYLOAD_KEYS ?? '';
  if (!converters.has(k)) converters.set(k, payloadDataConverter(c.TEMPORAL_PAYLOAD_KEYS));
  return converters.get(k);
}

/** Connection options for the dev server (plain) or a production cluster (mTLS and/or API key). */
export function temporalConnectionOptions(c: TemporalSettings): ConnectionOptions & NativeConnectionOptions {
  const mtls = c.TEMPORAL_TLS_CERT_FILE && c.TEMPORAL_TLS_KEY_FILE;
  const tls =
    mtls || c.TEMPORAL_API_KEY || c.TEMPORAL_TLS_CA_FILE
      ? {
          serverNameOverride: c.TEMPORAL_TLS_SERVER_NAME,
          serverRootCACertificate: c.TEMPORAL_TLS_CA_FILE ? fs.readFileSync(c.TEMPORAL_TLS_CA_FILE) : undefined,
          clientCertPair: mtls
            ? { crt: fs.readFileSync(c.TEMPORAL_TLS_CERT_FILE!), key: fs.readFileSync(c.TEMPORAL_TLS_KEY_FILE!) }
            : undefined,
        }
      : undefined;
  return { address: c.TEMPORAL_ADDRESS, tls, apiKey: c.TEMPORAL_API_KEY };
}

/**
 * Calls that wait on the server by design: for the outcome of an update, for a workflow's next
 * history event (a result). The server answers them before the deadline it is given (the SDK then
 * asks again), so they get a longer one, only to bound a server that no longer answers at all.
 */
const LONG_POLLS = new Set(['GetWorkflowExecutionHistory', 'PollWorkflowExecutionUpdate', 'UpdateWorkflowExecution', 'ExecuteMultiOperation']);
const LONG_POLL_DEADLINE_MS = 70_000;
type GrpcInterceptor = NonNullable<ConnectionOptions['interceptors']>[number];

/**
 * Gives every call without a deadline of its own one: `rpcTimeoutMs` for a plain call, a minute
 * and more for a long poll. Without it a call to a server that does not answer (down behind a
 * firewall, hung) waits forever, and one refused waits through the SDK's ~20 s of retries.
 */
export function deadlineInterceptor(rpcTimeoutMs: number): GrpcInterceptor {
  return (options, nextCall) => {
    if (options.deadline !== undefined) return nextCall(options) as ReturnType<GrpcInterceptor>;
    const method = options.method_definition.path.slice(options.method_definition.path.lastIndexOf('/') + 1);
    const deadline = Date.now() + (LONG_POLLS.has(method) ? Math.max(LONG_POLL_DEADLINE_MS, rpcTimeoutMs) : rpcTimeoutMs);
    // grpc-js types an interceptor as returning its InterceptingCall class; the next call is one at run time.
    return nextCall({ ...options, deadline }) as ReturnType<GrpcInterceptor>;
  };
}

/**
 * The one long-lived Temporal client of a process. With `rpcTimeoutMs` (the API) every call is
 * bounded and a refused connection is retried for about half a second, not twenty: a caller is
 * waiting, and answers 503 instead (the next request finds the server again).
 */
export async function createTemporalClient(c: TemporalSettings, interceptors?: ClientInterceptors, opts: { rpcTimeoutMs?: number } = {}): Promise<Client> {
  const grpc = opts.rpcTimeoutMs ? { interceptors: [deadlineInterceptor(opts.rpcTimeoutMs), makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 3 }))] } : {};
  const connection = await Connection.connect({ ...temporalConnectionOptions(c), ...grpc });
  return new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, interceptors, dataConverter: temporalDataConverter(c) });
}

/** The worker's native connection. */
export function createNativeConnection(c: TemporalSettings): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(c));
}
