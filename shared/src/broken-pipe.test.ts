import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { onBrokenPipe } from './broken-pipe.js';

const stream = (): EventEmitter => new EventEmitter();
const failure = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

describe('a closed output pipe', () => {
  it('calls the handler once, on the first EPIPE of stdout or stderr, and keeps later ones silent', () => {
    const streams = { stdout: stream(), stderr: stream() };
    const seen: string[] = [];
    onBrokenPipe((name) => seen.push(name), streams);
    streams.stderr.emit('error', failure('EPIPE'));
    streams.stdout.emit('error', failure('EPIPE'));
    streams.stdout.emit('error', failure('ERR_STREAM_DESTROYED'));
    expect(seen).toEqual(['stderr']);
  });

  it('does not hide any other stream error', () => {
    const streams = { stdout: stream(), stderr: stream() };
    onBrokenPipe(() => undefined, streams);
    expect(() => streams.stdout.emit('error', failure('ENOSPC'))).toThrow('ENOSPC');
  });
});
