package sbot

// StartTestRoom lets the external tests (package sbot_test) start a room
// with the same helper as the internal ones.
var StartTestRoom = startTestRoom
