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
	// Attributes, not key-value pairs: nothing is boxed, and the array
	// holds them all without a slice grown per line.
	var buf [12]slog.Attr
	attrs := append(buf[:0],
		slog.String("commandId", clipID(dec.CommandID)),
		slog.String("provider", dec.Provider),
		slog.Int("delivery", m.Delivery),
		slog.Int("attempts", dec.Attempts),
		slog.Duration("duration", took),
	)
	if m.Generation != "" {
		attrs = append(attrs, slog.String("replayOf", clipID(m.Generation)))
	}
	if dec.FromRecord {
		attrs = append(attrs, slog.Bool("fromRecord", true))
	}
	text := "contact created"
	switch {
	case dec.Action == handlers.Retry:
		text = "will retry"
		attrs = append(attrs, slog.Duration("delay", dec.Delay))
	case dec.Reason != "":
		text = "contact failed"
		attrs = append(attrs, slog.String("reason", string(dec.Reason)))
	}
	if dec.Event != nil {
		attrs = append(attrs, slog.String("eventId", dec.Event.ID))
	}
	if dec.Err != nil {
		attrs = append(attrs, slog.String("error", dec.Err.Error()))
	}
	if settleErr != nil {
		attrs = append(attrs, slog.String("settleError", settleErr.Error()))
	}
	r.cfg.Logger.LogAttrs(context.Background(), level, text, attrs...)
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
