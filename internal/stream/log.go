package stream

import (
	"context"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/internal/handlers"
)

// maxLoggedID bounds a commandId in a log line; a longer one (taken from a
// long Nats-Msg-Id header) is cut, with its length.
const maxLoggedID = 128

// log writes one line for a settled delivery: info for a created contact,
// warn for a failure or a retry, error when it could not be settled.
func (r *Runner) log(m handlers.Message, dec handlers.Decision, took time.Duration, settleErr error) {
	level := slog.LevelInfo
	switch {
	case settleErr != nil:
		level = slog.LevelError
	case dec.Action == handlers.Retry || dec.Reason != "":
		level = slog.LevelWarn
	}
	if !r.cfg.Logger.Enabled(context.Background(), level) {
		return // build no line that would be dropped
	}
	id := dec.CommandID
	id = clipID(id)
	attrs := []any{
		"commandId", id,
		"provider", dec.Provider,
		"delivery", m.Delivery,
		"attempts", dec.Attempts,
		"duration", took,
	}
	if m.Generation != "" {
		attrs = append(attrs, "replayOf", clipID(m.Generation))
	}
	if dec.FromRecord {
		attrs = append(attrs, "fromRecord", true)
	}
	text := "contact created"
	switch {
	case dec.Action == handlers.Retry:
		text = "will retry"
		attrs = append(attrs, "delay", dec.Delay)
	case dec.Reason != "":
		text = "contact failed"
		attrs = append(attrs, "reason", dec.Reason)
	}
	if dec.Event != nil {
		attrs = append(attrs, "eventId", dec.Event.ID)
	}
	if dec.Err != nil {
		attrs = append(attrs, "error", dec.Err.Error())
	}
	if settleErr != nil {
		attrs = append(attrs, "settleError", settleErr.Error())
	}
	r.cfg.Logger.Log(context.Background(), level, text, attrs...)
}

// clipID returns a commandId fit for a log line: at most maxLoggedID bytes,
// cut at a character's start, with "…" when cut.
func clipID(id string) string {
	if len(id) <= maxLoggedID {
		return id
	}
	cut := maxLoggedID
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "…"
}
