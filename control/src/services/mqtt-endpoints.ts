/** Ports of the MQTT listeners that are on (the bound ones, so port 0 resolves). */
export interface MqttPorts {
  mqtt: number;
  mqtts?: number;
  ws?: number;
}

/**
 * The `mqtt` URLs a registering device is told (DESIGN §2): the host of
 * `KERNEX_PUBLIC_URL`, or else the host the device reached us by (its `Host`
 * header), with each listener's port: `mqtt://`, then `mqtts://` and `ws://`
 * when those listeners are on.
 */
export class MqttEndpoints {
  constructor(
    private readonly publicUrl: string | undefined,
    private readonly ports: Readonly<MqttPorts>,
  ) {}

  urls(hostHeader: string | undefined): string[] {
    const host = hostOf(this.publicUrl) ?? hostOf(hostHeader ? `http://${hostHeader}` : undefined) ?? 'localhost';
    const urls = [`mqtt://${host}:${this.ports.mqtt}`];
    if (this.ports.mqtts !== undefined) urls.push(`mqtts://${host}:${this.ports.mqtts}`);
    if (this.ports.ws !== undefined) urls.push(`ws://${host}:${this.ports.ws}`);
    return urls;
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
