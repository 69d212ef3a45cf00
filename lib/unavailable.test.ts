import { ServiceError } from '@temporalio/client';
import { RedisUnavailableError, unavailableDependency } from './unavailable';

/** Errors shaped as the clients raise them here (seen from Prisma 6 + adapter-pg, grpc-js, ioredis). */
describe('unavailableDependency', () => {
  it('knows PostgreSQL refusing, timing out and shutting down', () => {
    const refused = Object.assign(new Error("Can't reach database server at 127.0.0.1:1"), {
      code: 'P1001',
      meta: { driverAdapterError: { name: 'DriverAdapterError', cause: { kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 1 } } },
    });
    const rawRefused = Object.assign(new Error('Raw query failed'), { code: 'P2010', meta: { driverAdapterError: { cause: { kind: 'DatabaseNotReachable' } } } });
    const shutdown = Object.assign(new Error('x'), { code: 'P2010', meta: { driverAdapterError: { cause: { kind: 'postgres', originalCode: '57P01' } } } });
    expect(unavailableDependency(refused)).toBe('postgres');
    expect(unavailableDependency(rawRefused)).toBe('postgres');
    expect(unavailableDependency(shutdown)).toBe('postgres');
    expect(unavailableDependency(new Error('Connection terminated due to connection timeout', { cause: new Error('x') }))).toBe('postgres');
    expect(unavailableDependency(new Error('timeout exceeded when trying to connect'))).toBe('postgres');
  });

  it('knows Temporal unreachable or past its deadline, through the SDK error’s cause', () => {
    const grpc = (code: number) => Object.assign(new Error(`${code} No connection established`), { code, details: 'No connection established', metadata: {} });
    expect(unavailableDependency(new ServiceError('Failed to start Workflow', { cause: grpc(14) }))).toBe('temporal');
    expect(unavailableDependency(new ServiceError('Failed to query Workflow', { cause: grpc(4) }))).toBe('temporal');
    // NOT_FOUND, INVALID_ARGUMENT: the request's own problem.
    expect(unavailableDependency(new ServiceError('x', { cause: grpc(5) }))).toBeNull();
  });

  it('knows a Redis feature that could not degrade', () => {
    expect(unavailableDependency(new RedisUnavailableError('workspace events: Command timed out'))).toBe('redis');
  });

  it('leaves every other error alone, a Docker engine refusing and a unique violation among them', () => {
    expect(unavailableDependency(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:23763'), { code: 'ECONNREFUSED' }))).toBeNull();
    expect(unavailableDependency(Object.assign(new Error('Unique constraint failed'), { code: 'P2002', meta: { target: ['hostname'] } }))).toBeNull();
    expect(unavailableDependency(new Error('internal'))).toBeNull();
    expect(unavailableDependency(undefined)).toBeNull();
  });
});
