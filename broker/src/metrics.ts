import { Counter, Gauge, type Registry } from 'prom-client';

/** Prometheus metrics the broker owns, registered on the registry the server passes in. */
export interface BrokerMetrics {
  devicesConnected: Gauge;
  messagesIn: Counter<'channel'>;
  messagesOut: Counter;
  refused: Counter<'reason'>;
  unauthenticated: Gauge;
}

/** Registers the broker's metrics on the server's registry, so /metrics shows one set (not a second default registry). */
export function createBrokerMetrics(registry: Registry): BrokerMetrics {
  return {
    devicesConnected: new Gauge({
      name: 'kernex_devices_connected',
      help: 'Devices with a live MQTT session (connected clients when the broker runs without authentication)',
      registers: [registry],
    }),
    messagesIn: new Counter({
      name: 'kernex_mqtt_messages_in_total',
      help: 'MQTT PUBLISH packets accepted from devices, by channel',
      labelNames: ['channel'],
      registers: [registry],
    }),
    messagesOut: new Counter({
      name: 'kernex_mqtt_messages_out_total',
      help: 'MQTT PUBLISH packets delivered to clients',
      registers: [registry],
    }),
    refused: new Counter({
      name: 'kernex_mqtt_refused_total',
      help: 'MQTT packets or connections refused by the broker, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    unauthenticated: new Gauge({
      name: 'kernex_mqtt_unauthenticated_connections',
      help: 'MQTT connections open without a CONNACK yet (bounded per address)',
      registers: [registry],
    }),
  };
}
