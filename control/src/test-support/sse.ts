/** One server-sent event as a client sees it. */
export interface SseEvent {
  event: string;
  data: any;
}

/** A real SSE client over fetch: collects events, and waits for one that matches. */
export interface SseClient {
  status: number;
  events: SseEvent[];
  /** Comment lines (`: ...`, the server's heartbeats) received so far. */
  comments(): number;
  /** Resolves once `n` comment lines have arrived, or rejects if the stream ends first. */
  waitForComments(n: number): Promise<void>;
  /** Resolves with the first event (already received or still to come) that matches. */
  waitFor(match: (e: SseEvent) => boolean): Promise<SseEvent>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string>): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const events: SseEvent[] = [];
  let comments = 0;
  const commentWaiters: Array<{ n: number; resolve: () => void; reject: (e: Error) => void }> = [];
  const waiters: Array<{ match: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }> = [];
  const push = (e: SseEvent): void => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              comments++;
              for (const w of [...commentWaiters]) {
                if (comments < w.n) continue;
                commentWaiters.splice(commentWaiters.indexOf(w), 1);
                w.resolve();
              }
            } else if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (data.length) push({ event, data: JSON.parse(data.join('\n')) });
        }
      }
    } catch {
      // aborted by close()
    }
    for (const w of commentWaiters.splice(0)) w.reject(new Error('the stream ended'));
  })();
  return {
    status: res.status,
    events,
    ended,
    comments: () => comments,
    waitForComments(n) {
      if (comments >= n) return Promise.resolve();
      return new Promise((resolve, reject) => commentWaiters.push({ n, resolve, reject }));
    },
    waitFor(match) {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    close: () => abort.abort(),
  };
}
