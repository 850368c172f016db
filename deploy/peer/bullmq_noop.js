// bullmq_noop.js - BullMQ's no-op job rate, the peer deploy/bench.sh sets
// Quorum's batched completions/s against (on the same Redis, in the same run).
//
//   node bullmq_noop.js --port P [--host H] [--jobs N] [--runs R]
//                       [--concurrency C] [--prefix P] [--max-seconds M]
//
// Per run: a fresh queue under its own key prefix; a producer adds N jobs
// with addBulk (in bulks of 1,000; not timed, as Quorum's tasks are imported
// before its runs); then one Worker with a no-op processor and C concurrent
// jobs drains them, timed from its start to the N-th "completed" event (or
// to M seconds, when fewer jobs were done by then: a slow machine's run stays
// short; the rate is then the jobs done over M).
// Completed jobs are removed (removeOnComplete), so nothing is kept: BullMQ
// here is a queue, not a store. Measured per run: jobs/s, this process's CPU
// time per job (process.cpuUsage, worker only) and Redis's (INFO cpu). The
// queue's keys are removed after each run (obliterate). Prints one JSON
// object: every run and the medians over runs.
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

function usage(msg) {
  if (msg) process.stderr.write(`bullmq_noop.js: ${msg}\n`);
  process.stderr.write('usage: node bullmq_noop.js --port P [--host H] [--jobs N] [--runs R] ' +
    '[--concurrency C] [--prefix P] [--max-seconds M]\n');
  process.exit(2);
}

const opt = { host: '127.0.0.1', port: 0, jobs: 100000, runs: 3, concurrency: 100, prefix: 'bullmq-peer',
  'max-seconds': 60 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, '');
  const v = argv[i + 1];
  if (!(k in opt) || v === undefined) usage(`bad option ${argv[i]}`);
  if (k === 'host' || k === 'prefix') {
    opt[k] = v;
  } else {
    if (!/^[0-9]+$/.test(v) || Number(v) < 1) usage(`--${k} wants a positive integer, not ${v}`);
    opt[k] = Number(v);
  }
}
if (!opt.port) usage('--port is required');

const connection = { host: opt.host, port: opt.port, maxRetriesPerRequest: null };

async function redisCpuSeconds(r) {
  const info = await r.info('cpu');
  const f = (name) => Number((info.match(new RegExp(`^${name}:([0-9.]+)`, 'm')) || [])[1]);
  return f('used_cpu_user') + f('used_cpu_sys');
}

function median(xs) {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return null;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

async function oneRun(run, admin) {
  const name = `noop-${process.pid}-${run}`;
  const queue = new Queue(name, { connection, prefix: opt.prefix });
  const bulk = 1000;
  for (let i = 0; i < opt.jobs; i += bulk) {
    const jobs = [];
    for (let j = i; j < Math.min(i + bulk, opt.jobs); j++) {
      jobs.push({ name: 'noop', data: { n: j }, opts: { removeOnComplete: true, removeOnFail: true } });
    }
    await queue.addBulk(jobs);
  }
  let done = 0;
  let failed = 0;
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const redis0 = await redisCpuSeconds(admin);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const worker = new Worker(name, async () => {}, { connection, prefix: opt.prefix, concurrency: opt.concurrency });
  const count = () => { if (++done === opt.jobs) finish(); };
  const timer = setTimeout(finish, opt['max-seconds'] * 1000);
  worker.on('completed', count);
  worker.on('failed', () => { failed++; count(); });
  worker.on('error', (err) => process.stderr.write(`bullmq_noop.js: worker: ${err.message}\n`));
  await finished;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const redis1 = await redisCpuSeconds(admin);
  const jobs = done;
  clearTimeout(timer);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return {
    run,
    jobs,
    failed,
    seconds: Number(seconds.toFixed(3)),
    jobs_per_second: Number((jobs / seconds).toFixed(1)),
    node_cpu_us_per_job: jobs ? Number(((cpu.user + cpu.system) / jobs).toFixed(2)) : null,
    redis_cpu_us_per_job: jobs ? Number((((redis1 - redis0) * 1e6) / jobs).toFixed(2)) : null,
  };
}

async function main() {
  const admin = new IORedis(connection);
  const runs = [];
  for (let run = 1; run <= opt.runs; run++) {
    const r = await oneRun(run, admin);
    process.stderr.write(`bullmq run ${run}: ${r.jobs_per_second} jobs/s, node ${r.node_cpu_us_per_job} us/job, ` +
      `redis ${r.redis_cpu_us_per_job} us/job\n`);
    runs.push(r);
  }
  await admin.quit();
  const pkg = require('bullmq/package.json');
  const med = (k) => median(runs.map((r) => r[k]));
  process.stdout.write(JSON.stringify({
    bullmq_version: pkg.version,
    node_version: process.version,
    jobs_per_run: opt.jobs,
    max_seconds_per_run: opt['max-seconds'],
    concurrency: opt.concurrency,
    prefix: opt.prefix,
    jobs_per_second: med('jobs_per_second'),
    node_cpu_us_per_job: med('node_cpu_us_per_job'),
    redis_cpu_us_per_job: med('redis_cpu_us_per_job'),
    runs,
  }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`bullmq_noop.js: ${err.stack || err}\n`);
  process.exit(1);
});
