export { startTcpProxy, type TcpProxy } from '../net/tcp-proxy.js';
