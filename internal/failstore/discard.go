package failstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Discard removes the given open failures, each by its sequence, so that
// a failure stored since its summary was read (a newer one of the same
// command) stays, and then their entries in the exact-value index (those
// written for them, by the command's manifest). It returns how many it
// removed; one gone already is not counted, and is no error. The failed
// events stay in the event history while it keeps them.
func Discard(ctx context.Context, js jetstream.JetStream, sums []Summary) (int, error) {
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, ErrNoStore
	}
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	idx, err := indexStream(ctx, js)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sum := range sums {
		err := s.DeleteMsg(ctx, sum.Seq)
		switch {
		case err == nil:
			n++
		case errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err):
		default:
			return n, fmt.Errorf("discard open failure of %s: %w", sum.CommandID, err)
		}
		if idx != nil && !sum.Conflict {
			if err := unindexCommand(ctx, idx, subjectKey(sum.Subject), sum.Seq); err != nil && !indexGone(err) {
				return n, err
			}
		}
	}
	return n, nil
}
