// Package replay finds contact.failed events and re-publishes their commands.
//
// Scan reads the event stream (CONTACT_EVENTS) with an ordered consumer,
// from a start time up to the stream's last sequence when the scan began,
// and returns the failures that match a Filter, newest first, each marked
// with the later outcomes of its commandId that supersede it: a
// contact.created (the contact exists) or another contact.failed (a newer
// failure of the same command).
//
// Replay turns selected failures into contact.create messages as the
// contract says: the failed event's command with its commandId set to the
// failure's commandId, the header Contact-Replay-Of set to the failed
// event's id, and Nats-Msg-Id set to "replay:" and that id, so that the
// consumer processes it as a new generation and the command stream drops a
// second replay of the same failure within its duplicate window. It
// replays only the newest failure of each commandId, by default only
// retryable ones not superseded by a contact.created, at a bounded rate, and
// sums up what it did. With Options.Repair it changes fields of one
// failure's command, and refuses to send a command that does not validate.
//
// The package writes nothing to a terminal itself: WriteTable, MatchLine,
// WriteDetail, WriteJSON and Summary.Format render what it found and did
// for the consumer command line.
package replay
