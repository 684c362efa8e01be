// Package stream is contactrelay's consume loop on JetStream: it runs the
// pull loop on the durable consumer (Runner) and its tail, and keeps
// idempotency records in the key-value bucket (Records). The streams, the
// consumer and the bucket it binds to are set up by package provision.
//
// The Runner owns everything a command's outcome writes. It receives a
// delivery, has a Handler decide it, then carries the Decision out in this
// order: it records the Decision's record write (compare-and-set), publishes
// its event (Nats-Msg-Id = the event id), and settles the command (Ack,
// Term, or NakWithDelay to retry). A record write that does not land goes
// back to the Handler's Redecide; a publish that fails hands the command
// back, backing off; a subject the server refuses is noted by Permissions.
// The stages are named as in package handlers: received, decided,
// recorded, published, settled.
package stream
