// Package kvt encodes stored messages as the {"key","value","timestamp"}
// records the JavaScript stack sends (createHistoryStream keys:true,
// createLogStream, get with meta) and the CLI prints.
package kvt

import (
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
)

// Append appends rec as compact JSON {"key":..,"value":..,"timestamp":..}.
// rec.Value is already compact JSON and is copied verbatim.
func Append(dst []byte, rec store.Record) []byte {
	dst = append(dst, `{"key":"`...)
	dst = append(dst, rec.Key.String()...)
	dst = append(dst, `","value":`...)
	dst = append(dst, rec.Value...)
	dst = append(dst, `,"timestamp":`...)
	dst = append(dst, classic.FormatNumber(rec.Timestamp)...)
	dst = append(dst, '}')
	return dst
}

// Encode returns the record's KVT JSON.
func Encode(rec store.Record) []byte {
	return Append(make([]byte, 0, len(rec.Value)+128), rec)
}
