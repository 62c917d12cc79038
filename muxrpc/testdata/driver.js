#!/usr/bin/env node
'use strict'
// Drives a Go muxrpc server from the JS stack (ssb-client -> secret-stack ->
// muxrpc -> packet-stream). Usage: node driver.js ADDR [CAPS_B64]
// Prints one JSON line per check: {"check", "value"} or {"check", "error", "name"}.
// Needs NODE_PATH pointing at the interop kit's node_modules.
const pull = require('pull-stream')
const ssbKeys = require('ssb-keys')

const remote = process.argv[2]
const caps = { shs: process.argv[3] || '1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=' }
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const manifest = {
  manifest: 'sync',
  whoami: 'async',
  text: 'async',
  bytes: 'async',
  fail: 'async',
  nope: { thing: 'async', stream: 'source' },
  createHistoryStream: 'source',
  sum: 'sink',
  dup: { echo: 'duplex' },
}

setTimeout(() => { process.stderr.write('driver timeout\n'); process.exit(3) }, 30000).unref()

require('ssb-client/client')({ keys: ssbKeys.generate(), remote, config: { caps, timers: { handshake: 15000 } }, manifest }, (err, rpc) => {
  if (err) { process.stderr.write('connect: ' + (err.message || err) + '\n'); process.exit(1) }
  const report = (check, cb) => (err, value) => {
    if (err) out({ check, error: err.message, name: err.name })
    else out({ check, value })
    cb()
  }
  const feed = '@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519'
  const steps = [
    (cb) => rpc.whoami(report('whoami', cb)),
    (cb) => rpc.text('héllo wörld', report('text', cb)),
    (cb) => rpc.text('', report('text-empty', cb)),
    (cb) => rpc.bytes((err, v) => report('bytes', cb)(err, Buffer.isBuffer(v) ? 'buffer:' + v.toString('hex') : v)),
    (cb) => rpc.fail(report('fail', cb)),
    (cb) => rpc.nope.thing(report('nope.thing', cb)),
    (cb) => pull(rpc.nope.stream(), pull.collect(report('nope.stream', cb))),
    (cb) => rpc.manifest(report('manifest', cb)),
    (cb) => pull(rpc.createHistoryStream({ id: feed, seq: 1, keys: true }), pull.collect((err, items) => {
      if (err) return report('history', cb)(err)
      let ordered = true
      items.forEach((m, i) => { if (m.value.sequence !== i + 1) ordered = false })
      report('history', cb)(null, { count: items.length, ordered, last: items.length ? items[items.length - 1].value.sequence : 0 })
    })),
    (cb) => pull(rpc.createHistoryStream({ id: feed, seq: 1, keys: true }), pull.take(5), pull.collect((err, items) => {
      report('history-abort', cb)(err, items && items.length)
    })),
    (cb) => pull(pull.values([1, 2, 3, 4]), rpc.sum(report('sum', cb))),
    // JS calls a sink's callback when its own source is drained, so the
    // remote error is only seen if it arrives first: send slowly.
    (cb) => pull(pull.values([-10, 1, 2, 3]), pull.asyncMap((v, next) => setTimeout(() => next(null, v), 100)), rpc.sum(report('sum-error', cb))),
    (cb) => pull(pull.values(['a', { b: 1 }, 3, Buffer.from('ff00', 'hex')]), rpc.dup.echo(), pull.collect((err, items) => {
      report('dup.echo', cb)(err, items && items.map((x) => Buffer.isBuffer(x) ? 'buffer:' + x.toString('hex') : x))
    })),
    (cb) => rpc.whoami(report('whoami-again', cb)),
  ]
  let i = 0
  const next = () => {
    if (i >= steps.length) return rpc.close(true, () => process.exit(0))
    steps[i++](next)
  }
  next()
})
