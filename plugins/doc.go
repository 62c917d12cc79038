// Package plugins groups the muxrpc services of the sbot daemon, one
// subpackage per service name as the JavaScript stack spells it. Each
// subpackage registers its handlers on a *muxrpc.Mux from a small
// constructor and declares the narrow interfaces it needs, so it can be
// tested with fakes. Plugins never open stores or sockets themselves.
package plugins
