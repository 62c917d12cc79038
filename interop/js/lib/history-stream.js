'use strict'
// Cask interop harness (interop/js): the createHistoryStream that peer.js and
// query.js serve (the Cask legacy-replication tests read feeds through it).
//
// Replacement for ssb-db2/compat/history-stream, used by peer.js and query.js.
//
// Why: the stock ssb-db2 6.x version (1) returns a feed's messages ordered by
// timestamp, not by sequence, so messages published within the same
// millisecond come out shuffled (1,2,4,5,3,...) and a classic peer that
// validates `previous` rejects them; and (2) ignores `live: true` (the stream
// just ends). This version returns messages in log-append order (= sequence
// order for one feed) and supports live streams.
const pull = require('pull-stream')
const Pushable = require('pull-pushable')
const Ref = require('ssb-ref')
const Hookable = require('hoox')
const { where, and, author, gte, sortByArrival, toPullStream } = require('ssb-db2/operators')
const { reEncrypt } = require('ssb-db2/indexes/private')

exports.manifest = { createHistoryStream: 'source' }
exports.permissions = { anonymous: { allow: ['createHistoryStream'], deny: null } }

exports.init = function (sbot) {
  sbot.createHistoryStream = Hookable(function createHistoryStream(opts) {
    opts = opts || {}
    if (!Ref.isFeed(opts.id)) return pull.error(new Error(opts.id + ' is not a feed'))
    const start = Number(opts.sequence || opts.seq || 0)
    const keys = opts.keys !== false
    const values = opts.values !== false
    const live = opts.live === true
    const old = opts.old !== false
    const limit = typeof opts.limit === 'number' && opts.limit > 0 ? opts.limit : null

    const format = (kvt) => {
      const msg = reEncrypt(kvt)
      if (!keys && values) return msg.value
      if (keys && !values) return msg.key
      return msg
    }
    let query = author(opts.id)
    if (start > 0) query = and(query, gte(start, 'sequence'))
    const oldSource = () => pull(sbot.db.query(where(query), sortByArrival(), toPullStream()))

    let source
    if (!live) {
      source = old ? oldSource() : pull.empty()
    } else {
      // Subscribe before reading old messages so nothing falls in between;
      // emit strictly in sequence order, dropping duplicates.
      let last = null // last sequence emitted
      let oldDone = !old
      const buffer = []
      let unsubscribe = null
      const p = Pushable(() => unsubscribe && unsubscribe())
      const offer = (kvt) => {
        const seq = kvt.value.sequence
        if (last === null) {
          if (seq < start) return
          last = seq
          p.push(kvt)
        } else if (seq === last + 1) {
          last = seq
          p.push(kvt)
        }
      }
      unsubscribe = sbot.db.onMsgAdded((ev) => {
        const kvt = ev && ev.kvt
        if (!kvt || !kvt.value || kvt.value.author !== opts.id) return
        if (oldDone) offer(kvt)
        else buffer.push(kvt)
      }, false)
      const flush = () => {
        oldDone = true
        buffer.sort((a, b) => a.value.sequence - b.value.sequence)
        for (const kvt of buffer.splice(0)) offer(kvt)
      }
      if (old) {
        pull(oldSource(), pull.drain(offer, (err) => {
          if (err && err !== true) return p.end(err)
          flush()
        }))
      } else {
        // live only: start after the current latest
        sbot.getFeedState(opts.id, (err, st) => {
          if (!err && st && st.sequence >= start) last = st.sequence
          flush()
        })
      }
      source = p
    }
    return pull(source, limit ? pull.take(limit) : pull.through(), pull.map(format))
  })
  return {}
}
