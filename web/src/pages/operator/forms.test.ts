import { describe, expect, it } from 'vitest';
import i18n from '../../i18n';
import { auditParams, validateAudit } from './Audit';
import { validatePlan } from './Plans';
import { isIp, validateServer } from './Servers';

const t = i18n.getFixedT('en');
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
const server = { server_name: 'host-1', ip_address: '10.0.0.5', docker_url: '', status: '', tls_ca_cert: '', tls_client_cert: '', tls_client_key: '' };

describe('the add-server form', () => {
  it('accepts a plain server and a TLS one', () => {
    expect(validateServer(server, t)).toEqual({});
    expect(validateServer({ ...server, docker_url: 'tcp://10.0.0.5:2376', tls_client_cert: PEM, tls_client_key: PEM.replace(/CERTIFICATE/g, 'PRIVATE KEY'), tls_ca_cert: PEM }, t)).toEqual({});
  });

  it('refuses what AddServer refuses', () => {
    const errors = validateServer({ ...server, server_name: '-x', ip_address: '999.1.1.1', docker_url: 'http://x', tls_ca_cert: PEM }, t);
    expect(Object.keys(errors).sort()).toEqual(['docker_url', 'ip_address', 'server_name', 'tls_client_cert']);
    expect(validateServer({ ...server, tls_client_key: PEM }, t)).toEqual({ tls_client_cert: 'A client key needs its certificate' });
    expect(validateServer({ ...server, tls_client_cert: 'not pem', tls_client_key: PEM }, t).tls_client_cert).toBe('PEM text (-----BEGIN … -----END …)');
  });

  it('knows addresses', () => {
    expect(isIp('127.0.0.1')).toBe(true);
    expect(isIp('::1')).toBe(true);
    expect(isIp('256.0.0.1')).toBe(false);
    expect(isIp('host.example')).toBe(false);
  });
});

describe('the plan form', () => {
  const plan = {
    name: 'Small 1', cpus: 0.5, memory_mib: 256, pids_limit: 64, max_containers: 2, max_ports: 0, log_max_mib: 5,
    traffic_quota_gib: '', quota_action: 'alert', customer_ports: false, is_default: false, image_ids: [],
  };
  it('accepts a good plan and refuses out-of-range figures', () => {
    expect(validatePlan(plan, t)).toEqual({});
    expect(validatePlan({ ...plan, name: '小型 plan' }, t)).toEqual({});
    const errors = validatePlan({ ...plan, name: ' ', cpus: 0, memory_mib: 5, max_containers: 1.5, traffic_quota_gib: -1 }, t);
    expect(errors).toEqual({
      name: 'Required', cpus: 'From 0.01 to 256', memory_mib: 'A whole number from 6 to 1048576',
      max_containers: 'A whole number from 1 to 1000', traffic_quota_gib: 'A number of GiB, 0 or more (empty: the default)',
    });
    expect(validatePlan({ ...plan, name: 'bad/name' }, t).name).toBeTruthy();
  });
});

describe('the audit filters', () => {
  it('send only what is filled in, the user as a number', () => {
    expect(auditParams({ user_id: ' 12 ', action: '', source: 'api', subject_type: '', subject_id: '', since: '2026-11-01', until: '' }))
      .toEqual({ user_id: 12, source: 'api', since: '2026-11-01' });
  });
  it('refuse a bad user ID and a range that ends before it starts', () => {
    expect(validateAudit({ user_id: 'x', action: '', source: '', subject_type: '', subject_id: '', since: '2026-11-02', until: '2026-11-01' }, t))
      .toEqual({ user_id: 'An ID (a positive whole number)', until: 'Not before the start date' });
  });
});
