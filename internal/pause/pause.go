// Package pause keeps which providers are paused, fleet-wide, in the
// key-value bucket CONTACT_PAUSES, and how many of each command's
// deliveries were held by a pause.
//
// A pause is a key "provider.<name>" holding a State; resuming deletes it.
// Every service instance watches those keys (Watcher), so that a pause
// reaches the fleet as fast as NATS carries a message, and survives
// restarts: a new instance reads the bucket before it takes a command.
//
// A command whose provider is paused is held: handed back with a delay,
// its provider not called. A held delivery must count toward no delivery
// limit (MAX_DELIVER), so Holds counts held deliveries per command message
// under "held.<stream>.<sequence>", and the runner subtracts that count
// from the server's delivery count. The key is deleted once the command is
// settled.
package pause

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket of pauses and held counts.
const Bucket = "CONTACT_PAUSES"

const (
	pausePrefix = "provider."
	heldPrefix  = "held."
)

// BucketConfig returns the bucket's configuration with replicas.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "contactrelay: paused providers (provider.<name>) and held deliveries per command (held.<stream>.<seq>)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// State is one provider's pause.
type State struct {
	Provider string    `json:"provider"`
	Reason   string    `json:"reason,omitempty"`
	By       string    `json:"by,omitempty"`
	Since    time.Time `json:"since"`
}

// ErrNotPaused reports a resume of a provider that is not paused.
var ErrNotPaused = errors.New("not paused")

// Audit is told of each pause and resume before it is written, so that an
// audit trail can record it first; an error from it stops the change.
// Nil: nothing is told. action is "pause" or "resume".
type Audit func(ctx context.Context, action string, s State) error

// Store reads and writes pauses. It is safe for concurrent use.
type Store struct {
	KV jetstream.KeyValue
	// Audit, when set, is told of each change before it is made.
	Audit Audit
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Open binds a Store to the bucket, which must exist (provision.Setup).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w (run 'consumer setup', or start the service once)", Bucket, err)
	}
	return &Store{KV: kv}, nil
}

func (st *Store) now() time.Time {
	if st.Now != nil {
		return st.Now()
	}
	return time.Now()
}

// Pause pauses provider with reason, by who; pausing a paused provider
// replaces its reason and keeps its start.
func (st *Store) Pause(ctx context.Context, provider, reason, by string) (State, error) {
	s := State{Provider: provider, Reason: boundText(reason), By: boundText(by), Since: st.now().UTC()}
	if old, ok, err := st.Get(ctx, provider); err != nil {
		return State{}, err
	} else if ok {
		s.Since = old.Since
	}
	if st.Audit != nil {
		if err := st.Audit(ctx, "pause", s); err != nil {
			return State{}, fmt.Errorf("audit pause of %s: %w", provider, err)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return State{}, err
	}
	if _, err := st.KV.Put(ctx, pausePrefix+provider, b); err != nil {
		return State{}, fmt.Errorf("pause %s: %w", provider, err)
	}
	return s, nil
}

// Resume resumes provider; ErrNotPaused when it was not paused.
func (st *Store) Resume(ctx context.Context, provider, by string) error {
	s, ok, err := st.Get(ctx, provider)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("resume %s: %w", provider, ErrNotPaused)
	}
	s.By = by
	if st.Audit != nil {
		if err := st.Audit(ctx, "resume", s); err != nil {
			return fmt.Errorf("audit resume of %s: %w", provider, err)
		}
	}
	if err := st.KV.Delete(ctx, pausePrefix+provider); err != nil {
		return fmt.Errorf("resume %s: %w", provider, err)
	}
	return nil
}

// Get returns provider's pause, if it is paused.
func (st *Store) Get(ctx context.Context, provider string) (State, bool, error) {
	e, err := st.KV.Get(ctx, pausePrefix+provider)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("read pause of %s: %w", provider, err)
	}
	s, err := decode(e.Value())
	return s, err == nil, err
}

// List returns the pauses, by provider.
func (st *Store) List(ctx context.Context) ([]State, error) {
	lister, err := st.KV.ListKeysFiltered(ctx, pausePrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list pauses: %w", err)
	}
	var out []State
	for k := range lister.Keys() {
		s, ok, err := st.Get(ctx, strings.TrimPrefix(k, pausePrefix))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Provider, b.Provider) })
	return out, nil
}

func decode(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("decode pause: %w", err)
	}
	return s, nil
}

// Watcher keeps the pauses as the bucket has them, watching its keys. Its
// methods are safe for concurrent use.
type Watcher struct {
	mu     sync.RWMutex
	paused map[string]State
	watch  jetstream.KeyWatcher
	done   chan struct{}
	// OnChange is told of each change as it is applied (paused false: a
	// resume). Set it before Start.
	onChange func(s State, paused bool)
}

// Watch starts watching the pauses in kv, and returns once the current
// ones are read: a command taken after Watch returns sees every pause made
// before. onChange (may be nil) is told of each change, from the watch's
// goroutine. Stop ends the watch.
func Watch(ctx context.Context, kv jetstream.KeyValue, logger *slog.Logger, onChange func(s State, paused bool)) (*Watcher, error) {
	kw, err := kv.Watch(ctx, pausePrefix+">")
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", Bucket, err)
	}
	w := &Watcher{paused: map[string]State{}, watch: kw, done: make(chan struct{}), onChange: onChange}
	initial := make(chan struct{})
	go func() {
		defer close(w.done)
		seenInitial := false
		for e := range kw.Updates() {
			if e == nil { // every current value has been delivered
				if !seenInitial {
					seenInitial = true
					close(initial)
				}
				continue
			}
			w.apply(e, logger)
		}
		if !seenInitial {
			close(initial)
		}
	}()
	select {
	case <-initial:
	case <-ctx.Done():
		_ = kw.Stop()
		return nil, ctx.Err()
	}
	return w, nil
}

func (w *Watcher) apply(e jetstream.KeyValueEntry, logger *slog.Logger) {
	provider := strings.TrimPrefix(e.Key(), pausePrefix)
	var (
		s      State
		paused bool
	)
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if s, err = decode(e.Value()); err != nil {
			// A pause that cannot be read is a pause: holding is safe.
			logger.Warn("unreadable pause; holding the provider", "provider", provider, "error", err)
			s = State{Provider: provider, Since: e.Created()}
		}
		s.Provider, paused = provider, true
	} else {
		s = State{Provider: provider}
	}
	w.mu.Lock()
	if paused {
		w.paused[provider] = s
	} else {
		delete(w.paused, provider)
	}
	w.mu.Unlock()
	if paused {
		logger.Warn("provider paused: its commands are held", "provider", provider, "reason", s.Reason, "by", s.By)
	} else {
		logger.Info("provider resumed", "provider", provider)
	}
	if w.onChange != nil {
		w.onChange(s, paused)
	}
}

// Paused reports whether provider is paused. A nil Watcher pauses none.
func (w *Watcher) Paused(provider string) bool {
	if w == nil {
		return false
	}
	w.mu.RLock()
	_, ok := w.paused[provider]
	w.mu.RUnlock()
	return ok
}

// Pauses returns the pauses this instance knows, by provider.
func (w *Watcher) Pauses() []State {
	if w == nil {
		return nil
	}
	w.mu.RLock()
	out := make([]State, 0, len(w.paused))
	for _, s := range w.paused {
		out = append(out, s)
	}
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Provider, b.Provider) })
	return out
}

// Stop ends the watch and waits for its goroutine.
func (w *Watcher) Stop() {
	if w == nil {
		return
	}
	_ = w.watch.Stop()
	<-w.done
}

// Holds counts the held deliveries of command messages. It is safe for
// concurrent use.
type Holds struct {
	KV jetstream.KeyValue
}

// HeldSubject is the subject a write of the hold count of the message at
// seq in stream is published to (the key-value API publishes a put to
// "$KV.<bucket>.<key>"): the service publishes there while a provider is
// paused, so its NATS user needs it.
func HeldSubject(stream string, seq uint64) string {
	return "$KV." + Bucket + "." + heldKey(stream, seq)
}

func heldKey(stream string, seq uint64) string {
	return heldPrefix + stream + "." + strconv.FormatUint(seq, 10)
}

// Count returns how many deliveries of the message at seq in stream were
// held.
func (h *Holds) Count(ctx context.Context, stream string, seq uint64) (int, error) {
	e, err := h.KV.Get(ctx, heldKey(stream, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read held deliveries: %w", err)
	}
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil {
		return 0, fmt.Errorf("read held deliveries: %w", err)
	}
	return n, nil
}

// Add counts one more held delivery of the message at seq in stream, and
// returns the count.
func (h *Holds) Add(ctx context.Context, stream string, seq uint64) (int, error) {
	key := heldKey(stream, seq)
	for range 5 {
		e, err := h.KV.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := h.KV.Create(ctx, key, []byte("1")); err == nil {
				return 1, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, fmt.Errorf("count held delivery: %w", err)
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("count held delivery: %w", err)
		}
		n, err := strconv.Atoi(string(e.Value()))
		if err != nil {
			n = 0
		}
		n++
		if _, err := h.KV.Update(ctx, key, []byte(strconv.Itoa(n)), e.Revision()); err == nil {
			return n, nil
		}
	}
	return 0, errors.New("count held delivery: the count kept changing under its write")
}

// Forget deletes the count of a settled message.
func (h *Holds) Forget(ctx context.Context, stream string, seq uint64) error {
	return h.KV.Purge(ctx, heldKey(stream, seq))
}

// maxReasonRunes bounds a pause's reason and who made it, so that the
// state (and its audit entry) always fits a NATS message, whatever a form
// or a flag was given.
const maxReasonRunes = 500

// boundText cuts s to maxReasonRunes runes, marking the cut with "…".
func boundText(s string) string {
	if utf8.RuneCountInString(s) <= maxReasonRunes {
		return s
	}
	return string([]rune(s)[:maxReasonRunes]) + "…"
}
