// Package muxrpc speaks the SSB RPC protocol: the packet-stream codec
// (9-byte headers, JSON/string/binary bodies) and muxrpc endpoints that run
// async, source, sink and duplex calls in both directions over one
// io.ReadWriteCloser, usually a secret-handshake box stream.
//
// The package is a protocol library. It knows nothing of feeds, stores or
// identities beyond an optional remote public key handed to handlers, and it
// must never import another package of this project. It must never grow
// memory without bound because of what a peer sends: packet sizes are capped,
// per-stream queues are bounded (a full queue pauses reading the connection),
// and the number of concurrent inbound calls is limited.
//
// Wire compatibility with the JavaScript stack (ssbc/muxrpc,
// packet-stream, packet-stream-codec) follows the project's protocol facts
// sheet, §5:
//   - request numbers start at 1 per side; replies carry the negated number;
//   - no packet with a zero-length body is ever sent (a JS peer reads any
//     zero-length header as goodbye); empty strings go out as JSON "";
//   - request names may be arrays or plain strings, async requests may lack
//     "type" (the stream flag decides), "args" must be an array;
//   - both halves of every stream are ended: when the remote ends a stream
//     whose outgoing half is still open, this side answers with its own end;
//   - unknown or forbidden methods are answered with the JS error text
//     "method:<a,b> is not in list of allowed methods".
//
// Usage: NewEndpoint starts reading at once and serves the peer's calls
// with a Handler, usually a *Mux (RegisterAsync/Source/Sink/Duplex, an
// automatic `manifest`, and an Allow hook that can use Request.RemoteKey).
// Calls to the peer are Endpoint.Async, Source, Sink and Duplex. Close sends
// the goodbye (nine zero bytes) and closes the connection.
//
// Flow control: each incoming stream half has a bounded queue
// (Options.StreamQueueItems/Bytes), and all queues and the arguments of
// calls being handled share a per-connection budget (Options.MaxHeldBytes).
// When a consumer does not keep up, the read loop waits for it, which
// pauses every call on the connection. So a consumer must keep reading (or
// Close its Source); in particular it must not wait for another call on the
// same connection while it leaves its own Source unread.
//
// Outgoing packets go into one in-memory queue that a separate goroutine
// writes out without holding the queue's lock, so bursts leave in few
// large writes. Stream items and replies wait while the queue holds more
// than Options.MaxQueuedBytes; ends and error replies never wait, so the
// read loop never blocks on the network. A peer that takes none of our
// bytes for Options.WriteTimeout, stalls inside a packet for
// Options.PacketTimeout, or (optionally) sends nothing for
// Options.IdleTimeout is disconnected. Error replies quote at most
// MaxQuoted bytes of a peer's argument (ShortArg) and never more than
// MaxErrorMessage bytes in all. Buffers are pooled, so an idle connection
// holds little memory.
package muxrpc
