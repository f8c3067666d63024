import { InProcessEventBus } from './event-bus.js';
import { liveEventBusContract } from '../test-support/event-bus-contract.js';

liveEventBusContract('in process', async () => new InProcessEventBus());
