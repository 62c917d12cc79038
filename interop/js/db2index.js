#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): ssb-db2's side of the index benchmarks
// (bench/reindex). Three one-shot modes on one data dir:
//
//   node db2index.js --mode load  --path DIR --keys SECRET --fixture FILE.jsonl
//       adds the fixture's messages (one signed message value per line, in
//       log order) with addOOOBatch, in chunks, then waits for the indexes.
//   node db2index.js --mode index --path DIR --keys SECRET [--types a,b,..]
//       deletes every index (DIR/db2/indexes, DIR/db2/jit), opens ssb-db2 on
//       the log and times until its indexes are built: the leveldb indexes
//       (base, keys, ebt, private with box1 decryption, aboutSelf,
//       fullMentions) drained, and one query that makes JITDB build the
//       bitvector indexes the Cask indexes correspond to (type of each of
//       --types, hasRoot, hasBranch, votesFor, contact, about, mentions,
//       isPrivate/isDecrypted).
//   node db2index.js --mode type  --path DIR --keys SECRET --type T [--runs N]
//       opens ssb-db2 (openMs: until its leveldb indexes are drained), then
//       times where(type(T)) to the full list of messages, N times (ms: the
//       first; its JIT index is built if missing; runsMs: all).
//
// Each prints one JSON line on stdout: {"mode","ms",...}; ms is measured
// inside the process from before secret-stack starts (node's own start-up
// and the require() calls are not counted).
const fs = require('fs')
const path = require('path')
const ssbKeys = require('ssb-keys')
const { parseArgs, MAIN_CAPS } = require('./lib/common')

const args = parseArgs(process.argv.slice(2), { booleans: [] }).flags
console.log = console.info = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n')
const fail = (err) => { process.stderr.write(((err && err.stack) || String(err)) + '\n'); process.exit(1) }
setTimeout(() => fail(new Error('timeout')), Number(args.timeout || 3600000)).unref()
for (const f of ['mode', 'path', 'keys']) if (!args[f]) fail(new Error('need --' + f))

const keys = ssbKeys.loadSync(args.keys)
const db2dir = path.join(args.path, 'db2')
if (args.mode === 'index') {
  fs.rmSync(path.join(db2dir, 'indexes'), { recursive: true, force: true })
  fs.rmSync(path.join(db2dir, 'jit'), { recursive: true, force: true })
}
const { where, and, or, type, hasRoot, hasBranch, votesFor, contact, about, mentions, isPrivate, isDecrypted, toCallback } = require('ssb-db2/operators')
const secretStack = require('secret-stack')
const ssbDb2 = require('ssb-db2')
const aboutSelf = require('ssb-db2/about-self')
const fullMentions = require('ssb-db2/full-mentions')

const t0 = process.hrtime.bigint()
const ms = () => Number(process.hrtime.bigint() - t0) / 1e6
const sbot = secretStack({ caps: { shs: args.caps || MAIN_CAPS.shs } })
  .use(ssbDb2)
  .use(aboutSelf)
  .use(fullMentions)({ path: args.path, keys, db2: {} })

function drainAll(cb) {
  const names = ['base', 'keys', 'ebt', 'aboutSelf', 'fullMentions']
  let i = 0
  const next = () => (i >= names.length ? cb() : sbot.db.onDrain(names[i++], next))
  next()
}

function done(out) {
  process.stdout.write(JSON.stringify(Object.assign({ mode: args.mode }, out)) + '\n')
  sbot.close(true, () => process.exit(0))
}

if (args.mode === 'load') {
  if (!args.fixture) fail(new Error('need --fixture'))
  const lines = fs.readFileSync(args.fixture, 'utf8').split('\n').filter(Boolean)
  const chunk = Number(args.chunk || 1000)
  let i = 0
  const next = () => {
    if (i >= lines.length) return drainAll(() => done({ ms: ms(), messages: lines.length }))
    const batch = lines.slice(i, i + chunk).map((l) => JSON.parse(l))
    i += batch.length
    sbot.db.addOOOBatch(batch, (err) => (err ? fail(err) : next()))
  }
  next()
} else if (args.mode === 'index') {
  const types = String(args.types || 'post,vote,about,contact').split(',')
  const any = '%' + Buffer.alloc(32).toString('base64') + '.sha256'
  drainAll(() => {
    const leveldb = ms()
    sbot.db.query(
      where(or(
        ...types.map((t) => type(t)),
        hasRoot(any), hasBranch(any), votesFor(any),
        contact(keys.id), about(keys.id), mentions(keys.id),
        and(isPrivate(), isDecrypted('box'))
      )),
      toCallback((err, msgs) => {
        if (err) return fail(err)
        done({ ms: ms(), leveldbMs: leveldb, hits: msgs.length })
      })
    )
  })
} else if (args.mode === 'type') {
  if (!args.type) fail(new Error('need --type'))
  const runs = Number(args.runs || 3)
  const times = []
  let hits = 0
  const one = () => {
    if (times.length >= runs) return done({ ms: times[0], runsMs: times, openMs, hits })
    const s = process.hrtime.bigint()
    sbot.db.query(where(type(args.type)), toCallback((err, msgs) => {
      if (err) return fail(err)
      hits = msgs.length
      times.push(Number(process.hrtime.bigint() - s) / 1e6)
      one()
    }))
  }
  let openMs = 0
  drainAll(() => { openMs = ms(); one() })
} else {
  fail(new Error('unknown --mode ' + args.mode))
}
