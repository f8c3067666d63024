import { cmdTopic, isDeviceId } from '@kernex/shared';
import type { Aedes, AedesPublishPacket } from 'aedes';
import mqemitter from 'mqemitter';

type MQEmitter = mqemitter.MQEmitter;
type Message = mqemitter.Message;

/**
 * A broker publish carried to the other nodes of a cluster (DESIGN §8). The
 * origin broker's id and counter travel with it, so Aedes' own duplicate check
 * (per client, per origin broker) still applies on the receiving node.
 */
export interface CrossingPacket {
  topic: string;
  /** base64 of the payload. */
  payload: string;
  qos: 0 | 1;
  brokerId: string;
  brokerCounter: number;
}

/**
 * What carries broker publishes between nodes (the server implements it over
 * Redis pub/sub). At most once: a packet sent while the bus is down is lost,
 * and the server heals from PostgreSQL (DESIGN §1, §8).
 */
export interface BrokerBus {
  /** Hands a packet to every other node; must not throw. */
  send(packet: CrossingPacket): void;
  /** Registers the one listener for packets from the other nodes. */
  onPacket(listener: (packet: CrossingPacket) => void): void;
}

/** Aedes' own emitter options (matchEmptyLevels per [MQTT-4.7.1-3]). */
const EMITTER_OPTIONS = { concurrency: 100, matchEmptyLevels: true };

/**
 * What must cross to other nodes: commands (server → device, `kx/{id}/cmd`)
 * and Aedes' announcement of a new client (`$SYS/{broker}/new/clients`), by
 * which the node holding an older connection with the same clientId closes it
 * (a takeover across nodes), and of a client gone (`$SYS/{broker}/disconnect/clients`,
 * one small message per disconnect), by which the other nodes forget where the
 * device was (the server's map of device owners). Devices' telemetry, events and status stay on the
 * node they arrived at, and so do Aedes' heartbeats: one Redis carries every
 * message sent to it (moscajs/aedes#703), and those are most of the traffic.
 */
export function crossesNodes(topic: string): boolean {
  const parts = topic.split('/');
  if (parts.length === 3 && parts[0] === 'kx' && parts[2] === 'cmd') return isDeviceId(parts[1]!) && topic === cmdTopic(parts[1]!);
  return parts.length === 4 && parts[0] === '$SYS' && (parts[2] === 'new' || parts[2] === 'disconnect') && parts[3] === 'clients';
}

/** A `$SYS/{broker}/...` topic of another broker. */
function foreignSys(topic: string, brokerId: string): boolean {
  return topic.startsWith('$SYS/') && topic.split('/')[1] !== brokerId;
}

/** A cluster node's emitter, and the step that connects it to its Aedes once that exists. */
export interface ClusterEmitter {
  mq: MQEmitter;
  /** From now on packets from the bus are published on `aedes`. */
  attach(aedes: Aedes): void;
}

/**
 * Aedes' emitter for a cluster node: a local mqemitter that also hands what
 * {@link crossesNodes} to the bus. A packet from the bus is published on the
 * local Aedes as if made here (so a persistent session's outgoing queue gets
 * it, as Aedes' QoS 1 delivery needs), and is marked by its broker counter so
 * it is not sent back out: nothing loops.
 */
export function createClusterEmitter(bus: BrokerBus): ClusterEmitter {
  const local = mqemitter(EMITTER_OPTIONS);
  const localEmit = local.emit.bind(local);
  /** Broker counters of packets that came from the bus, until they are emitted here. */
  const fromBus = new Set<number>();
  let aedes: Aedes | undefined;
  bus.onPacket((p) => {
    if (!aedes || aedes.closed) return;
    // Marked before the publish: aedes-packet takes ++broker.counter synchronously, and a QoS 0
    // packet (a takeover's $SYS announcement) is emitted before publish() returns. Bounded: a
    // packet Aedes drops before emitting it (a closing broker) would otherwise stay here.
    if (fromBus.size >= 10_000) fromBus.clear();
    fromBus.add((aedes as unknown as { counter: number }).counter + 1);
    aedes.publish({ cmd: 'publish', topic: p.topic, payload: Buffer.from(p.payload, 'base64'), qos: p.qos, retain: false, dup: false } as AedesPublishPacket, () => {});
  });
  local.emit = (message: Message, cb?: (err?: Error) => void): void => {
    const packet = message as unknown as AedesPublishPacket & { brokerId?: string; brokerCounter?: number };
    // Only this broker's own publishes, and only its own $SYS announcements: nothing from elsewhere goes back out.
    if (aedes && typeof packet.topic === 'string' && crossesNodes(packet.topic) && packet.brokerId === aedes.id && !foreignSys(packet.topic, aedes.id)) {
      const counter = packet.brokerCounter ?? 0;
      if (!fromBus.delete(counter)) {
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload ?? []);
        bus.send({ topic: packet.topic, payload: payload.toString('base64'), qos: packet.qos === 0 ? 0 : 1, brokerId: packet.brokerId, brokerCounter: counter });
      }
    }
    localEmit(message, cb);
  };
  return {
    mq: local,
    attach(a) {
      aedes = a;
    },
  };
}
