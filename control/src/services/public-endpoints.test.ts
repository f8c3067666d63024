import { describe, expect, it } from 'vitest';
import { PublicEndpoints } from './public-endpoints.js';

describe('PublicEndpoints', () => {
  const ports = { http: 8443, mqtt: 1883, mqtts: 8883 };

  it('tells https URLs when the server serves TLS, with the port it bound', () => {
    const e = new PublicEndpoints({ publicUrl: undefined, https: true, host: '0.0.0.0', ports });
    expect(e.apiBaseUrl).toBe('https://127.0.0.1:8443');
    expect(e.bundleBlobUrl('b1')).toBe('https://127.0.0.1:8443/api/v1/bundles/b1/blob');
  });

  it('tells KERNEX_PUBLIC_URL as given, for the API, bundles and the MQTT host', () => {
    const e = new PublicEndpoints({ publicUrl: 'https://fleet.example.com/', https: false, host: '127.0.0.1', ports });
    expect(e.bundleBlobUrl('b1')).toBe('https://fleet.example.com/api/v1/bundles/b1/blob');
    expect(e.mqttUrls('10.0.0.1:8080')).toEqual(['mqtt://fleet.example.com:1883', 'mqtts://fleet.example.com:8883']);
  });

  it('tells the MQTT host the device reached us by when there is no public URL', () => {
    const e = new PublicEndpoints({ publicUrl: undefined, https: false, host: '::', ports: { http: 8080, mqtt: 1883, ws: 8081 } });
    expect(e.apiBaseUrl).toBe('http://127.0.0.1:8080');
    expect(e.mqttUrls('[fd00::1]:8080')).toEqual(['mqtt://[fd00::1]:1883', 'ws://[fd00::1]:8081']);
    expect(e.mqttUrls(undefined)).toEqual(['mqtt://localhost:1883', 'ws://localhost:8081']);
  });

  it('tells KERNEX_MQTT_URLS as given, in its order (a cluster, a load balancer)', () => {
    const e = new PublicEndpoints({ publicUrl: 'https://fleet.example.com', https: false, host: '0.0.0.0', ports, mqttUrls: ['mqtt://n2:1883', 'mqtt://n1:1883'] });
    expect(e.mqttUrls('10.0.0.1:8080')).toEqual(['mqtt://n2:1883', 'mqtt://n1:1883']);
  });
});
