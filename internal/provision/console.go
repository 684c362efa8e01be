package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsoleSessionBucket holds the console's sign-outs: a key per session
// signed out (its nonce), written with a TTL of the rest of the session's
// absolute lifetime, so that every console replica refuses it and the
// bucket holds no more than the sessions that could still be used.
const ConsoleSessionBucket = "CONTACT_CONSOLE_SESSIONS"

// ConsoleSessionsConfig is the sign-out bucket's configuration: per-key
// TTLs, one value per key.
func ConsoleSessionsConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         ConsoleSessionBucket,
		Description:    "contactrelay console: sessions signed out before their expiry, by nonce",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       max(replicas, 1),
		LimitMarkerTTL: time.Minute,
	}
}

// EnsureConsoleSessions creates the sign-out bucket if it does not exist,
// and says so through note; an existing one is left as it is. It returns
// the bucket.
func EnsureConsoleSessions(ctx context.Context, js jetstream.JetStream, replicas int, note func(string)) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, ConsoleSessionBucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("look up bucket %s: %w", ConsoleSessionBucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, ConsoleSessionsConfig(replicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, ConsoleSessionBucket) // made meanwhile by another
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", ConsoleSessionBucket, err)
	}
	if note != nil {
		note(fmt.Sprintf("%s: created (the console's sign-outs, shared by its replicas)", ConsoleSessionBucket))
	}
	return kv, nil
}
