package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// stats are the overview's figures of the event stream and the durable
// consumer, as the last reload found them.
type stats struct {
	At time.Time
	// Err says what could not be read; the figures read are kept.
	Err error

	// Backlog is the durable consumer's commands not yet delivered;
	// InFlight those delivered and not yet acknowledged.
	Backlog, InFlight uint64
	// OldestPending is when the oldest command not yet settled was
	// stored, zero when there is none.
	OldestPending time.Time
	// Created and Failed count the events of the last hour and day.
	CreatedHour, CreatedDay, FailedHour, FailedDay uint64
	// FailedHourly counts the contact.failed events of each of the last
	// 24 hours, the oldest first (the last is the current hour so far).
	FailedHourly [24]uint64
	// HourStart is when the first of those hours began.
	HourStart time.Time
}

// loadStats reads the figures: the durable consumer's state, and counts
// of events since points in time, each the pending count of a consumer
// that starts at that time (the server counts; nothing is delivered).
// The hours that have ended are counted once: after the first load a
// load makes five such consumers, not 28. Only Run's loop calls it.
func (srv *Server) loadStats(ctx context.Context) *stats {
	now := srv.cfg.Now()
	st := &stats{At: now}
	js := srv.cfg.JS
	var errs []error
	if c, err := js.Consumer(ctx, provision.CommandStream, provision.Durable); err != nil {
		errs = append(errs, fmt.Errorf("durable consumer %s: %w", provision.Durable, err))
	} else {
		info := c.CachedInfo()
		st.Backlog, st.InFlight = info.NumPending, uint64(info.NumAckPending)
		if st.Backlog+st.InFlight > 0 {
			if s, err := js.Stream(ctx, provision.CommandStream); err == nil {
				if m, err := s.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(contact.SubjectCreate)); err == nil {
					st.OldestPending = m.Time
				}
			}
		}
	}
	es, err := js.Stream(ctx, provision.EventStream)
	if err != nil {
		errs = append(errs, fmt.Errorf("stream %s: %w", provision.EventStream, err))
		st.Err = errors.Join(errs...)
		return st
	}
	count := func(subject string, since time.Time) uint64 {
		if err != nil {
			return 0
		}
		var n uint64
		n, err = countSince(ctx, es, subject, since)
		srv.countCalls++
		return n
	}
	st.CreatedHour = count(contact.SubjectCreated, now.Add(-time.Hour))
	st.CreatedDay = count(contact.SubjectCreated, now.Add(-24*time.Hour))
	st.FailedHour = count(contact.SubjectFailed, now.Add(-time.Hour))
	st.FailedDay = count(contact.SubjectFailed, now.Add(-24*time.Hour))
	st.HourStart = now.Truncate(time.Hour).Add(-23 * time.Hour)
	// An hour that has ended keeps its count: only the current hour and
	// those not counted yet (the first load, a new hour) are counted, each
	// from the counts since its start and since the next hour's.
	since := map[int]uint64{}
	sinceHour := func(h int) uint64 {
		if h == 24 {
			return 0
		}
		n, ok := since[h]
		if !ok {
			n = count(contact.SubjectFailed, st.HourStart.Add(time.Duration(h)*time.Hour))
			since[h] = n
		}
		return n
	}
	hours := map[time.Time]uint64{}
	for h := range 24 {
		start := st.HourStart.Add(time.Duration(h) * time.Hour)
		n, ok := srv.endedHours[start]
		if !ok || h == 23 {
			n = sinceHour(h) - min(sinceHour(h+1), sinceHour(h))
		}
		st.FailedHourly[h] = n
		if h < 23 && err == nil {
			hours[start] = n
		}
	}
	srv.endedHours = hours
	if err != nil {
		errs = append(errs, fmt.Errorf("count events: %w", err))
	}
	st.Err = errors.Join(errs...)
	return st
}

// countSince returns how many messages of subject the stream has stored
// since t, from the pending count of a consumer that would start there.
func countSince(ctx context.Context, s jetstream.Stream, subject string, t time.Time) (uint64, error) {
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &t,
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Description:       "contactrelay console: counting events",
	})
	if err != nil {
		return 0, err
	}
	info := c.CachedInfo()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	_ = s.DeleteConsumer(dctx, info.Name)
	cancel()
	return info.NumPending, nil
}
