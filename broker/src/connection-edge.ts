import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Aedes, Client } from 'aedes';
import type { BrokerMetrics } from './metrics.js';
import { trimConnectedClient, trimNewClient } from './client-trim.js';
import { guardConnection } from './guarded-connection.js';
import { PacketFramer, type FrameLimits } from './packet-framer.js';
import type { RefusalLog } from './refusal-log.js';

/** Bounds on connections before and around authentication (DESIGN §3). */
export interface EdgeLimits extends FrameLimits {
  /** Connections from one address that may be open at once without a CONNACK yet. */
  maxUnauthenticatedPerAddress: number;
  /** A connection without a CONNACK this long after it opened is closed. */
  connectTimeoutMs: number;
}

/** Bytes a connection may send before it is authenticated (DESIGN §3). */
export const PRE_AUTH_BYTES = 64 * 1024;
/**
 * Default bound of unauthenticated connections per address: at most 64 MiB
 * buffered for one address, and room for a fleet behind one NAT reconnecting
 * at once (the server-connect benchmark's 2000 devices as fast as they can).
 */
export const MAX_UNAUTHENTICATED_PER_ADDRESS = 1024;
/** Default time from accept to CONNACK (Aedes' own default for CONNECT). */
export const CONNECT_TIMEOUT_MS = 30_000;

const MSG = 'mqtt connection refused';

/**
 * Where every MQTT connection enters (TCP, TLS, WebSocket): bounds what it may
 * send before its CONNACK and how many such connections one address may hold
 * open, closes it when no CONNACK follows in time, then bounds each packet by
 * the payload limits. Every refusal closes the connection, is counted in
 * `kernex_mqtt_refused_total{reason}` and logged (see {@link RefusalLog}).
 */
export class ConnectionEdge {
  private readonly pending = new Map<string, number>();
  /** Connections without their accepting CONNACK yet, and what to do when it is written. */
  private readonly awaiting = new Map<unknown, () => void>();

  constructor(
    private readonly aedes: Aedes,
    private readonly limits: EdgeLimits,
    private readonly metrics: BrokerMetrics,
    private readonly refusals: RefusalLog,
  ) {
    // Emitted once the CONNACK is written [MQTT-3.2.0-1]; return code 0 accepts the connection [MQTT-3.2.2-3].
    aedes.on('connackSent', (packet, client) => {
      if (packet.returnCode === 0) this.awaiting.get(client.conn)?.();
    });
  }

  /** Takes a new connection from `address` (the peer's IP) and hands it to Aedes unless refused. */
  handle(socket: Duplex, address: string | undefined, req?: IncomingMessage): void {
    const addr = address ?? 'unknown';
    const open = this.pending.get(addr) ?? 0;
    if (open >= this.limits.maxUnauthenticatedPerAddress) {
      this.refusals.refused(addr, 'unauthenticated_limit', MSG, { address: addr, limit: this.limits.maxUnauthenticatedPerAddress });
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    this.pending.set(addr, open + 1);
    this.metrics.unauthenticated.inc();

    // Kept small: what a connection holds after its CONNACK lives as long as the session (BENCHMARKS.md, memory).
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      this.refusals.refused(addr, 'connect_timeout', MSG, { address: addr, timeoutMs: this.limits.connectTimeoutMs });
      socket.destroy();
    }, this.limits.connectTimeoutMs);
    timer.unref();
    const framer = new PacketFramer(this.limits);
    const release = (): void => {
      if (!timer) return;
      clearTimeout(timer);
      timer = undefined;
      this.awaiting.delete(socket);
      this.metrics.unauthenticated.dec();
      const left = (this.pending.get(addr) ?? 1) - 1;
      if (left > 0) this.pending.set(addr, left);
      else this.pending.delete(addr);
    };
    let client: Client | undefined;
    this.awaiting.set(socket, () => {
      framer.authenticated = true;
      if (client) trimConnectedClient(client);
      release();
      socket.off('close', release);
    });
    guardConnection(socket, framer, {
      onRefused: (reason) => {
        const deviceId = client?.id ?? undefined;
        this.refusals.refused(deviceId ?? addr, reason, MSG, { address: addr, deviceId });
      },
    });
    socket.once('close', release);
    client = this.aedes.handle(socket, req as never);
    trimNewClient(client);
  }
}
