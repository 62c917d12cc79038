#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): self-test and JS-only baseline. Two JS
// peers replicate over loopback; bench/jsratio compares Cask against these
// figures. Run by `npm test` / `npm run bench` in this folder.
//
// Self-test / benchmark: two JS peers on loopback. Peer A publishes N posts,
// peer B follows A and replicates them. Prints one JSON result line.
//   node bench.js [--n 1000] [--live 100] [--replication ebt|legacy] [--dial b|a] [--dir DIR] [--timeout-ms 120000]
const fs = require('fs')
const os = require('os')
const path = require('path')
const harness = require('./lib/harness')
const { parseArgs } = require('./lib/common')

const { flags } = parseArgs(process.argv.slice(2), { booleans: ['keep', 'verbose'] })
const N = Number(flags.n || 1000)
const mode = flags.replication || 'ebt'
const dial = flags.dial || 'b' // which peer dials the other
const timeoutMs = Number(flags['timeout-ms'] || 120000)
const base = flags.dir ? path.resolve(flags.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'ssb-interop-bench-'))
fs.mkdirSync(base, { recursive: true })

function startPeer(name, extra) {
  return harness.start('peer.js', name, ['--path', path.join(base, name), '--seed', `bench-${name}`,
    '--replication', mode, '--progress-ms', '0', ...(flags.verbose ? ['--trace'] : []), ...extra], { verbose: flags.verbose, timeoutMs })
}

async function main() {
  const t0 = Date.now()
  const a = startPeer('a', ['--publish', String(N)])
  const readyA = await a.waitFor((e) => e.event === 'ready')
  const pubA = await a.waitFor((e) => e.event === 'published')
  const b = startPeer('b', ['--follow', readyA.id])
  const readyB = await b.waitFor((e) => e.event === 'ready')
  await b.waitFor((e) => e.event === 'followed')
  const tConnect = Date.now()
  if (dial === 'b') b.send({ cmd: 'connect', address: readyA.address })
  else a.send({ cmd: 'connect', address: readyB.address })
  const conn = await b.waitFor((e) => e.event === 'connected')
  const done = await b.waitFor((e) => e.event === 'progress' && e.feed === readyA.id && e.seq >= N)
  const first = b.events.find((e) => e.event === 'progress' && e.feed === readyA.id)
  const ms = done.t - tConnect
  // optional live phase: A publishes more while connected
  const LIVE = Number(flags.live || 0)
  let liveMs = null
  if (LIVE > 0) {
    const tLive = Date.now()
    a.send({ cmd: 'publish', n: LIVE })
    await b.waitFor((e) => e.event === 'progress' && e.feed === readyA.id && e.seq >= N + LIVE)
    liveMs = Date.now() - tLive
  }
  // check what B stores matches
  b.send({ cmd: 'latest', id: readyA.id })
  const latest = await b.waitFor((e) => e.event === 'latest' && e.feed === readyA.id)
  await Promise.all([a.stop(), b.stop()])
  const result = {
    ok: latest.seq === N + LIVE,
    replication: mode,
    dial,
    n: N,
    publish_ms: pubA.elapsed_ms,
    connect_to_first_msg_ms: first.t - tConnect,
    connect_to_done_ms: ms,
    connected_event_ms: conn.t - tConnect,
    msgs_per_sec: Math.round((N / ms) * 1000),
    total_ms: Date.now() - t0,
    b_latest_for_a: latest.seq,
    live_n: LIVE,
    live_publish_to_replicated_ms: liveMs,
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  if (!flags.keep && !flags.dir) fs.rmSync(base, { recursive: true, force: true })
  process.exit(result.ok ? 0 : 1)
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\n')
  process.exit(1)
})
