#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): self-test of the rooms path, run by
// `npm test` in this folder (and usable against a Cask rooms server with
// --room ADDR).
//
// Rooms self-test: a rooms 1.0 server (room1-server.js), peer A and peer B
// join it; B opens a tunnel to A through the room and replicates A's feed
// over the tunnel. Prints one JSON result line.
//   node roomtest.js [--n 100] [--replication ebt|legacy] [--room ADDR] [--verbose]
// With --room ADDR no server is started: use an already running room (e.g. a
// rooms 2.0 server under test).
const fs = require('fs')
const os = require('os')
const path = require('path')
const harness = require('./lib/harness')
const { parseArgs } = require('./lib/common')

const { flags } = parseArgs(process.argv.slice(2), { booleans: ['verbose', 'keep'] })
const N = Number(flags.n || 100)
const mode = flags.replication || 'ebt'
const timeoutMs = Number(flags['timeout-ms'] || 60000)
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ssb-interop-room-'))
const opt = { verbose: flags.verbose, timeoutMs }

async function main() {
  const t0 = Date.now()
  let room = null
  let roomAddr = flags.room
  if (!roomAddr) {
    room = harness.start('room1-server.js', 'room', ['--path', path.join(base, 'room'), '--seed', 'interop-room'], opt)
    roomAddr = (await room.waitFor((e) => e.event === 'ready')).address
  }
  const common = ['--replication', mode, '--progress-ms', '0', '--room', roomAddr, ...(flags.verbose ? ['--trace'] : [])]
  const a = harness.start('peer.js', 'a', ['--path', path.join(base, 'a'), '--seed', 'room-a', '--publish', String(N), ...common], opt)
  const readyA = await a.waitFor((e) => e.event === 'ready')
  const roomA = await a.waitFor((e) => e.event === 'room')
  const b = harness.start('peer.js', 'b', ['--path', path.join(base, 'b'), '--seed', 'room-b', '--follow', readyA.id, '--tunnel', readyA.id, ...common], opt)
  const readyB = await b.waitFor((e) => e.event === 'ready')
  const tB = Date.now()
  await b.waitFor((e) => e.event === 'room')
  const att = await b.waitFor((e) => e.event === 'attendant' && e.key === readyA.id)
  const tun = await b.waitFor((e) => e.event === 'tunnel_opened')
  const inA = await a.waitFor((e) => e.event === 'tunnel' && e.peer === readyB.id)
  const done = await b.waitFor((e) => e.event === 'progress' && e.feed === readyA.id && e.seq >= N)
  await Promise.all([a.stop(), b.stop()])
  if (room) await room.stop()
  const result = {
    ok: true,
    room_kind: roomA.room1 ? 'rooms1' : 'rooms2',
    room_features: roomA.features,
    replication: mode,
    n: N,
    b_ready_to_attendant_ms: att.t - tB,
    b_ready_to_tunnel_ms: tun.t - tB,
    a_saw_incoming_tunnel: !!inA,
    tunnel_to_replicated_ms: done.t - tun.t,
    total_ms: Date.now() - t0,
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  if (!flags.keep) fs.rmSync(base, { recursive: true, force: true })
  process.exit(0)
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\n')
  process.exit(1)
})
