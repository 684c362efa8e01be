package failstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadUpTo reads stream s with an ordered consumer of cfg, handing each
// message and its stream sequence to fn, up to sequence last (the stream's
// last when the read began). It ends early when the server says nothing
// is left (messages removed meanwhile by the stream's limits), and
// removes its consumer when done.
func ReadUpTo(ctx context.Context, s jetstream.Stream, cfg jetstream.OrderedConsumerConfig, last uint64, fn func(msg jetstream.Msg, seq uint64)) error {
	name := s.CachedInfo().Config.Name
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, err)
	}
	defer func() {
		// Best effort: the server removes it once inactive anyway.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.DeleteConsumer(dctx, info.Name)
			cancel()
		}
	}()
	if info := cons.CachedInfo(); info == nil || info.NumPending == 0 {
		return nil
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(2000))
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, err)
	}
	defer iter.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, IdleTimeout)
		msg, err := iter.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// Nothing came for a while: stop if nothing is left.
				info, ierr := cons.Info(ctx)
				if ierr == nil && info.NumPending == 0 {
					return nil
				}
				continue
			}
			return fmt.Errorf("read stream %s: %w", name, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %s: %w", name, err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return nil
		}
		fn(msg, seq)
		if seq >= last || meta.NumPending == 0 {
			return nil
		}
	}
}
