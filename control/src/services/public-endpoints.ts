/** Ports of the listeners that are on (the bound ones, so port 0 resolves). */
export interface BoundPorts {
  http: number;
  mqtt: number;
  mqtts?: number;
  ws?: number;
}

/** What the endpoints are built from: configuration and what the server really bound and serves. */
export interface PublicEndpointsOptions {
  /** KERNEX_PUBLIC_URL, when set: what devices are told, as the operator gave it. */
  publicUrl: string | undefined;
  /** True when the HTTP listener serves TLS (KERNEX_HTTPS). */
  https: boolean;
  /** The address HTTP listens on (a wildcard is told as 127.0.0.1). */
  host: string;
  ports: Readonly<BoundPorts>;
  /** KERNEX_MQTT_URLS, when set: the `mqtt` list told as it is (a cluster's nodes, a load balancer). */
  mqttUrls?: readonly string[];
}

/**
 * Every URL the server tells a device (DESIGN §7), from one place, built once
 * the listeners are up: the API base URL with the scheme the server really
 * serves (`https` when it serves TLS), the `mqtt` URL list of a registration
 * answer, and the blob URL of a bundle in a `deploy` command.
 */
export class PublicEndpoints {
  /** `scheme://host:port` of the HTTP API, no trailing slash. */
  readonly apiBaseUrl: string;

  constructor(private readonly o: PublicEndpointsOptions) {
    const local = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host.includes(':') ? `[${o.host}]` : o.host;
    this.apiBaseUrl = (o.publicUrl ?? `${o.https ? 'https' : 'http'}://${local}:${o.ports.http}`).replace(/\/+$/, '');
  }

  /**
   * The `mqtt` URLs a registering device is told (DESIGN §2): the host of
   * `KERNEX_PUBLIC_URL`, or else the host the device reached us by (its `Host`
   * header), with each listener's port: `mqtt://`, then `mqtts://` and `ws://`
   * when those listeners are on. KERNEX_MQTT_URLS replaces the list.
   */
  mqttUrls(hostHeader: string | undefined): string[] {
    if (this.o.mqttUrls?.length) return [...this.o.mqttUrls];
    const { ports } = this.o;
    const host = hostOf(this.o.publicUrl) ?? hostOf(hostHeader ? `http://${hostHeader}` : undefined) ?? 'localhost';
    const urls = [`mqtt://${host}:${ports.mqtt}`];
    if (ports.mqtts !== undefined) urls.push(`mqtts://${host}:${ports.mqtts}`);
    if (ports.ws !== undefined) urls.push(`ws://${host}:${ports.ws}`);
    return urls;
  }

  /** The URL a device downloads a bundle's blob from (DESIGN §4). */
  bundleBlobUrl(bundleId: string): string {
    return `${this.apiBaseUrl}/api/v1/bundles/${encodeURIComponent(bundleId)}/blob`;
  }

  /** The URL of a bundle's signed file index (DESIGN §4 "Delta transfer"). */
  bundleIndexUrl(bundleId: string): string {
    return `${this.apiBaseUrl}/api/v1/bundles/${encodeURIComponent(bundleId)}/index`;
  }

  /** The URL of the delta from bundle `fromId` to bundle `toId` (DESIGN §4). */
  bundleDeltaUrl(toId: string, fromId: string): string {
    return `${this.apiBaseUrl}/api/v1/bundles/${encodeURIComponent(toId)}/deltas/${encodeURIComponent(fromId)}/blob`;
  }
}

/** The hostname of a URL (IPv6 kept in brackets), or undefined when it does not parse. */
function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}
