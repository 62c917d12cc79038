#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): runs the same query calls against the
// JS reference stack for queries (ssb-db@20 with its messagesByType, links,
// createFeedStream and latest, plus ssb-backlinks, ssb-query, ssb-about and
// ssb-friends, the plugins scripts call on ssb-server) or, with --remote, against any
// node over muxrpc with ssb-client (the Cask daemon). The Go test
// sbot/querycompare_test.go runs it twice and compares the outputs.
//
//   node queryref.js --queries FILE --fixture FILE.jsonl[.gz] --path DIR   reference stack
//   node queryref.js --queries FILE --remote ADDR --keys SECRET            a node over muxrpc
//
// FILE holds [{"name","method","type":"source"|"async","args":[...]}, ...];
// the output is one JSON object {name: result} (a source's result is the
// array of its items).
const fs = require('fs')
const zlib = require('zlib')
const pull = require('pull-stream')
const ssbKeys = require('ssb-keys')
const { parseArgs, MAIN_CAPS } = require('./lib/common')

const args = parseArgs(process.argv.slice(2), { booleans: [] }).flags
console.log = console.info = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n')
const fail = (err) => { process.stderr.write(((err && err.stack) || String(err)) + '\n'); process.exit(1) }
setTimeout(() => fail(new Error('timeout')), Number(args.timeout || 120000)).unref()
const queries = JSON.parse(fs.readFileSync(args.queries, 'utf8'))

function manifestOf(qs) {
  const m = {}
  for (const q of qs) {
    const parts = q.method.split('.')
    let o = m
    for (const p of parts.slice(0, -1)) o = o[p] = o[p] || {}
    o[parts[parts.length - 1]] = q.type
  }
  return m
}

function call(api, q, cb) {
  const parts = q.method.split('.')
  let fn = api
  let self = api
  for (const p of parts) { self = fn; fn = fn[p] }
  if (typeof fn !== 'function') return cb(null, { error: 'no method ' + q.method })
  if (q.type === 'source') {
    return pull(fn.apply(self, q.args), pull.collect((err, items) => cb(null, err ? { error: String(err.message || err) } : items)))
  }
  fn.apply(self, q.args.concat([(err, v) => cb(null, err ? { error: String(err.message || err) } : (v === undefined ? null : v))]))
}

function runAll(api, done) {
  const out = {}
  let i = 0
  const next = () => {
    if (i >= queries.length) return done(out)
    const q = queries[i++]
    call(api, q, (_, v) => { out[q.name] = v; next() })
  }
  next()
}

const caps = { shs: args.caps || MAIN_CAPS.shs, sign: null }
if (args.remote) {
  const keys = ssbKeys.loadSync(args.keys)
  require('ssb-client/client')({ keys, remote: args.remote, config: { caps, timers: { handshake: 15000 } }, manifest: manifestOf(queries) }, (err, rpc) => {
    if (err) return fail(err)
    runAll(rpc, (out) => {
      process.stdout.write(JSON.stringify(out) + '\n')
      rpc.close(true, () => process.exit(0))
    })
  })
} else {
  let data = fs.readFileSync(args.fixture)
  if (args.fixture.endsWith('.gz')) data = zlib.gunzipSync(data)
  const msgs = data.toString('utf8').split('\n').filter(Boolean).map((l) => { const r = JSON.parse(l); return r.value || r })
  const keys = ssbKeys.generate()
  const sbot = require('secret-stack')({ caps })
    .use(require('ssb-db'))
    .use(require('ssb-backlinks'))
    .use(require('ssb-query'))
    .use(require('ssb-about'))
    .use(require('ssb-friends'))({ path: args.path, keys, connections: { incoming: {}, outgoing: {} }, friends: { hops: 3, hookAuth: false } })
  const started = Date.now()
  pull(
    pull.values(msgs),
    pull.asyncMap((m, cb) => sbot.add(m, cb)),
    pull.collect((err) => {
      if (err) return fail(err)
      process.stderr.write(`queryref: added ${msgs.length} messages in ${Date.now() - started} ms\n`)
      runAll(sbot, (out) => {
        process.stdout.write(JSON.stringify(out) + '\n')
        sbot.close(true, () => process.exit(0))
      })
    })
  )
}
