import { certainlyDropped, egressFindings, parseCidr, parseFilterRules } from './egress';

const POOL = '10.201.0.0/16';
const RANGES = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4'];
/** What `iptables -S` shows on a local engine host: Docker's rules for one network and docker-user.sh's (role local). */
const RULES = [
  '-P INPUT ACCEPT',
  '-P FORWARD DROP',
  '-P OUTPUT ACCEPT',
  '-N DOCKER',
  '-N DOCKER-ISOLATION-STAGE-1',
  '-N DOCKER-USER',
  '-N PODEX-INPUT',
  '-A INPUT -j PODEX-INPUT',
  '-A FORWARD -j DOCKER-USER',
  '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
  '-A FORWARD -o br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-A FORWARD -o br-0123456789ab -j DOCKER',
  '-A FORWARD -i br-0123456789ab ! -o br-0123456789ab -j ACCEPT',
  '-A FORWARD -i br-0123456789ab -o br-0123456789ab -j DROP',
  '-A DOCKER-ISOLATION-STAGE-1 -j RETURN',
  '-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
  '-A DOCKER-USER -i br-+ -o br-+ -m physdev ! --physdev-is-bridged -j DROP',
  `-A DOCKER-USER -s ${POOL} -m physdev --physdev-is-bridged -j RETURN`,
  `-A DOCKER-USER -s ${POOL} -d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN`,
  `-A DOCKER-USER -s ${POOL} -d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j RETURN`,
  ...RANGES.map((r) => `-A DOCKER-USER -s ${POOL} -d ${r} -j DROP`),
  '-A DOCKER-USER -j RETURN',
  '-A PODEX-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
  '-A PODEX-INPUT -i lo -j RETURN',
  `-A PODEX-INPUT -s ${POOL} -j DROP`,
  '-A PODEX-INPUT -j RETURN',
].join('\n');
const NET = [{ subnet: '10.201.0.16/28', bridge: 'br-0123456789ab' }];
const failing = (text: string) => egressFindings(text, NET).filter((f) => !f.ok).map((f) => f.check);
const without = (pattern: RegExp) => RULES.split('\n').filter((l) => !pattern.test(l)).join('\n');

describe('workspace egress read from the filter table', () => {
  it('passes the rules docker-user.sh writes, and every finding is required', () => {
    const findings = egressFindings(RULES, NET);
    expect(findings.map((f) => [f.check, f.ok, f.required])).toEqual([
      ['egress: metadata service blocked', true, true],
      ['egress: private network blocked', true, true],
      ['egress: host blocked', true, true],
    ]);
  });

  it('fails the check whose rule is missing', () => {
    expect(failing(without(/169\.254/))).toEqual(['egress: metadata service blocked']);
    expect(failing(without(/-d 172\.16\.0\.0\/12/))).toEqual(['egress: private network blocked']);
    expect(failing(without(/^-A INPUT -j PODEX-INPUT/))).toEqual(['egress: host blocked']);
    // Docker's own rules alone let everything out.
    expect(failing(without(/^-A DOCKER-USER -s/))).toEqual(['egress: metadata service blocked', 'egress: private network blocked']);
  });

  it('does not trust a rule set that lets the packet out first, drops only part of a range, or cuts replies to the host', () => {
    expect(failing(RULES.replace('-A DOCKER-USER -m conntrack', `-A DOCKER-USER -s ${POOL} -j RETURN\n-A DOCKER-USER -m conntrack`))).toEqual([
      'egress: metadata service blocked',
      'egress: private network blocked',
    ]);
    expect(failing(RULES.replace('-d 10.0.0.0/8 -j DROP', '-d 10.0.0.0/16 -j DROP'))).toEqual(['egress: private network blocked']);
    expect(failing(RULES.replace(`-A DOCKER-USER -s ${POOL} -d 169.254.0.0/16 -j DROP`, `-A DOCKER-USER -s ${POOL} -d 169.254.0.0/16 -p udp -j DROP`))).toEqual(['egress: metadata service blocked']);
    expect(failing(without(/^-A PODEX-INPUT -m conntrack/))).toEqual(['egress: host blocked']);
    // A network outside the pools the rules name.
    expect(egressFindings(RULES, [{ subnet: '10.9.0.0/28', bridge: 'br-0123456789ab' }]).filter((f) => !f.ok)).toHaveLength(3);
    expect(egressFindings(RULES, []).every((f) => !f.ok)).toBe(true);
  });

  it('lets DNS to the resolver through and keeps replies flowing', () => {
    const table = parseFilterRules(RULES);
    const probe = { src: parseCidr('10.201.0.16/28')!, proto: 'tcp' as const, inIface: 'br-0123456789ab' };
    expect(certainlyDropped(table, 'FORWARD', { ...probe, dst: parseCidr('10.255.255.53'), dport: 53, state: 'NEW' })).toBe(false);
    expect(certainlyDropped(table, 'FORWARD', { ...probe, dst: parseCidr('10.255.255.53'), dport: 80, state: 'NEW' })).toBe(true);
    expect(certainlyDropped(table, 'FORWARD', { ...probe, dst: parseCidr('203.0.113.5'), dport: 443, state: 'NEW' })).toBe(false);
    expect(certainlyDropped(table, 'FORWARD', { ...probe, dst: parseCidr('169.254.169.254'), dport: 80, state: 'ESTABLISHED' })).toBe(false);
  });
});
