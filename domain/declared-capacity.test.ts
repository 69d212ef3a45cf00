import { BadCapacityLabelError, declaredCapacity, schedulableCapacity } from './declared-capacity';

describe('declared capacity (daemon labels)', () => {
  const real = { cpu: 2, memoryMb: 7900, diskGb: 40 };

  it('reads each podex.capacity label and ignores every other label', () => {
    const labels = ['podex.capacity.cpu=8', 'podex.capacity.memory-mb=16384', 'podex.capacity.disk-gb=100', 'region=eu', 'podex.capacity.gpu=1'];
    expect(declaredCapacity(labels)).toEqual({ cpu: 8, memoryMb: 16384, diskGb: 100 });
    expect(declaredCapacity(['region=eu'])).toEqual({});
    expect(declaredCapacity([])).toEqual({});
  });

  it('puts each declared figure in place of the engine’s own, keeping the rest', () => {
    expect(schedulableCapacity(real, {})).toEqual(real);
    expect(schedulableCapacity(real, { cpu: 8 })).toEqual({ cpu: 8, memoryMb: 7900, diskGb: 40 });
    // A share held back for the host: less than the hardware.
    expect(schedulableCapacity({ cpu: 32, memoryMb: 131072, diskGb: 900 }, { cpu: 28, memoryMb: 120000 })).toEqual({ cpu: 28, memoryMb: 120000, diskGb: 900 });
  });

  it('refuses a value that is not a whole number from 1 up, naming the label', () => {
    for (const bad of ['podex.capacity.cpu=0', 'podex.capacity.cpu=-2', 'podex.capacity.cpu=1.5', 'podex.capacity.cpu=eight', 'podex.capacity.cpu=', 'podex.capacity.cpu', 'podex.capacity.cpu=5000']) {
      expect(() => declaredCapacity([bad])).toThrow(BadCapacityLabelError);
      expect(() => declaredCapacity([bad])).toThrow(/podex\.capacity\.cpu/);
    }
    expect(() => declaredCapacity(['podex.capacity.memory-mb=lots'])).toThrow(/podex\.capacity\.memory-mb=lots: must be a whole number/);
  });
});
