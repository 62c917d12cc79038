//go:build !race

package netsim

// raceEnabled: the race detector slows every node several times.
const raceEnabled = false
