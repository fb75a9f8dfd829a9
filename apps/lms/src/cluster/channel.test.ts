import { describe, expect, it } from 'vitest';
import {
  createEndpoint,
  type Endpoint,
  type Handlers,
  type Peer,
  type PrimaryTopics,
  REPLY,
  REQUEST,
  replyTo,
  type WorkerTopics,
} from './channel.ts';

describe("replyTo (the primary's answers to its workers' questions)", () => {
  const answers: Handlers<PrimaryTopics> = {
    metrics: async () => 'lms_logins_total 0',
    'storm-record': async () => [],
    'storm-rates': async () => [],
    'live-series': async () => {
      throw new Error('no worker listens');
    },
  };
  const ask = (topic: string) => ({ type: 'lms:ask', id: 7, topic, question: {} });

  it('answers a question on one of its topics, and passes an error back as text', async () => {
    expect(await replyTo(answers, ask('metrics'))).toEqual({
      type: 'lms:answer',
      id: 7,
      answer: 'lms_logins_total 0',
    });
    expect(await replyTo(answers, ask('live-series'))).toEqual({
      type: 'lms:answer',
      id: 7,
      error: 'no worker listens',
    });
  });

  it('ignores a topic that is only an inherited name (toString, __proto__, constructor)', () => {
    for (const topic of ['toString', '__proto__', 'constructor', 'hasOwnProperty']) {
      expect(replyTo(answers, ask(topic)), topic).toBeNull();
    }
    expect(replyTo(answers, { type: 'other', id: 1, topic: 'metrics' })).toBeNull();
    expect(replyTo(answers, null)).toBeNull();
  });
});

describe('createEndpoint', () => {
  const series = (at: number, logins: number) => ({
    t: [at],
    logins: [logins],
    forbidden: [0],
    evictions: [0],
    graded: [0],
    latencySeconds: [null],
    queues: {},
  });

  const alert = (account: string, at: number) => ({
    type: 'storm' as const,
    account,
    at,
    loginsPerMinute: 2,
    evictionsPerMinute: 1,
    thresholdPerMinute: 1,
    suggestion: 'exempt it',
  });

  /** A primary and `count` workers wired to each other in this process, as node:cluster would. */
  function wire(count: number) {
    const sent: unknown[] = [];
    const workers = Array.from({ length: count }, (_, index) => {
      const toPrimary: Peer = {
        name: 'the primary',
        send: (message) => {
          sent.push(message);
          queueMicrotask(() => primary.receive(workerPeers[index]!, message));
        },
      };
      const endpoint = createEndpoint<PrimaryTopics, WorkerTopics>(
        {
          metrics: async () => [],
          'live-series': async ({ at }) => series(at, index + 1),
        },
        { timeoutMs: 1_000 },
      );
      return { endpoint, toPrimary };
    });
    const workerPeers: Peer[] = workers.map(({ endpoint, toPrimary }, index) => ({
      name: `worker ${index + 1}`,
      send: (message) => {
        sent.push(message);
        queueMicrotask(() => endpoint.receive(toPrimary, message));
      },
    }));
    const primary: Endpoint<WorkerTopics> = createEndpoint<WorkerTopics, PrimaryTopics>(
      {
        metrics: async () => 'text',
        'storm-record': async ({ account, at }) => [alert(account, at)],
        'storm-rates': async () => [],
        'live-series': async (question) => {
          const parts = await Promise.all(
            workerPeers.map((peer) => primary.request(peer, 'live-series', question)),
          );
          return series(
            question.at,
            parts.reduce((sum, part) => sum + part.logins[0]!, 0),
          );
        },
      },
      { timeoutMs: 1_000 },
    );
    return { workers, sent };
  }

  it("answers a worker's request with the primary's answer, the same id back", async () => {
    const { workers, sent } = wire(1);
    const { endpoint, toPrimary } = workers[0]!;
    const alerts = await endpoint.request(toPrimary, 'storm-record', {
      account: 'xqueue_svc',
      at: 0,
      evicted: 1,
    });
    expect(alerts).toEqual([alert('xqueue_svc', 0)]);
    expect(sent).toEqual([
      {
        type: REQUEST,
        id: 0,
        topic: 'storm-record',
        question: { account: 'xqueue_svc', at: 0, evicted: 1 },
      },
      { type: REPLY, id: 0, answer: alerts },
    ]);
  });

  it("fans a worker's request out to every worker and gathers their answers", async () => {
    const { workers } = wire(3);
    const { endpoint, toPrimary } = workers[1]!;
    const whole = await endpoint.request(toPrimary, 'live-series', { seconds: 1, at: 5_000 });
    expect(whole.logins).toEqual([1 + 2 + 3]);
  });

  it('rejects with the error of the side that answers, or when nobody answers in time', async () => {
    const silent: Peer = { name: 'the primary', send: () => {} };
    const endpoint = createEndpoint<PrimaryTopics, WorkerTopics>(
      { metrics: async () => [], 'live-series': async () => series(0, 0) },
      { timeoutMs: 20 },
    );
    await expect(endpoint.request(silent, 'storm-rates', { at: 0 })).rejects.toThrow(
      'the primary did not answer "storm-rates" in time',
    );
    const failing: Peer = {
      name: 'the primary',
      send: (message) =>
        queueMicrotask(() =>
          endpoint.receive(failing, {
            type: REPLY,
            id: (message as { id: number }).id,
            error: 'no worker listens',
          }),
        ),
    };
    await expect(endpoint.request(failing, 'metrics', {})).rejects.toThrow('no worker listens');
  });
});
